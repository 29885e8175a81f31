package service

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/realtime/minutes"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

type minuteRow struct {
	metric, key string
	minute      int64
}

// fromScratch computes every row of rt_metric_minutes from the records:
// per metric, key and minute with a matching event, the minute's amount
// (Count, Sum) or the window's distinct count up to the end of the minute
// (Distinct).
func fromScratch(recs []schemas.Record) map[minuteRow]int64 {
	out := map[minuteRow]int64{}
	for _, m := range metrics.All() {
		type wk struct {
			key    string
			window int64
		}
		first := map[wk]map[string]int64{}
		withEvents := map[minuteRow]bool{}
		for _, r := range recs {
			if !m.Match(r) {
				continue
			}
			minute := r.EventTime().UTC().Truncate(time.Minute).Unix()
			k := minuteRow{m.Name, m.Key(r), minute}
			if m.Agg != metrics.Distinct {
				out[k] += m.Amount(r)
				continue
			}
			w := wk{k.key, m.WindowStart(r.EventTime()).Unix()}
			if first[w] == nil {
				first[w] = map[string]int64{}
			}
			if f, ok := first[w][m.Value(r)]; !ok || minute < f {
				first[w][m.Value(r)] = minute
			}
			withEvents[k] = true
		}
		for k := range withEvents {
			n := int64(0)
			for _, f := range first[wk{k.key, m.WindowStart(time.Unix(k.minute, 0)).Unix()}] {
				if f <= k.minute {
					n++
				}
			}
			out[k] = n
		}
	}
	return out
}

// readMinutes reads the table as the serving layer does: the newest
// version of every (metric, key, minute).
func readMinutes(t *testing.T, db *chdb.DB) map[minuteRow]int64 {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT metric, key, toInt64(toUInt32(minute)), argMax(value, version) FROM `+merge.Table+` GROUP BY metric, key, minute`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[minuteRow]int64{}
	for rows.Next() {
		var k minuteRow
		var v int64
		if err := rows.Scan(&k.metric, &k.key, &k.minute, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parseLines parses generated lines as the service does.
func parseLines(t *testing.T, lines []kgo.Record) []schemas.Record {
	t.Helper()
	ps := map[string]parse.Parser{}
	for _, src := range testSources {
		p, err := parse.New(src.Format, parse.Options{Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		ps[src.Topic] = p
	}
	var out []schemas.Record
	for _, l := range lines {
		if r, err := ps[l.Topic].Parse(l.Value); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// flakyWriter is a merge.Writer that can be cut off, as ClickHouse is from
// an instance about to crash.
type flakyWriter struct {
	w   *merge.Writer
	off atomic.Bool
}

func (f *flakyWriter) Write(ctx context.Context, aggs []merge.MinuteAggregate) error {
	if f.off.Load() {
		return errors.New("clickhouse unreachable")
	}
	return f.w.Write(ctx, aggs)
}

// TestMinuteAggregatesEqualFromScratch runs generated traffic through the
// service with the per-minute aggregator writing to a private ClickHouse,
// and checks that for every metric, key and minute the table (newest
// version) equals a from-scratch computation over the events produced so
// far: after a first instance caught up; after it lost ClickHouse, kept
// processing, and died (its last changes never written), and a restarted
// instance replayed and caught up on more traffic; and after a second
// instance joined the group and took over some partitions (revoked on the
// first, replayed on the second). No row is missing, none counted twice.
func TestMinuteAggregatesEqualFromScratch(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := merge.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	lines, _ := genLines(t, gen.Options{Seed: 31, Rate: 25, Duration: time.Hour, MaxSkew: 3 * time.Second})
	recs := parseLines(t, lines)
	// Lines and records line up one to one (generated lines all parse).
	if len(recs) != len(lines) {
		t.Fatalf("%d of %d generated lines parsed", len(recs), len(lines))
	}
	// Record timestamps are event times, as when ingest follows live
	// logs, so the replay finds its start in the broker's time index
	// instead of reading from the beginning.
	for i := range lines {
		lines[i].Timestamp = recs[i].EventTime()
	}
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	produce := func(rs []kgo.Record) {
		t.Helper()
		ptrs := make([]*kgo.Record, len(rs))
		for i := range rs {
			r := rs[i]
			ptrs[i] = &r
		}
		if err := prod.ProduceSync(ctx, ptrs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	instance := func(name string, w minutes.Writer) (*running, *minutes.Aggregator) {
		// The outage below lasts 6 minutes of event time: within the
		// tolerance, so the restart rebuilds what was not written.
		agg, err := minutes.New(minutes.Options{Writer: w, FlushInterval: 20 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, Tolerance: 7 * time.Minute,
			MaxBackoff: 50 * time.Millisecond, Logger: testLogger(t, slog.LevelWarn)})
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions(t, b, "rt", "alerts")
		o.TransactionalID = name
		o.Minutes = agg
		return start(t, o), agg
	}
	// settled waits until every aggregator has written everything it
	// holds, then compares the table with the first n events.
	settled := func(phase string, n int, aggs ...*minutes.Aggregator) {
		t.Helper()
		waitCaughtUp(t, b, "rt", 60*time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for {
			dirty := 0
			for _, a := range aggs {
				dirty += a.Stats().Dirty
			}
			if dirty == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a write in flight lands
		want := fromScratch(recs[:n])
		got := readMinutes(t, db)
		bad := 0
		for k, v := range want {
			if got[k] != v {
				bad++
				if bad <= 10 {
					t.Errorf("%s: %s %s %s: table %d, from scratch %d", phase, k.metric, k.key, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly), got[k], v)
				}
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				bad++
				if bad <= 10 {
					t.Errorf("%s: %s %s %s: row %d not in the from-scratch result", phase, k.metric, k.key, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly), v)
				}
			}
		}
		perMetric := map[string]int{}
		for k := range want {
			perMetric[k.metric]++
		}
		for _, m := range metrics.All() {
			if perMetric[m.Name] == 0 {
				t.Errorf("%s: no rows of %s expected: the check would prove nothing", phase, m.Name)
			}
		}
		for _, a := range aggs {
			if st := a.Stats(); st.Late != 0 || st.Overflow != 0 || st.CrossPartition != 0 {
				t.Errorf("%s: aggregator %+v: nothing should be dropped, and a key lives in one partition", phase, st)
			}
		}
		if bad > 0 {
			t.Fatalf("%s: %d of %d rows differ", phase, bad, len(want))
		}
		t.Logf("%s: %d rows over %d events equal", phase, len(want), n)
	}

	cut1, cut2, cut3 := len(lines)*55/100, len(lines)*65/100, len(lines)*80/100

	w1 := &flakyWriter{w: merge.NewWriter(db)}
	r1, a1 := instance("rt-1", w1)
	produce(lines[:cut1])
	settled("first instance", cut1, a1)

	// ClickHouse goes away for this instance, which keeps consuming and
	// committing offsets, then dies: its last minutes are never written.
	w1.off.Store(true)
	produce(lines[cut1:cut2])
	waitCaughtUp(t, b, "rt", 60*time.Second)
	if st := a1.Stats(); st.Dirty == 0 || st.WriteErrors == 0 {
		t.Fatalf("first instance %+v: it should hold unwritten rows", st)
	}
	r1.shutdown(t)

	r2, a2 := instance("rt-1", merge.NewWriter(db)) // the restart
	produce(lines[cut2:cut3])
	settled("restarted instance", cut3, a2)
	// The replay began after the start of the log and before the
	// aggregator's cutoff: rows before the cutoff are the first
	// instance's, rows after it are rebuilt whole.
	if rp := r2.svc.Stats().Replayed; rp == 0 || rp >= int64(cut2) || a2.Stats().Suppressed == 0 {
		t.Fatalf("restart: %+v, aggregator %+v: the replay should reach before its cutoff, not to the start", r2.svc.Stats(), a2.Stats())
	}

	// A second instance joins: the group moves partitions to it.
	_, a3 := instance("rt-2", merge.NewWriter(db))
	deadline := time.Now().Add(60 * time.Second)
	for a3.Stats().Events == 0 || r2.svc.Stats().Rebuilds < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second instance never got partitions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	produce(lines[cut3:])
	settled("two instances", len(lines), a2, a3)
}

// TestMinuteAggregatesAfterACrashWithUncommittedInput: an instance
// processes traffic and writes its per-minute rows, but never commits the
// transaction holding that input (a transaction interval of an hour), then
// dies (no more writes) and is fenced by its restart, which replays up to
// the committed offsets and reads the uncommitted input again. The table
// equals a from-scratch count: the rows written from uncommitted input are
// rewritten whole, not added to.
func TestMinuteAggregatesAfterACrashWithUncommittedInput(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := merge.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	lines, _ := genLines(t, gen.Options{Seed: 41, Rate: 25, Duration: 40 * time.Minute, MaxSkew: 3 * time.Second})
	recs := parseLines(t, lines)
	if len(recs) != len(lines) {
		t.Fatalf("%d of %d generated lines parsed", len(recs), len(lines))
	}
	for i := range lines {
		lines[i].Timestamp = recs[i].EventTime()
	}
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	produce := func(rs []kgo.Record) {
		t.Helper()
		ptrs := make([]*kgo.Record, len(rs))
		for i := range rs {
			r := rs[i]
			ptrs[i] = &r
		}
		if err := prod.ProduceSync(ctx, ptrs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	instance := func(w minutes.Writer, txn time.Duration) (*running, *minutes.Aggregator) {
		agg, err := minutes.New(minutes.Options{Writer: w, FlushInterval: 20 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
			Logger: testLogger(t, slog.LevelWarn)})
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions(t, b, "rt", "alerts")
		o.TransactionalID = "rt-crash"
		o.TransactionInterval = txn
		o.Minutes = agg
		return start(t, o), agg
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cut1, cut2 := len(lines)/2, len(lines)*3/4

	// Phase 1, committed and written.
	r0, a0 := instance(merge.NewWriter(db), 0)
	produce(lines[:cut1])
	waitCaughtUp(t, b, "rt", 60*time.Second)
	waitFor("phase 1 rows", func() bool { return a0.Stats().Dirty == 0 })
	r0.shutdown(t)

	// Phase 2: processed and written, never committed.
	w1 := &flakyWriter{w: merge.NewWriter(db)}
	r1, a1 := instance(w1, time.Hour)
	produce(lines[cut1:cut2])
	waitFor("phase 2 processed", func() bool { return r1.svc.Stats().Events == int64(cut2-cut1) })
	waitFor("phase 2 rows", func() bool { return a1.Stats().Dirty == 0 && a1.Stats().RowsWritten > 0 })
	if n := r1.svc.Stats().Transactions; n != 0 {
		t.Fatalf("the crashing instance committed %d transactions; its input must stay uncommitted", n)
	}
	// The crash: no more writes, and the restart fences it.
	w1.off.Store(true)
	r2, a2 := instance(merge.NewWriter(db), 0)
	produce(lines[cut2:])
	waitCaughtUp(t, b, "rt", 60*time.Second)
	waitFor("rows after the restart", func() bool { return a2.Stats().Dirty == 0 })
	time.Sleep(100 * time.Millisecond)
	if live := r2.svc.Stats().Events; live < int64(len(lines)-cut1) {
		t.Fatalf("restart read %d records live, want the %d uncommitted and new ones again", live, len(lines)-cut1)
	}

	want := fromScratch(recs)
	got := readMinutes(t, db)
	bad := 0
	for k, v := range want {
		if got[k] != v {
			bad++
			if bad <= 10 {
				t.Errorf("%s %s %s: table %d, from scratch %d", k.metric, k.key, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly), got[k], v)
			}
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			bad++
			if bad <= 10 {
				t.Errorf("%s %s %s: row %d not in the from-scratch result", k.metric, k.key, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly), v)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rows differ", bad, len(want))
	}
	if st := a2.Stats(); st.Late != 0 || st.CrossPartition != 0 {
		t.Errorf("restarted aggregator %+v", st)
	}
	t.Logf("%d rows equal after the crash; the crashed instance wrote %d rows from uncommitted input", len(want), a1.Stats().RowsWritten)
}
