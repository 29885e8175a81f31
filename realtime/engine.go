// Package realtime is the speed layer's engine: it runs a rule set over
// decoded events in event time, with per-partition watermarks, sliding
// windows (package window), suppression and resolve alerts.
//
// The engine is pure and single-threaded. A driver loop feeds it events
// with their Kafka position and its own clock reading (Process), and asks
// it to advance the watermark after each poll (Advance). Given the same
// calls in the same order it produces the same alerts, and alert ids do
// not depend on arrival order or clocks at all (alert.NewID), which is what
// exactly-once alerting after a replay needs. See docs/realtime.md.
package realtime

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/realtime/watermark"
	"github.com/lambdalog/lambdalog/realtime/window"
	"github.com/lambdalog/lambdalog/schemas"
)

// Options configures an Engine. Zero values take the defaults below.
type Options struct {
	// OutOfOrderness is the bounded out-of-orderness of each input
	// partition: its watermark is its newest event time minus this.
	OutOfOrderness time.Duration
	// AllowedLateness is how far behind the watermark an event may be and
	// still update its windows; events further behind are returned as late.
	AllowedLateness time.Duration
	// IdleTimeout is the processing time after which a silent partition
	// stops holding the watermark back.
	IdleTimeout time.Duration
	// MaxKeysPerRule caps the keys tracked per rule.
	MaxKeysPerRule int
	// ExactDistinct is the per-key bound of exact distinct counting.
	ExactDistinct int
	// MaxSketches caps HyperLogLog sketches per rule.
	MaxSketches int
	// Samples is the number of event references kept per key and put in
	// alerts.
	Samples int
	// Logger receives rule swaps; nil discards.
	Logger *slog.Logger
	// Lane, when set, puts each rule in a lane (0 to MaxLanes-1):
	// ProcessLane feeds an event to the rules of one lane only. The
	// service runs the rules keyed by the input's partition key in lane 0
	// on the source topics and the others in one lane per repartition
	// topic, so that a record copied to several topics reaches each rule
	// once. SetRules evaluates it. Nil puts every rule in lane 0.
	Lane func(*rules.Rule) int
}

// MaxLanes bounds the lane numbers (Options.Lane): the engine keeps a
// routing table per lane up to the highest in use.
const MaxLanes = 1024

// Defaults for Options.
const (
	DefaultOutOfOrderness  = 5 * time.Second
	DefaultAllowedLateness = 5 * time.Second
	DefaultIdleTimeout     = 30 * time.Second
	DefaultMaxKeysPerRule  = 1_000_000
	DefaultSamples         = 5
	// seqDepth is how many step-1 event times a sequence rule keeps per
	// key; MaxKeysPerRule x seqDepth bounds the step-2 events it keeps.
	seqDepth = 8
)

// Source is where an event was read.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	// Clock, when its Topic is set, is the input the watermark tracks the
	// event under, when that is not where it was first written (Topic,
	// Partition and Offset, which alert samples name): an event read from
	// a repartition topic is tracked per (repartition partition, origin
	// partition), since several producers interleave in one partition.
	Clock watermark.Partition
}

// Stats counts what the engine did.
type Stats struct {
	Events     uint64
	Late       uint64
	Alerts     uint64
	Resolves   uint64
	Suppressed uint64
	// Rules holds per-rule window statistics, in rule order.
	Rules []RuleStats
}

// RuleStats is one rule's state size.
type RuleStats struct {
	ID string
	// Keys is the keys the rule tracks; for a sequence rule, the keys
	// holding step-1 events plus the step-2 events held (those are kept
	// by time, not per key: recentSteps).
	Keys int
	// Dropped counts a sequence rule's events not kept because its caps
	// (MaxKeysPerRule step-1 keys, MaxKeysPerRule x 8 step-2 events)
	// were reached: matches they would have made are lost.
	Dropped uint64
	Window  window.Stats
}

// Engine evaluates a rule set over a stream. It is not safe for concurrent
// use.
type Engine struct {
	opts   Options
	wm     *watermark.Tracker
	states []*ruleState
	// plans routes a record to the rules that read its dataset, per
	// lane up to the highest of the rules; bySlot holds the plans of the
	// record types datasetSlot knows.
	plans  []map[string]*dsPlan
	bySlot [][len(slotDatasets)]*dsPlan
	// seed hashes keys for every rule's store, so that rules keyed on
	// the same columns share one hash per event; epoch numbers events
	// for the plans' per-event caches.
	seed   maphash.Seed
	epoch  uint64
	stats  Stats
	smpBuf []window.Sample
	log    *slog.Logger
}

type ruleState struct {
	rule    *rules.Rule
	store   *window.Store        // threshold and value_count
	seq     *keyIndex[seqState]  // sequence: step-1 events per key
	steps   *recentSteps         // sequence: recent step-2 events
	fired   *keyIndex[fireState] // suppression and resolve state per key
	firing  []string             // keys with an open alert, in firing order
	nextGC  int64
	dropped uint64
}

// fireState is the alert state of one (rule, key).
type fireState struct {
	period     int64 // suppression period of the last alert
	lastWin    int64 // start of the last window counted (alerted or suppressed)
	suppressed int64 // re-triggers suppressed since the last alert
	firing     bool  // an alert is open (resolve rules)
	alertID    string
	openEnd    int64 // end of the window that opened the alert
}

// seqState holds the latest step-1 events of a key, ascending by event
// time (Sample.Time). Step-2 events are kept by time, not by key
// (recentSteps).
type seqState struct {
	as []window.Sample
}

// New returns an engine running rs.
func New(rs *rules.RuleSet, opts Options) (*Engine, error) {
	if opts.OutOfOrderness == 0 {
		opts.OutOfOrderness = DefaultOutOfOrderness
	}
	if opts.AllowedLateness == 0 {
		opts.AllowedLateness = DefaultAllowedLateness
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxKeysPerRule <= 0 {
		opts.MaxKeysPerRule = DefaultMaxKeysPerRule
	}
	if opts.Samples == 0 {
		opts.Samples = DefaultSamples
	}
	if opts.OutOfOrderness < 0 || opts.AllowedLateness < 0 || opts.IdleTimeout < 0 || opts.Samples < 0 {
		return nil, fmt.Errorf("realtime: negative option in %+v", opts)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opts: opts,
		wm:   watermark.New(watermark.Options{OutOfOrderness: opts.OutOfOrderness, IdleTimeout: opts.IdleTimeout}),
		log:  log,
		seed: maphash.MakeSeed(),
	}
	if err := e.SetRules(rs); err != nil {
		return nil, err
	}
	return e, nil
}

// SetRules swaps the rule set. Rules whose id and window definition
// (rules.Rule.StateKey) are unchanged keep their windows and alert state;
// the others start empty. On error the running rules stay in force.
func (e *Engine) SetRules(rs *rules.RuleSet) error {
	if rs == nil {
		return fmt.Errorf("realtime: nil rule set")
	}
	lanes := make(map[*rules.Rule]int, len(rs.Rules))
	for _, r := range rs.Rules {
		l := e.lane(r)
		if l < 0 || l >= MaxLanes {
			return fmt.Errorf("realtime: rule %s: lane %d out of [0, %d)", r.ID, l, MaxLanes)
		}
		lanes[r] = l
	}
	old := map[string]*ruleState{}
	for _, st := range e.states {
		old[st.rule.ID] = st
	}
	var states []*ruleState
	kept := 0
	for _, r := range rs.Rules {
		if st, ok := old[r.ID]; ok && st.rule.StateKey() == r.StateKey() {
			states = append(states, &ruleState{rule: r, store: st.store, seq: st.seq, steps: st.steps, fired: st.fired, firing: st.firing, nextGC: st.nextGC, dropped: st.dropped})
			if st.store != nil {
				// The threshold may have changed: samples from now on
				// follow the new one.
				st.store.SetSampleFloor(e.sampleFloor(r))
			}
			kept++
			continue
		}
		st := &ruleState{rule: r, fired: newKeyIndex[fireState]()}
		if r.Kind == rules.Sequence {
			st.seq = newKeyIndex[seqState]()
			st.steps = &recentSteps{}
		} else {
			s, err := window.NewStore(window.Spec{Size: r.Window, Slide: r.Slide, Op: r.Aggregate, Lateness: e.opts.AllowedLateness},
				window.Options{MaxKeys: e.opts.MaxKeysPerRule, ExactDistinct: e.opts.ExactDistinct, MaxSketches: e.opts.MaxSketches, Samples: e.opts.Samples, Seed: e.seed})
			if err != nil {
				return fmt.Errorf("realtime: rule %s: %w", r.ID, err)
			}
			if wm := e.wm.Watermark(); wm != math.MinInt64 {
				s.Advance(wm)
			}
			s.SetSampleFloor(e.sampleFloor(r))
			st.store = s
		}
		states = append(states, st)
	}
	e.states = states
	n := 1
	for _, l := range lanes {
		n = max(n, l+1)
	}
	e.plans, e.bySlot = make([]map[string]*dsPlan, n), make([][len(slotDatasets)]*dsPlan, n)
	for l := range n {
		e.plans[l] = buildPlans(states, func(r *rules.Rule) bool { return lanes[r] == l })
		for i, ds := range slotDatasets {
			e.bySlot[l][i] = e.plans[l][ds]
		}
	}
	e.log.Info("realtime: rules loaded", "rules", len(states), "kept_state", kept)
	return nil
}

// sampleFloor is the window value from which r's store keeps an event
// as a sample: for counts and distinct counts, which grow by at most one
// per event, Samples below the threshold, so that an alert shows the
// same samples as with every event kept (window.Store.SetSampleFloor);
// sums, minima and maxima keep every event.
func (e *Engine) sampleFloor(r *rules.Rule) float64 {
	if r.Aggregate == window.Count || r.Aggregate == window.Distinct {
		return r.Threshold - float64(e.opts.Samples)
	}
	return math.Inf(-1)
}

func (e *Engine) lane(r *rules.Rule) int {
	if e.opts.Lane == nil {
		return 0
	}
	return e.opts.Lane(r)
}

// Assign registers an input partition so that it holds the watermark back
// from the start.
func (e *Engine) Assign(topic string, partition int32, now time.Time) {
	e.wm.Assign(watermark.Partition{Topic: topic, Partition: partition}, now)
}

// Revoke forgets an input partition.
func (e *Engine) Revoke(topic string, partition int32) {
	e.wm.Revoke(watermark.Partition{Topic: topic, Partition: partition})
}

// Watermark is the global watermark as of the last Advance (zero time
// before any).
func (e *Engine) Watermark() time.Time {
	wm := e.wm.Watermark()
	if wm == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, wm).UTC()
}

// Process feeds one event read from src at processing time now. Alerts it
// triggers are appended to out. late is true when the event is further
// behind the watermark than the allowed lateness: it updated nothing, and
// the caller should publish it to the late-events topic.
func (e *Engine) Process(rec schemas.Record, src Source, now time.Time, out []alert.Alert) (alerts []alert.Alert, late bool) {
	return e.ProcessLane(rec, src, 0, now, out)
}

// ProcessLane is Process for the rules of one lane (Options.Lane) only;
// a lane without rules feeds none (the event still moves the watermark).
func (e *Engine) ProcessLane(rec schemas.Record, src Source, lane int, now time.Time, out []alert.Alert) (alerts []alert.Alert, late bool) {
	t := rec.EventTime().UnixNano()
	if wm := e.wm.Watermark(); wm != math.MinInt64 && t < wm-int64(e.opts.AllowedLateness) {
		e.stats.Late++
		return out, true
	}
	e.stats.Events++
	clock := src.Clock
	if clock.Topic == "" {
		clock = watermark.Partition{Topic: src.Topic, Partition: src.Partition}
	}
	e.wm.ObserveNanos(clock, t, now.UnixNano())
	sm := window.Sample{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, Time: t}
	var p *dsPlan
	if uint(lane) < uint(len(e.plans)) { // lanes past the rules' have none
		if i := datasetSlot(rec); i >= 0 {
			p = e.bySlot[lane][i]
		} else {
			p = e.plans[lane][rec.Dataset()]
		}
	}
	if p == nil {
		return out, false
	}
	e.epoch++
	for i := range p.steps {
		ps := &p.steps[i]
		if ps.filter >= 0 {
			f := &p.filters[ps.filter]
			if f.epoch != e.epoch {
				f.epoch, f.ok = e.epoch, f.f.Match(rec)
			}
			if !f.ok {
				continue
			}
		}
		k := &p.keys[ps.key]
		if k.epoch != e.epoch {
			k.epoch = e.epoch
			k.eval(rec, e.seed)
		}
		if !k.ok {
			continue
		}
		st := ps.st
		if ps.step >= 0 {
			out = e.sequence(st, ps.step, k.key, k.hash, t, sm, now, out)
			continue
		}
		r := st.rule
		var v float64
		var h uint64
		var ok bool
		if r.Aggregate == window.Distinct {
			if h, ok = r.Hash(rec); !ok {
				continue
			}
		} else if v, ok = r.Value(rec); !ok {
			continue
		}
		if wv, ref := st.store.AddHash(k.key, k.hash, t, v, h, sm); wv >= r.Threshold {
			out = e.trigger(st, ref, k.hash, st.store.Last(), t, now, out)
		}
	}
	return out, false
}

// trigger handles a window at or over the threshold: one alert per
// suppression period, counting the other crossing windows as suppressed.
func (e *Engine) trigger(st *ruleState, ref int32, kh uint64, w *window.Value, t int64, now time.Time, out []alert.Alert) []alert.Alert {
	r := st.rule
	period := window.FloorDiv(t, int64(r.Suppress))
	key := st.store.Key(ref)
	fs := st.fired.get(kh, key)
	if fs != nil && period <= fs.period {
		if w.Start > fs.lastWin {
			fs.lastWin = w.Start
			fs.suppressed++
			e.stats.Suppressed++
		}
		return out
	}
	a := e.baseAlert(r, key, alert.TypeStart, period, t, now)
	if fs != nil {
		a.Suppressed = fs.suppressed
	} else {
		fs = st.fired.put(kh, key)
	}
	a.WindowStart, a.WindowEnd = time.Unix(0, w.Start).UTC(), time.Unix(0, w.End).UTC()
	a.Value, a.EventCount = w.V, w.N
	a.Precision = alert.Exact
	if !w.Exact {
		a.Precision = alert.Estimate
	}
	first, last, smp := st.store.Details(ref, *w, e.smpBuf[:0])
	e.smpBuf = smp[:0]
	a.FirstEvent, a.LastEvent = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
	a.Samples = refs(smp)
	wasFiring := fs.firing
	*fs = fireState{period: period, lastWin: w.Start, alertID: a.ID, firing: r.Resolve, openEnd: w.End}
	if r.Resolve && !wasFiring {
		st.firing = append(st.firing, key)
	}
	e.stats.Alerts++
	return append(out, a)
}

func refs(smp []window.Sample) []alert.Ref {
	out := make([]alert.Ref, len(smp))
	for i, s := range smp {
		out[i] = alert.Ref{Topic: s.Topic, Partition: s.Partition, Offset: s.Offset, Timestamp: time.Unix(0, s.Time).UTC()}
	}
	return out
}

func (e *Engine) baseAlert(r *rules.Rule, key, typ string, period, t int64, now time.Time) alert.Alert {
	key = strings.Clone(key) // key may be a view of a reused buffer
	a := alert.Alert{
		ID:          alert.NewID(r.ID, key, typ, period),
		Kind:        "alert",
		Type:        typ,
		Timestamp:   time.Unix(0, t).UTC(),
		RuleID:      r.ID,
		RuleName:    r.Name,
		RuleKind:    string(r.Kind),
		Description: r.Description,
		Severity:    r.Severity,
		SeverityID:  rules.SeverityID(r.Severity),
		Datasets:    r.Datasets(),
		KeyFields:   r.Key,
		KeyValues:   strings.Split(key, string(rules.KeySep)),
		Threshold:   r.Threshold,
		GeneratedAt: now.UTC(),
		Aggregate:   r.Aggregate.String(),
	}
	if r.Kind == rules.Sequence {
		a.Aggregate, a.Threshold = "sequence", 1
	} else {
		a.AggregateField = r.Field
	}
	return a
}

// sequence runs one step of a two-step rule on an event for key that
// matched the step: a step-1 event for key X followed, within the rule's
// duration, by a step-2 event for X. Either step may arrive out of order.
// t is the event's time, sm.Time.
func (e *Engine) sequence(st *ruleState, step int, key string, kh uint64, t int64, sm window.Sample, now time.Time, out []alert.Alert) []alert.Alert {
	r := st.rule
	within := int64(r.Within)
	if step == 1 {
		// Latest step-1 event at or before t, within the duration.
		if ss := st.seq.get(kh, key); ss != nil {
			for i := len(ss.as) - 1; i >= 0; i-- {
				if a := ss.as[i].Time; a <= t && t-a <= within {
					out = e.seqMatch(st, key, kh, ss.as[i], sm, now, out)
					break
				}
			}
		}
		// Kept for a step-1 event that arrives after it.
		if st.steps.n >= e.opts.MaxKeysPerRule*seqDepth {
			st.dropped++
			return out
		}
		st.steps.add(kh, key, sm)
		return out
	}
	ss := st.seq.get(kh, key)
	if ss == nil {
		if st.seq.Len() >= e.opts.MaxKeysPerRule {
			st.dropped++
			return out
		}
		ss = st.seq.put(kh, key)
	}
	// Earliest step-2 event at or after t, within the duration (the
	// step-2 event arrived first).
	if b, ok := st.steps.earliest(kh, key, t, within, sm); ok {
		out = e.seqMatch(st, key, kh, sm, b, now, out)
	}
	ss.as = insertSample(ss.as, sm)
	return out
}

// insertSample inserts sm in ascending order of event time (after any
// with the same time), keeping the newest seqDepth.
func insertSample(refs []window.Sample, sm window.Sample) []window.Sample {
	// Events come mostly in order: look for the place from the end.
	t := sm.Time
	i := len(refs)
	for i > 0 && refs[i-1].Time > t {
		i--
	}
	if n := len(refs); n == seqDepth && i == n {
		copy(refs, refs[1:])
		refs[n-1] = sm
		return refs
	}
	refs = append(refs, window.Sample{})
	copy(refs[i+1:], refs[i:])
	refs[i] = sm
	if len(refs) > seqDepth {
		// Shift in place rather than reslicing, so the backing array is
		// reused instead of regrown.
		copy(refs, refs[1:])
		refs = refs[:seqDepth]
	}
	return refs
}

func (e *Engine) seqMatch(st *ruleState, key string, kh uint64, a, b window.Sample, now time.Time, out []alert.Alert) []alert.Alert {
	r := st.rule
	period := window.FloorDiv(b.Time, int64(r.Suppress))
	fs := st.fired.get(kh, key)
	if fs != nil && period <= fs.period {
		if b.Time > fs.lastWin {
			fs.lastWin = b.Time
			fs.suppressed++
			e.stats.Suppressed++
		}
		return out
	}
	al := e.baseAlert(r, key, alert.TypeStart, period, b.Time, now)
	if fs != nil {
		al.Suppressed = fs.suppressed
	} else {
		fs = st.fired.put(kh, key)
	}
	*fs = fireState{period: period, lastWin: b.Time, alertID: al.ID}
	al.WindowStart, al.WindowEnd = time.Unix(0, a.Time).UTC(), time.Unix(0, a.Time+int64(r.Within)).UTC()
	al.Value, al.EventCount, al.Precision = 1, 2, alert.Exact
	al.FirstEvent, al.LastEvent = time.Unix(0, a.Time).UTC(), time.Unix(0, b.Time).UTC()
	al.Samples = refs([]window.Sample{a, b})
	e.stats.Alerts++
	return append(out, al)
}

// Advance recomputes the watermark at processing time now, lets the
// windows it closed go (evicting idle keys), emits resolve alerts for
// windows that closed under their threshold, and forgets expired
// suppression state. Alerts are appended to out.
func (e *Engine) Advance(now time.Time, out []alert.Alert) []alert.Alert {
	prev := e.wm.Watermark()
	wm := e.wm.Advance(now)
	if wm == prev || wm == math.MinInt64 {
		return out
	}
	late := int64(e.opts.AllowedLateness)
	for _, st := range e.states {
		r := st.rule
		if st.steps != nil {
			// A step-1 event accepted from now on is at or after
			// wm - late, and so is any step-2 event it can match.
			st.steps.expire(wm - late)
		}
		if st.store != nil {
			st.store.Advance(wm)
			if r.Resolve {
				out = e.resolve(st, wm, now, out)
			}
		}
		if wm < st.nextGC {
			continue
		}
		// Suppression state of a period that is over, with no open alert,
		// and sequence state no accepted event can match, are dropped.
		// Run at most once per suppression period / 8.
		st.nextGC = wm + int64(r.Suppress)/8
		cur := window.FloorDiv(wm-late, int64(r.Suppress))
		st.fired.deleteIf(func(_ string, fs *fireState) bool { return fs.period < cur && !fs.firing })
		if st.seq != nil {
			horizon := wm - late - int64(r.Within)
			st.seq.deleteIf(func(_ string, ss *seqState) bool {
				return len(ss.as) == 0 || ss.as[len(ss.as)-1].Time < horizon
			})
		}
	}
	return out
}

// resolve closes open alerts whose latest closed window is under the
// threshold. A window [end-size, end) is closed once the watermark passes
// its end; it is evaluated once, here.
func (e *Engine) resolve(st *ruleState, wm int64, now time.Time, out []alert.Alert) []alert.Alert {
	r := st.rule
	slide := int64(r.Slide)
	end := window.FloorDiv(wm, slide) * slide
	j := 0
	for _, key := range st.firing {
		fs := st.fired.get(maphash.String(e.seed, key), key)
		if fs == nil || !fs.firing {
			continue
		}
		if end <= fs.openEnd {
			st.firing[j] = key
			j++
			continue
		}
		v, ok := st.store.Query(key, end-int64(r.Window))
		if ok && v.V >= r.Threshold {
			st.firing[j] = key
			j++
			continue
		}
		a := e.baseAlert(r, key, alert.TypeEnd, fs.period, end, now)
		a.ID = alert.NewID(r.ID, key, alert.TypeEnd+":"+fs.alertID, fs.period)
		a.Resolves = fs.alertID
		a.WindowStart, a.WindowEnd = time.Unix(0, end-int64(r.Window)).UTC(), time.Unix(0, end).UTC()
		a.Value, a.EventCount, a.Precision = v.V, v.N, alert.Exact
		if !v.Exact {
			a.Precision = alert.Estimate
		}
		a.Samples = []alert.Ref{}
		fs.firing = false
		e.stats.Resolves++
		out = append(out, a)
	}
	clear(st.firing[j:])
	st.firing = st.firing[:j]
	return out
}

// KeyValue is one key's current window aggregate under one rule.
type KeyValue struct {
	Key   string
	Value window.Value
}

// Top returns up to n keys of the windowed rule ruleID with the largest
// current (frontier) window aggregate, largest first, ties by key. ok is
// false when the rule does not exist or is a sequence rule. It costs a
// pass over the rule's keys; it is meant for live views, not per event.
func (e *Engine) Top(ruleID string, n int) (top []KeyValue, ok bool) {
	var store *window.Store
	for _, st := range e.states {
		if st.rule.ID == ruleID {
			store = st.store
		}
	}
	if store == nil || n <= 0 {
		return nil, store != nil
	}
	less := func(a, b KeyValue) bool { // a ranks below b
		if a.Value.V != b.Value.V {
			return a.Value.V < b.Value.V
		}
		return a.Key > b.Key
	}
	// A bounded min-heap keeps the n largest in O(keys log n).
	h := make([]KeyValue, 0, min(n, 1024))
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && less(h[l], h[m]) {
				m = l
			}
			if r := l + 1; r < len(h) && less(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	store.Each(func(key string, v window.Value) bool {
		kv := KeyValue{Key: key, Value: v}
		if len(h) < n {
			h = append(h, kv)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !less(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			return true
		}
		if less(h[0], kv) {
			h[0] = kv
			down(0)
		}
		return true
	})
	sort.Slice(h, func(i, j int) bool { return less(h[j], h[i]) })
	return h, true
}

// Window returns key's window of the windowed rule ruleID that starts at
// start (a multiple of the rule's slide), from the state still held.
func (e *Engine) Window(ruleID, key string, start time.Time) (window.Value, bool) {
	for _, st := range e.states {
		if st.rule.ID == ruleID && st.store != nil {
			return st.store.Query(key, start.UnixNano())
		}
	}
	return window.Value{}, false
}

// Stats returns counters and per-rule state sizes.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Rules = make([]RuleStats, len(e.states))
	for i, st := range e.states {
		rs := RuleStats{ID: st.rule.ID, Dropped: st.dropped}
		if st.store != nil {
			rs.Window = st.store.Stats()
			rs.Keys = rs.Window.Keys
		} else {
			rs.Keys = st.seq.Len() + st.steps.n
		}
		s.Rules[i] = rs
	}
	return s
}
