// Package minutes computes the speed layer's per-minute aggregates of the
// shared metrics (schemas/metrics) and writes them to the serving layer's
// real-time table (queries/merge, rt_metric_minutes), where GET
// /api/series merges them with the batch views.
//
// Every metric is evaluated with its one definition (Match, Key, Amount,
// Value); nothing is re-defined here. A row is (metric, key, minute, value)
// with the value semantics of queries/merge: for Count and Sum the
// minute's amount, for Distinct the window's distinct count up to the end
// of the minute. A row always carries the full value of every event of its
// minute (or window) seen so far, never a delta, so writing it again with a
// higher version (a retry, a replay) is always correct.
//
// # State and its lifetime
//
// The Aggregator keeps one cell per (metric, key, minute) of Count and Sum
// metrics and, for Distinct metrics, one window per (metric, key, window)
// holding the first minute of each distinct value. A cell or window is
// closed once the watermark minus the allowed lateness passes its end;
// events of a closed one are counted as late and dropped (its value was
// final). A closed cell is forgotten once its final value is written.
//
// # Partitions and replays
//
// The shared metrics are keyed on the source or client IP, which is also
// the Kafka record key, so every event of one key arrives in one partition
// and a partition's state is complete by itself. Assign starts a partition
// with a replay start: minutes and windows that start before it are never
// written (the previous owner wrote their complete value; a replay does
// not reach all of their events). Revoke drops a partition's state without
// writing it (its new owner rewrites it from a replay). A key seen in two
// partitions breaks the assumption; it is counted (Stats.CrossPartition)
// and its events are added to the existing cell.
package minutes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// Writer stores rows; *merge.Writer satisfies it.
type Writer interface {
	Write(ctx context.Context, aggs []merge.MinuteAggregate) error
}

// Options configure an Aggregator.
type Options struct {
	// Writer receives the rows.
	Writer Writer
	// Metrics are the metrics computed (default metrics.All()). A metric's
	// window must be a whole number of minutes.
	Metrics []*metrics.Metric
	// AllowedLateness must be the engine's (default
	// realtime.DefaultAllowedLateness): a minute closes when the
	// watermark minus it passes the minute's end.
	AllowedLateness time.Duration
	// FlushInterval is how often Run writes the dirty rows (default 1s).
	FlushInterval time.Duration
	// WriteTimeout bounds one write (default 10s).
	WriteTimeout time.Duration
	// RetryBackoff is the wait after a failed write, doubled per failure
	// up to MaxBackoff (defaults 1s and 1m).
	RetryBackoff, MaxBackoff time.Duration
	// MaxEntries caps the state: cells plus distinct values held (default
	// 2,000,000). An event that would need a new entry beyond it is
	// dropped and counted (Stats.Overflow); its minute is then undercounted
	// until the batch layer supersedes it.
	MaxEntries int
	// Tolerance is how far (in event time) writing may fall behind
	// processing, a ClickHouse outage for example, with a successor still
	// able to rebuild every row its predecessor did not write: the replay
	// horizon grows by it (default 5m). See Horizon.
	Tolerance time.Duration
	// Registerer, when set, gets the Prometheus metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Stats counts what the Aggregator did.
type Stats struct {
	Events         int64 // records that matched a metric and were added
	Late           int64 // matching records of a closed minute or window, dropped
	Suppressed     int64 // matching records of a minute or window before the partition's replay start
	Unassigned     int64 // records of a partition not assigned (in flight across a revoke)
	Overflow       int64 // matching records dropped at MaxEntries
	CrossPartition int64 // records whose cell another partition already holds
	RowsWritten    int64
	Writes         int64 // successful writes
	WriteErrors    int64
	Dirty          int // rows waiting to be written
	Entries        int // cells plus distinct values held
}

type tp struct {
	topic string
	part  int32
}

// partInfo is one assigned partition.
type partInfo struct {
	tp tp
	// from is the replay start (Unix seconds): minutes and windows that
	// start before it are not computed here.
	from int64
}

// row is one written value's bookkeeping: dirty while mod != written.
type row struct {
	value        int64
	mod, written uint32
	// firsts counts the values whose first minute in the window is this
	// one (distinct rows).
	firsts  int32
	queued  bool // in the dirty list
	present bool // the minute had a matching event (distinct rows)
}

type cellKey struct {
	metric uint16
	key    string
	minute int64 // Unix seconds of the minute's start
}

// cell is one (metric, key, minute) of a Count or Sum metric.
type cell struct {
	k    cellKey
	part *partInfo
	row  row
	dead bool
}

type winKey struct {
	metric uint16
	key    string
	start  int64 // Unix seconds of the window's start
}

// distinctWin is one (metric, key, window) of a Distinct metric: the
// first minute of every value; row j is minute j of the window.
type distinctWin struct {
	k    winKey
	part *partInfo
	// vals holds each distinct value and its first minute; first indexes
	// them once there are more than smallWin (most keys have a few, and
	// a map per window would cost more than the scan).
	vals   []distinctVal
	first  map[string]int32
	rows   []row
	queued int // rows in the dirty list
	dead   bool
}

type distinctVal struct {
	v     string
	first int32
}

const smallWin = 8

// lookup returns the index of v in w.vals, or -1.
func (w *distinctWin) lookup(v string) int {
	if w.first != nil {
		if i, ok := w.first[v]; ok {
			return int(i)
		}
		return -1
	}
	for i := range w.vals {
		if w.vals[i].v == v {
			return i
		}
	}
	return -1
}

func (w *distinctWin) insert(v string, first int32) {
	w.vals = append(w.vals, distinctVal{v, first})
	if w.first != nil {
		w.first[v] = int32(len(w.vals) - 1)
	} else if len(w.vals) > smallWin {
		w.first = make(map[string]int32, 2*len(w.vals))
		for i := range w.vals {
			w.first[w.vals[i].v] = int32(i)
		}
	}
}

// ref is an entry of the dirty list.
type ref struct {
	c *cell
	w *distinctWin
	j int
}

func (r ref) row() *row {
	if r.c != nil {
		return &r.c.row
	}
	return &r.w.rows[r.j]
}

func (r ref) dead() bool {
	if r.c != nil {
		return r.c.dead
	}
	return r.w.dead
}

// Aggregator computes and writes the per-minute aggregates. Add, Advance,
// Assign and Revoke are called by the service's loop; Flush and Run may
// run concurrently with them.
type Aggregator struct {
	o      Options
	log    *slog.Logger
	prom   *promMetrics
	late   int64 // lateness, seconds granularity kept in ns
	window time.Duration

	// flushMu serializes writes, so a row's versions reach the table in
	// the order its values were computed.
	flushMu sync.Mutex

	// byDataset lists the metrics of each dataset, so a record is
	// matched only against its own dataset's metrics.
	byDataset map[string][]int

	mu      sync.Mutex
	parts   map[tp]*partInfo
	lastTP  tp
	lastP   *partInfo
	cells   map[cellKey]*cell
	wins    map[winKey]*distinctWin
	dirty   []ref
	entries int
	// closed is the watermark minus the lateness (Unix ns): cells and
	// windows ending at or before it are closed.
	closed   int64
	gcMinute int64
	st       Stats
}

// New checks o and returns an Aggregator with no partition assigned.
func New(o Options) (*Aggregator, error) {
	if o.Writer == nil {
		return nil, errors.New("realtime/minutes: Writer is required")
	}
	if o.Metrics == nil {
		o.Metrics = metrics.All()
	}
	if len(o.Metrics) > math.MaxUint16 {
		return nil, errors.New("realtime/minutes: too many metrics")
	}
	if o.AllowedLateness <= 0 {
		o.AllowedLateness = realtime.DefaultAllowedLateness
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxBackoff < o.RetryBackoff {
		o.MaxBackoff = max(time.Minute, o.RetryBackoff)
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 5 * time.Minute
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 2_000_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{o: o, log: o.Logger, late: int64(o.AllowedLateness), window: time.Minute,
		parts: map[tp]*partInfo{}, cells: map[cellKey]*cell{}, wins: map[winKey]*distinctWin{},
		closed: math.MinInt64, byDataset: map[string][]int{}}
	for i, m := range o.Metrics {
		a.byDataset[m.Dataset] = append(a.byDataset[m.Dataset], i)
		if m.Window < time.Minute || m.Window%time.Minute != 0 {
			return nil, fmt.Errorf("realtime/minutes: metric %s: window %s is not a whole number of minutes", m.Name, m.Window)
		}
		if m.Agg == metrics.Distinct {
			a.window = max(a.window, m.Window)
		}
	}
	a.prom = newPromMetrics(a)
	if o.Registerer != nil {
		if err := a.prom.register(o.Registerer); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Horizon is how much event time before the oldest open minute a replay
// must cover: the longest Distinct window (or one minute), so every open
// minute and window is rebuilt whole, plus the Tolerance, so are the ones
// that closed while writes were failing.
//
// The service replays from target = (event time of the last committed
// record) - (Horizon + 2 x (lateness + out-of-orderness)) and assigns
// partitions with from = target + lateness + out-of-orderness: records
// before the replay's first offset can be that much newer than it. Every
// minute and window whose final value the previous owner may not have
// written then starts after from, provided the previous owner's last
// successful write was less than Tolerance (event time) behind its last
// committed record.
func (a *Aggregator) Horizon() time.Duration { return a.window + a.o.Tolerance }

// AllowedLateness is the lateness the Aggregator closes minutes with.
func (a *Aggregator) AllowedLateness() time.Duration { return a.o.AllowedLateness }

// Assign starts (or restarts, for a rebuild) a partition whose replay
// begins at event time from (zero: nothing before, e.g. a partition never
// consumed). Minutes and windows starting before from are not computed
// and not written. On a restart, the partition's rows starting at or after
// from are dropped, since the replay computes them again whole, and its
// rows before from keep their value and are still written if dirty.
// Every Assign also forgets the watermark: the replay rebuilds it.
func (a *Aggregator) Assign(topic string, partition int32, from time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := tp{topic, partition}
	f := int64(math.MinInt64)
	if !from.IsZero() {
		f = from.Unix()
	}
	old := a.parts[k]
	p := &partInfo{tp: k, from: f}
	a.parts[k] = p
	a.lastP = nil
	a.closed = math.MinInt64
	if old == nil {
		return
	}
	for ck, c := range a.cells {
		if c.part != old {
			continue
		}
		if ck.minute >= f {
			a.dropCell(c)
		} else {
			c.part = p
		}
	}
	for wk, w := range a.wins {
		if w.part != old {
			continue
		}
		if wk.start >= f {
			a.dropWin(w)
		} else {
			w.part = p
		}
	}
}

// Revoke drops a partition's state without writing it: the partition's
// new owner rebuilds and writes it.
func (a *Aggregator) Revoke(topic string, partition int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := tp{topic, partition}
	p := a.parts[k]
	if p == nil {
		return
	}
	delete(a.parts, k)
	a.lastP = nil
	for _, c := range a.cells {
		if c.part == p {
			a.dropCell(c)
		}
	}
	for _, w := range a.wins {
		if w.part == p {
			a.dropWin(w)
		}
	}
}

func (a *Aggregator) dropCell(c *cell) {
	delete(a.cells, c.k)
	c.dead = true
	a.entries--
}

func (a *Aggregator) dropWin(w *distinctWin) {
	delete(a.wins, w.k)
	w.dead = true
	a.entries -= len(w.vals)
}

// Add evaluates every metric on rec, read from topic/partition.
func (a *Aggregator) Add(topic string, partition int32, rec schemas.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.add(topic, partition, rec)
}

// AddBatch adds n records under one lock: at(i) returns the i-th record
// and where it was read (a nil record is skipped).
func (a *Aggregator) AddBatch(n int, at func(i int) (topic string, partition int32, rec schemas.Record)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range n {
		if t, p, rec := at(i); rec != nil {
			a.add(t, p, rec)
		}
	}
}

func (a *Aggregator) add(topic string, partition int32, rec schemas.Record) {
	var p *partInfo
	for _, i := range a.byDataset[rec.Dataset()] {
		m := a.o.Metrics[i]
		if !m.Match(rec) {
			continue
		}
		if p == nil {
			k := tp{topic, partition}
			if a.lastP != nil && a.lastTP == k {
				p = a.lastP
			} else if p = a.parts[k]; p == nil {
				a.st.Unassigned++
				return
			} else {
				a.lastTP, a.lastP = k, p
			}
		}
		t := rec.EventTime().UnixNano()
		minute := floorDiv(t, int64(time.Minute)) * 60
		if m.Agg == metrics.Distinct {
			a.addDistinct(uint16(i), m, p, t, minute, rec)
			continue
		}
		if minute < p.from {
			a.st.Suppressed++
			continue
		}
		if (minute+60)*1e9 <= a.closed {
			a.st.Late++
			continue
		}
		ck := cellKey{metric: uint16(i), key: m.Key(rec), minute: minute}
		c := a.cells[ck]
		if c == nil {
			if a.entries >= a.o.MaxEntries {
				a.st.Overflow++
				continue
			}
			c = &cell{k: ck, part: p}
			a.cells[ck] = c
			a.entries++
		} else if c.part != p {
			a.st.CrossPartition++
		}
		c.row.value += m.Amount(rec)
		a.touch(&c.row, ref{c: c})
		a.st.Events++
	}
}

func (a *Aggregator) addDistinct(mi uint16, m *metrics.Metric, p *partInfo, t, minute int64, rec schemas.Record) {
	win := int64(m.Window / time.Second)
	start := floorDiv(minute, win) * win
	if start < p.from {
		a.st.Suppressed++
		return
	}
	if (start+win)*1e9 <= a.closed {
		a.st.Late++
		return
	}
	wk := winKey{metric: mi, key: m.Key(rec), start: start}
	w := a.wins[wk]
	if w == nil {
		if a.entries >= a.o.MaxEntries {
			a.st.Overflow++
			return
		}
		n := int(win / 60)
		w = &distinctWin{k: wk, part: p, rows: make([]row, n)}
		a.wins[wk] = w
	} else if w.part != p {
		a.st.CrossPartition++
	}
	j := int32((minute - start) / 60)
	v := m.Value(rec)
	vi := w.lookup(v)
	switch {
	case vi < 0:
		if a.entries >= a.o.MaxEntries {
			a.st.Overflow++
			return
		}
		w.insert(v, j)
		w.rows[j].firsts++
		a.entries++
		a.distinctChanged(w, j)
	case j < w.vals[vi].first:
		// An out-of-order event moves the value's first minute earlier:
		// the minutes in between now count it.
		w.rows[w.vals[vi].first].firsts--
		w.vals[vi].first = j
		w.rows[j].firsts++
		a.distinctChanged(w, j)
	}
	if r := &w.rows[j]; !r.present {
		r.present = true
		r.value = a.running(w, j)
		a.touch(r, ref{w: w, j: int(j)})
	}
	a.st.Events++
}

// running is the window's distinct count up to the end of minute j.
func (a *Aggregator) running(w *distinctWin, j int32) int64 {
	var n int64
	for i := int32(0); i <= j; i++ {
		n += int64(w.rows[i].firsts)
	}
	return n
}

// distinctChanged refreshes the rows of minutes j.. of w.
func (a *Aggregator) distinctChanged(w *distinctWin, j int32) {
	n := a.running(w, j-1)
	for i := j; i < int32(len(w.rows)); i++ {
		n += int64(w.rows[i].firsts)
		r := &w.rows[i]
		if r.present && r.value != n {
			r.value = n
			a.touch(r, ref{w: w, j: int(i)})
		}
	}
}

// touch marks r changed and queues it.
func (a *Aggregator) touch(r *row, rf ref) {
	r.mod++
	if !r.queued {
		r.queued = true
		a.dirty = append(a.dirty, rf)
		if rf.w != nil {
			rf.w.queued++
		}
	}
}

// Advance moves the watermark (the engine's) and forgets closed state
// whose final value is written.
func (a *Aggregator) Advance(watermark time.Time) {
	if watermark.IsZero() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := watermark.UnixNano() - a.late
	if c <= a.closed {
		return
	}
	a.closed = c
	if m := floorDiv(c, int64(time.Minute)); m != a.gcMinute {
		a.gcMinute = m
		a.gc()
	}
}

// dropIfDone forgets the cell or window of a row just written when it is
// closed and has nothing else to write.
func (a *Aggregator) dropIfDone(rf ref) {
	if rf.c != nil {
		if !rf.c.dead && (rf.c.k.minute+60)*1e9 <= a.closed {
			a.dropCell(rf.c)
		}
		return
	}
	if w := rf.w; !w.dead && w.queued == 0 && (w.k.start+int64(len(w.rows))*60)*1e9 <= a.closed {
		a.dropWin(w)
	}
}

// gc drops closed, written cells and windows.
func (a *Aggregator) gc() {
	for _, c := range a.cells {
		if !c.row.queued && (c.k.minute+60)*1e9 <= a.closed {
			a.dropCell(c)
		}
	}
	for _, w := range a.wins {
		if w.queued == 0 && (w.k.start+int64(len(w.rows))*60)*1e9 <= a.closed {
			a.dropWin(w)
		}
	}
}

// Stats returns the counters.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.Dirty = len(a.dirty)
	s.Entries = a.entries
	return s
}

type snap struct {
	r   ref
	mod uint32
}

// Flush writes every dirty row now. On failure the rows stay dirty for
// the next attempt.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	list := a.dirty
	a.dirty = nil
	rows := make([]merge.MinuteAggregate, 0, len(list))
	snaps := make([]snap, 0, len(list))
	for _, rf := range list {
		if rf.dead() {
			continue
		}
		r := rf.row()
		if r.mod == r.written {
			a.unqueue(rf)
			continue
		}
		snaps = append(snaps, snap{rf, r.mod})
		rows = append(rows, a.aggregate(rf))
	}
	a.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, a.o.WriteTimeout)
	err := a.o.Writer.Write(wctx, rows)
	cancel()
	a.prom.flushSeconds.Observe(time.Since(began).Seconds())
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range snaps {
		if s.r.dead() {
			continue
		}
		r := s.r.row()
		if err == nil {
			r.written = s.mod
		}
		if r.mod == r.written {
			a.unqueue(s.r)
			a.dropIfDone(s.r)
		} else {
			a.dirty = append(a.dirty, s.r)
		}
	}
	if err != nil {
		a.st.WriteErrors++
		a.prom.writeErrors.Inc()
		return fmt.Errorf("realtime/minutes: write %d rows: %w", len(rows), err)
	}
	a.st.Writes++
	a.st.RowsWritten += int64(len(rows))
	a.prom.rowsWritten.Add(float64(len(rows)))
	return nil
}

func (a *Aggregator) unqueue(rf ref) {
	rf.row().queued = false
	if rf.w != nil {
		rf.w.queued--
	}
}

func (a *Aggregator) aggregate(rf ref) merge.MinuteAggregate {
	if rf.c != nil {
		return merge.MinuteAggregate{Metric: a.o.Metrics[rf.c.k.metric].Name, Key: rf.c.k.key,
			Minute: time.Unix(rf.c.k.minute, 0).UTC(), Value: rf.c.row.value}
	}
	w := rf.w
	return merge.MinuteAggregate{Metric: a.o.Metrics[w.k.metric].Name, Key: w.k.key,
		Minute: time.Unix(w.k.start+int64(rf.j)*60, 0).UTC(), Value: w.rows[rf.j].value}
}

// Run flushes every FlushInterval until ctx ends, backing off after a
// failed write, then flushes a last time (bounded by WriteTimeout) and
// returns.
func (a *Aggregator) Run(ctx context.Context) error {
	wait := a.o.FlushInterval
	backoff := a.o.RetryBackoff
	for {
		select {
		case <-ctx.Done():
			return a.Flush(context.WithoutCancel(ctx))
		case <-time.After(wait):
		}
		if err := a.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			a.log.Warn("per-minute aggregates not written; retrying", "err", err, "retry_in", backoff)
			wait = backoff
			backoff = min(backoff*2, a.o.MaxBackoff)
			continue
		}
		wait, backoff = a.o.FlushInterval, a.o.RetryBackoff
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
