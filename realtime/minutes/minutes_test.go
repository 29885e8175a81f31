package minutes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// table is an in-memory rt_metric_minutes: the last write of a (metric,
// key, minute) wins, as argMax(value, version) does.
type table struct {
	mu     sync.Mutex
	rows   map[rowKey]int64
	writes int
	fail   int // the next fail writes return an error
}

type rowKey struct {
	metric, key string
	minute      time.Time
}

func newTable() *table { return &table{rows: map[rowKey]int64{}} }

func (t *table) Write(_ context.Context, aggs []merge.MinuteAggregate) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail > 0 {
		t.fail--
		return errors.New("clickhouse unreachable")
	}
	t.writes++
	for _, a := range aggs {
		if !a.Minute.Equal(a.Minute.Truncate(time.Minute)) {
			return fmt.Errorf("minute %s not aligned", a.Minute)
		}
		t.rows[rowKey{a.Metric, a.Key, a.Minute.UTC()}] = a.Value
	}
	return nil
}

func (t *table) snapshot() map[rowKey]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[rowKey]int64, len(t.rows))
	for k, v := range t.rows {
		out[k] = v
	}
	return out
}

var base = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type event struct {
	rec       schemas.Record
	topic     string
	partition int32
}

// stream is n random events over span of event time, shuffled by up to
// disorder, each of its key's partition (key index mod 3) and dataset's
// topic.
func stream(rng *rand.Rand, n int, span, disorder time.Duration) []event {
	type timed struct {
		event
		sortAt time.Time
	}
	var out []timed
	for i := range n {
		at := base.Add(time.Duration(int64(span) * int64(i) / int64(n)))
		sortAt := at
		at = at.Add(-time.Duration(rng.Int64N(int64(disorder) + 1)))
		k := rng.IntN(7)
		ip := fmt.Sprintf("10.0.0.%d", k)
		c := schemas.Common{Timestamp: at}
		var rec schemas.Record
		var topic string
		switch rng.IntN(3) {
		case 0:
			rec, topic = &schemas.Auth{Base: c, SourceIP: ip, Outcome: []string{"failure", "failure", "success"}[rng.IntN(3)]}, "auth"
		case 1:
			rec, topic = &schemas.Firewall{Base: c, SourceIP: ip, Action: []string{"deny", "drop", "allow"}[rng.IntN(3)], DestinationPort: uint16(20 + rng.IntN(12))}, "firewall"
		default:
			rec, topic = &schemas.Web{Base: c, SourceIP: ip, Status: uint16([]int{200, 404, 403, 500, 499, 400}[rng.IntN(6)])}, "web"
		}
		out = append(out, timed{event{rec, topic, int32(k % 3)}, sortAt})
	}
	slices.SortStableFunc(out, func(a, b timed) int { return a.sortAt.Compare(b.sortAt) })
	evs := make([]event, len(out))
	for i := range out {
		evs[i] = out[i].event
	}
	return evs
}

// bruteForce computes every row from scratch: per metric, key and minute
// with a matching event, the minute's amount or the window's distinct
// count up to the end of the minute, counting only events whose minute
// (Count, Sum) or window (Distinct) starts at or after from.
func bruteForce(evs []event, from time.Time) map[rowKey]int64 {
	out := map[rowKey]int64{}
	for _, m := range metrics.All() {
		type dk struct {
			key    string
			window time.Time
		}
		firstMinute := map[dk]map[string]time.Time{}
		minutesWithEvents := map[rowKey]bool{}
		for _, e := range evs {
			if !m.Match(e.rec) {
				continue
			}
			minute := e.rec.EventTime().UTC().Truncate(time.Minute)
			k := rowKey{m.Name, m.Key(e.rec), minute}
			if m.Agg != metrics.Distinct {
				if !minute.Before(from) {
					out[k] += m.Amount(e.rec)
				}
				continue
			}
			w := dk{k.key, m.WindowStart(minute)}
			if w.window.Before(from) {
				continue
			}
			if firstMinute[w] == nil {
				firstMinute[w] = map[string]time.Time{}
			}
			if f, ok := firstMinute[w][m.Value(e.rec)]; !ok || minute.Before(f) {
				firstMinute[w][m.Value(e.rec)] = minute
			}
			minutesWithEvents[k] = true
		}
		for k := range minutesWithEvents {
			n := int64(0)
			for _, f := range firstMinute[dk{k.key, m.WindowStart(k.minute)}] {
				if !f.After(k.minute) {
					n++
				}
			}
			out[k] = n
		}
	}
	return out
}

// run feeds evs to a with the watermark of a per-partition tracker (max
// event time minus ooo, the minimum over partitions), flushing every
// flushEvery events.
type feeder struct {
	a        *Aggregator
	ooo      time.Duration
	maxAt    map[int32]time.Time
	flushErr int
}

func (f *feeder) feed(t *testing.T, evs []event, flushEvery int, rng *rand.Rand) {
	t.Helper()
	for i, e := range evs {
		f.a.Add(e.topic, e.partition, e.rec)
		if at := e.rec.EventTime(); at.After(f.maxAt[e.partition]) {
			f.maxAt[e.partition] = at
		}
		if len(f.maxAt) == 3 {
			var wm time.Time
			for _, at := range f.maxAt {
				if wm.IsZero() || at.Before(wm) {
					wm = at
				}
			}
			f.a.Advance(wm.Add(-f.ooo))
		}
		if flushEvery > 0 && (i+1)%(flushEvery+rng.IntN(flushEvery)) == 0 {
			if err := f.a.Flush(context.Background()); err != nil {
				f.flushErr++
			}
		}
	}
}

func newFeeder(t *testing.T, w Writer, late, ooo time.Duration, from time.Time) *feeder {
	t.Helper()
	a, err := New(Options{Writer: w, AllowedLateness: late})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"auth", "firewall", "web"} {
		for p := range int32(3) {
			a.Assign(topic, p, from)
		}
	}
	return &feeder{a: a, ooo: ooo, maxAt: map[int32]time.Time{}}
}

func compare(t *testing.T, got, want map[rowKey]int64) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("no expected rows: the check would prove nothing")
	}
	bad := 0
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			bad++
			if bad <= 10 {
				t.Errorf("%s %s %s: got %d (present %v), want %d", k.metric, k.key, k.minute.Format(time.TimeOnly), g, ok, v)
			}
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			bad++
			if bad <= 10 {
				t.Errorf("%s %s %s: unexpected row %d", k.metric, k.key, k.minute.Format(time.TimeOnly), v)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rows differ", bad, len(want))
	}
}

// windows folds rows into the metric's tumbling windows the way the
// serving layer does: sum of minutes (Count, Sum), largest minute
// (Distinct).
func windows(rows map[rowKey]int64) map[string]map[metrics.Cell]int64 {
	out := map[string]map[metrics.Cell]int64{}
	for k, v := range rows {
		m, _ := metrics.Lookup(k.metric)
		if out[k.metric] == nil {
			out[k.metric] = map[metrics.Cell]int64{}
		}
		c := metrics.Cell{Window: m.WindowStart(k.minute), Key: k.key}
		if m.Agg == metrics.Distinct {
			out[k.metric][c] = max(out[k.metric][c], v)
		} else {
			out[k.metric][c] += v
		}
	}
	return out
}

func records(evs []event) []schemas.Record {
	out := make([]schemas.Record, len(evs))
	for i, e := range evs {
		out[i] = e.rec
	}
	return out
}

// TestRandomStreamsEqualBruteForce feeds random out-of-order streams
// (disorder within the lateness, so no event is late) with flushes at
// random points and checks every written row, and every tumbling window
// folded from the rows, against a from-scratch computation and the
// metrics' own Reference.
func TestRandomStreamsEqualBruteForce(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			evs := stream(rng, 3000+rng.IntN(3000), 75*time.Minute, 40*time.Second)
			tab := newTable()
			f := newFeeder(t, tab, 45*time.Second, 5*time.Second, time.Time{})
			f.feed(t, evs, 200, rng)
			f.a.Advance(base.Add(24 * time.Hour))
			if err := f.a.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := f.a.Stats()
			if st.Late != 0 || st.Overflow != 0 || st.CrossPartition != 0 || st.Unassigned != 0 {
				t.Fatalf("stats %+v: nothing should be dropped", st)
			}
			got := tab.snapshot()
			compare(t, got, bruteForce(evs, time.Time{}))
			folded := windows(got)
			for _, m := range metrics.All() {
				ref := m.Reference(records(evs))
				if len(ref) == 0 || len(ref) != len(folded[m.Name]) {
					t.Fatalf("%s: %d windows, reference %d", m.Name, len(folded[m.Name]), len(ref))
				}
				for c, v := range ref {
					if folded[m.Name][c] != v {
						t.Errorf("%s %v: %d, reference %d", m.Name, c, folded[m.Name][c], v)
					}
				}
			}
			// Closed and written, everything is forgotten.
			if st.Entries != 0 || st.Dirty != 0 {
				t.Errorf("after the last flush: %d entries, %d dirty rows held", st.Entries, st.Dirty)
			}
			if st.RowsWritten < int64(len(got)) {
				t.Errorf("%d rows written, table has %d", st.RowsWritten, len(got))
			}
		})
	}
}

// TestLateEventsAreDroppedAndCounted: an event of a closed minute changes
// no row and is counted; one of a minute still open (within the
// lateness) is added.
func TestLateEventsAreDroppedAndCounted(t *testing.T) {
	tab := newTable()
	a, err := New(Options{Writer: tab, AllowedLateness: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a.Assign("auth", 0, time.Time{})
	fail := func(at time.Time) schemas.Record {
		return &schemas.Auth{Base: schemas.Common{Timestamp: at}, SourceIP: "s", Outcome: "failure"}
	}
	a.Add("auth", 0, fail(base.Add(10*time.Second)))
	a.Advance(base.Add(90 * time.Second)) // closes 10:00 (90s-30s >= 60s)
	a.Add("auth", 0, fail(base.Add(20*time.Second)))
	a.Add("auth", 0, fail(base.Add(65*time.Second)))
	a.Add("auth", 0, fail(base.Add(70*time.Second)))
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := tab.snapshot()
	ssh := metrics.SSHFailedLoginsPerSourceHour
	if got[rowKey{ssh, "s", base}] != 1 || got[rowKey{ssh, "s", base.Add(time.Minute)}] != 2 {
		t.Fatalf("rows %v", got)
	}
	if st := a.Stats(); st.Late != 1 || st.Events != 3 {
		t.Fatalf("stats %+v, want 1 late, 3 events", st)
	}
}

// TestFailedWritesKeepRowsForTheNextAttempt: rows survive failed writes,
// keep changing meanwhile, and the eventual write carries the full
// values; closed minutes are not forgotten before they are written.
func TestFailedWritesKeepRowsForTheNextAttempt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	evs := stream(rng, 4000, 40*time.Minute, 20*time.Second)
	tab := newTable()
	tab.fail = 1 << 30
	f := newFeeder(t, tab, 30*time.Second, 5*time.Second, time.Time{})
	f.feed(t, evs[:3000], 150, rng)
	if f.flushErr == 0 || len(tab.snapshot()) != 0 {
		t.Fatalf("%d failed flushes, %d rows: the writer should have refused everything", f.flushErr, len(tab.snapshot()))
	}
	st := f.a.Stats()
	if st.WriteErrors != int64(f.flushErr) || st.Dirty == 0 {
		t.Fatalf("stats %+v after %d failures", st, f.flushErr)
	}
	tab.mu.Lock()
	tab.fail = 0
	tab.mu.Unlock()
	f.feed(t, evs[3000:], 300, rng)
	f.a.Advance(base.Add(24 * time.Hour))
	if err := f.a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	compare(t, tab.snapshot(), bruteForce(evs, time.Time{}))
	if st := f.a.Stats(); st.Entries != 0 || st.Dirty != 0 {
		t.Errorf("stats %+v: state left after everything was written", st)
	}
}

// TestRestartFromReplay is a reassignment: the first owner processes and
// writes the stream up to a committed point, dies without writing its last
// committed changes and after writing changes of input it never
// committed; the new owner replays up to the committed point from the
// replay start (watermark minus the horizon) with writes suppressed before
// it, then continues with everything after the committed point.
// The table equals a from-scratch computation over the whole stream:
// nothing missing, nothing counted twice.
func TestRestartFromReplay(t *testing.T) {
	const late, ooo = 30 * time.Second, 5 * time.Second
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			evs := stream(rng, 6000, 90*time.Minute, 20*time.Second)
			tab := newTable()
			first := newFeeder(t, tab, late, ooo, time.Time{})
			cut := 2000 + rng.IntN(3000)
			first.feed(t, evs[:cut], 100, rng)
			if err := first.a.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Processed and committed, not written: the crash loses
			// these changes.
			first.feed(t, evs[cut:cut+50], 0, rng)
			cut += 50
			// Processed and written, not committed: the next owner reads
			// these again after its replay, and must not count them twice.
			first.feed(t, evs[cut:cut+40], 0, rng)
			if err := first.a.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}

			// The service's replay: from the last committed event time
			// back by the horizon plus 2 x (lateness + out-of-orderness),
			// starting at the first record at or before the target;
			// writes suppressed before target + lateness +
			// out-of-orderness.
			minET := evs[cut-1].rec.EventTime()
			d := late + ooo
			target := minET.Add(-(first.a.Horizon() + 2*d))
			start := cut - 1
			for start > 0 && evs[start].rec.EventTime().After(target) {
				start--
			}
			second := newFeeder(t, tab, late, ooo, target.Add(d))
			second.feed(t, evs[start:cut], 0, rng)
			second.feed(t, evs[cut:], 250, rng)
			second.a.Advance(base.Add(24 * time.Hour))
			if err := second.a.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			compare(t, tab.snapshot(), bruteForce(evs, time.Time{}))
			if st := second.a.Stats(); st.Suppressed == 0 || st.Late != 0 {
				t.Fatalf("second owner %+v: the replay should start before the cutoff and nothing be late", st)
			}
		})
	}
}

// TestRevokeDropsWithoutWriting and reassigning rebuilds: a revoked
// partition's dirty rows are never written, other partitions' are, and
// events of the revoked partition arriving afterwards are counted, not
// aggregated.
func TestRevokeDropsWithoutWriting(t *testing.T) {
	tab := newTable()
	a, err := New(Options{Writer: tab})
	if err != nil {
		t.Fatal(err)
	}
	a.Assign("auth", 0, time.Time{})
	a.Assign("auth", 1, time.Time{})
	rec := func(ip string) schemas.Record {
		return &schemas.Auth{Base: schemas.Common{Timestamp: base}, SourceIP: ip, Outcome: "failure"}
	}
	a.Add("auth", 0, rec("a"))
	a.Add("auth", 1, rec("b"))
	a.Revoke("auth", 0)
	a.Add("auth", 0, rec("a"))
	a.Add("auth", 1, rec("a")) // key a now in partition 1: fine, counted as new
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ssh := metrics.SSHFailedLoginsPerSourceHour
	got := tab.snapshot()
	if len(got) != 2 || got[rowKey{ssh, "b", base}] != 1 || got[rowKey{ssh, "a", base}] != 1 {
		t.Fatalf("rows %v: want a=1 (partition 1 only), b=1", got)
	}
	st := a.Stats()
	if st.Unassigned != 1 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A key in two partitions is counted.
	a.Add("auth", 1, rec("c"))
	a.Assign("auth", 2, time.Time{})
	a.Add("auth", 2, rec("c"))
	if st := a.Stats(); st.CrossPartition != 1 {
		t.Fatalf("stats %+v, want one cross-partition event", st)
	}
}

// TestMaxEntries caps the state and counts what it drops.
func TestMaxEntries(t *testing.T) {
	a, err := New(Options{Writer: newTable(), MaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	a.Assign("firewall", 0, time.Time{})
	for i := range 25 {
		a.Add("firewall", 0, &schemas.Firewall{Base: schemas.Common{Timestamp: base}, SourceIP: "s", Action: "deny", DestinationPort: uint16(i)})
	}
	if st := a.Stats(); st.Entries != 10 || st.Overflow != 15 || st.Events != 10 {
		t.Fatalf("stats %+v, want 10 entries, 15 dropped", st)
	}
}

// TestRunRetriesWithBackoff: Run keeps trying a failing writer and the
// rows land once it recovers; a cancelled Run flushes a last time.
func TestRunRetriesWithBackoff(t *testing.T) {
	tab := newTable()
	tab.fail = 3
	a, err := New(Options{Writer: tab, FlushInterval: 5 * time.Millisecond, RetryBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a.Assign("web", 0, time.Time{})
	a.Add("web", 0, &schemas.Web{Base: schemas.Common{Timestamp: base}, SourceIP: "c", Status: 404})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(tab.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	a.Add("web", 0, &schemas.Web{Base: schemas.Common{Timestamp: base}, SourceIP: "c", Status: 404})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := tab.snapshot()[rowKey{metrics.Web4xxPerClientHour, "c", base}]; got != 2 {
		t.Fatalf("row %d, want 2 after the final flush", got)
	}
	if st := a.Stats(); st.WriteErrors != 3 {
		t.Fatalf("stats %+v, want 3 write errors", st)
	}
}

// TestReassignKeepsOlderDirtyRows is a rebuild that keeps a partition (an
// aborted transaction): rows before the new replay start keep their value
// and are still written even though the write failed before; rows after
// it are dropped and rebuilt from the replay, not added to.
func TestReassignKeepsOlderDirtyRows(t *testing.T) {
	tab := newTable()
	tab.fail = 1
	a, err := New(Options{Writer: tab})
	if err != nil {
		t.Fatal(err)
	}
	a.Assign("auth", 0, time.Time{})
	fail := func(min int) schemas.Record {
		return &schemas.Auth{Base: schemas.Common{Timestamp: base.Add(time.Duration(min)*time.Minute + time.Second)}, SourceIP: "s", Outcome: "failure"}
	}
	for _, m := range []int{0, 0, 1, 5, 5, 5} {
		a.Add("auth", 0, fail(m))
	}
	if err := a.Flush(context.Background()); err == nil {
		t.Fatal("the first write should fail")
	}
	// The rebuild: replay from minute 3 (the events of minute 5 again).
	a.Assign("auth", 0, base.Add(3*time.Minute))
	for _, m := range []int{0, 5, 5, 5} {
		a.Add("auth", 0, fail(m)) // minute 0: before the replay start, suppressed
	}
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ssh := metrics.SSHFailedLoginsPerSourceHour
	want := map[rowKey]int64{{ssh, "s", base}: 2, {ssh, "s", base.Add(time.Minute)}: 1, {ssh, "s", base.Add(5 * time.Minute)}: 3}
	compare(t, tab.snapshot(), want)
	if st := a.Stats(); st.Suppressed != 1 {
		t.Fatalf("stats %+v, want the replayed minute-0 event suppressed", st)
	}
}
