package merge_test

import (
	"context"
	"errors"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/querytest"
	"github.com/lambdalog/lambdalog/realtime/minutes"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// speedLayer computes what the speed layer writes for records: per key and
// minute, the minute's amount (Count, Sum) or the window's running distinct
// count at the end of the minute (Distinct).
func speedLayer(m *metrics.Metric, records []schemas.Record) []merge.MinuteAggregate {
	type km struct {
		key    string
		minute time.Time
	}
	matched := []schemas.Record{}
	for _, r := range records {
		if m.Match(r) {
			matched = append(matched, r)
		}
	}
	sort.SliceStable(matched, func(i, j int) bool { return matched[i].EventTime().Before(matched[j].EventTime()) })
	vals := map[km]int64{}
	seen := map[metrics.Cell]map[string]bool{}
	for _, r := range matched {
		k := km{m.Key(r), r.EventTime().UTC().Truncate(time.Minute)}
		if m.Agg != metrics.Distinct {
			vals[k] += m.Amount(r)
			continue
		}
		c := metrics.Cell{Window: m.WindowStart(r.EventTime()), Key: k.key}
		if seen[c] == nil {
			seen[c] = map[string]bool{}
		}
		seen[c][m.Value(r)] = true
		vals[k] = int64(len(seen[c]))
	}
	out := make([]merge.MinuteAggregate, 0, len(vals))
	for k, v := range vals {
		out = append(out, merge.MinuteAggregate{Metric: m.Name, Key: k.key, Minute: k.minute, Value: v})
	}
	return out
}

// fromScratch counts the series over the records with the metric's own
// reference implementation.
func fromScratch(m *metrics.Metric, records []schemas.Record, key string, from, to time.Time, step time.Duration) []int64 {
	out := make([]int64, to.Sub(from)/step)
	for c, v := range m.Reference(records) {
		if (key != "" && c.Key != key) || c.Window.Before(from) || !c.Window.Before(to) {
			continue
		}
		out[c.Window.Sub(from)/step] += v
	}
	return out
}

// TestSeriesEqualsFromScratchAcrossBatchHandOver writes the speed layer's
// minutes for two days of traffic, then runs the batch jobs for the first
// day, and checks at every step, for every shared metric, per key and over
// all keys, that the merged series equals a from-scratch count over the
// same events: before the batch run (all real-time), after it (the first
// day from batch), and after the real-time rows of the batched day were
// overwritten with wrong values (batch supersedes them).
func TestSeriesEqualsFromScratchAcrossBatchHandOver(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Shared(t)
	db, _ := querytest.NewDB(t, srv)
	recs, truth, err := querytest.Generate(ctx, querytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	day1, day2 := querytest.DayRange(recs)
	if day1.Equal(day2) {
		t.Fatal("fixture spans one day")
	}
	if _, err := chload.New(db, nil).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := merge.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	w := merge.NewWriter(db)
	r := merge.NewReader(db)
	var bruteforcer string
	for _, tr := range truth.Records {
		if tr.Attack == "ssh_bruteforce" {
			bruteforcer = tr.Key
			break
		}
	}
	if bruteforcer == "" {
		t.Fatal("no ssh_bruteforce in the ground truth")
	}
	from, to := day1, day2.Add(24*time.Hour)

	check := func(phase string, wantBatchUntil time.Time) {
		t.Helper()
		checkSeries(t, r, recs, bruteforcer, from, to, phase, wantBatchUntil)
	}

	var rt []merge.MinuteAggregate
	for _, m := range metrics.All() {
		rt = append(rt, speedLayer(m, recs)...)
	}
	if err := w.Write(ctx, rt); err != nil {
		t.Fatal(err)
	}
	check("real-time only", time.Time{})
	// A replay writes the same minutes again: nothing is counted twice.
	if err := w.Write(ctx, rt); err != nil {
		t.Fatal(err)
	}
	check("after a replay", time.Time{})

	// The nightly batch finishes the first day.
	if err := querytest.RunBatch(ctx, db, recs, t.TempDir(), day1.Format(time.DateOnly), day1.Format(time.DateOnly)); err != nil {
		t.Fatal(err)
	}
	check("after the batch run of day 1", day2)

	// Real-time rows of the batched day no longer matter: overwrite them
	// with wrong values and the series is unchanged.
	var wrong []merge.MinuteAggregate
	for _, a := range rt {
		if a.Minute.Before(day2) {
			a.Value = a.Value*3 + 1
			wrong = append(wrong, a)
		}
	}
	if err := w.Write(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	check("batch supersedes real-time", day2)
}

// TestSeriesFromTheRealAggregatorAcrossBatchHandOver is the same check
// with the real-time rows written by the speed layer's aggregator
// (realtime/minutes) instead of by hand: the records arrive in generated
// order (out of order within the lateness) with the watermark trailing the
// newest event and periodic flushes, so rows are written several times as
// their minutes fill. The merged series equals a from-scratch count at
// every step while real-time only (first half of the traffic), and after
// the batch run of the first day finished while the aggregator went on
// writing the second half (day 1 from batch, day 2 from real-time). The
// aggregator's rows are also exactly the hand-computed speedLayer rows.
func TestSeriesFromTheRealAggregatorAcrossBatchHandOver(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Shared(t)
	db, _ := querytest.NewDB(t, srv)
	recs, truth, err := querytest.Generate(ctx, querytest.Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	day1, day2 := querytest.DayRange(recs)
	if _, err := chload.New(db, nil).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := merge.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	agg, err := minutes.New(minutes.Options{Writer: merge.NewWriter(db)})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"auth", "firewall", "ids", "web", "syslog", "quarantine"} {
		agg.Assign(topic, 0, time.Time{})
	}
	var newest time.Time
	feed := func(rs []schemas.Record) {
		t.Helper()
		for i, r := range rs {
			agg.Add(r.Common().KafkaTopic, 0, r)
			newest = maxTime(newest, r.EventTime())
			agg.Advance(newest.Add(-5 * time.Second))
			if i%2000 == 1999 {
				if err := agg.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := agg.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var key1 string
	for _, tr := range truth.Records {
		if tr.Attack == "ssh_bruteforce" {
			key1 = tr.Key
			break
		}
	}
	r := merge.NewReader(db)
	from, to := day1, day2.Add(24*time.Hour)

	// Half the traffic (up to about midnight), then the batch job for day
	// 1 finishes while the speed layer goes on with the rest.
	half := len(recs) / 2
	feed(recs[:half])
	checkSeries(t, r, recs[:half], key1, from, to, "real-time, first half", time.Time{})
	if err := querytest.RunBatch(ctx, db, recs, t.TempDir(), day1.Format(time.DateOnly), day1.Format(time.DateOnly)); err != nil {
		t.Fatal(err)
	}
	feed(recs[half:])
	agg.Advance(newest.Add(time.Hour))
	if err := agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := agg.Stats(); st.Late != 0 || st.Events == 0 || st.Entries != 0 {
		t.Fatalf("aggregator %+v: nothing late, everything written and forgotten", st)
	}
	checkSeries(t, r, recs, key1, from, to, "after the hand-over", day2)

	// The rows are exactly what speedLayer computes by hand.
	want := map[merge.MinuteAggregate]bool{}
	for _, m := range metrics.All() {
		for _, a := range speedLayer(m, recs) {
			a.Minute = a.Minute.UTC()
			want[a] = true
		}
	}
	rows, err := db.Query(ctx, `SELECT metric, key, minute, argMax(value, version) FROM `+merge.Table+` GROUP BY metric, key, minute`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var a merge.MinuteAggregate
		if err := rows.Scan(&a.Metric, &a.Key, &a.Minute, &a.Value); err != nil {
			t.Fatal(err)
		}
		a.Minute = a.Minute.UTC()
		if !want[a] {
			t.Errorf("row %+v not computed by hand", a)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d rows, %d computed by hand", n, len(want))
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestSeriesRejectsBadQueries(t *testing.T) {
	r := merge.NewReader(nil) // validation fails before any query
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []merge.Query{
		{Metric: "nope", From: from, To: from.Add(time.Hour)},
		{Metric: metrics.SSHFailedLoginsPerSourceHour, From: from.Add(time.Hour), To: from},
		{Metric: metrics.SSHFailedLoginsPerSourceHour, From: from.Add(time.Minute), To: from.Add(2 * time.Hour)},
		{Metric: metrics.SSHFailedLoginsPerSourceHour, From: from, To: from.Add(2 * time.Hour), Step: 90 * time.Minute},
		{Metric: metrics.DistinctPortsPerSource10m, From: from, To: from.Add(24 * time.Hour), Step: 5 * time.Minute},
		{Metric: metrics.DistinctPortsPerSource10m, From: from, To: from.AddDate(1, 0, 0), Step: 10 * time.Minute},
	} {
		_, err := r.Series(context.Background(), q)
		var qe *merge.QueryError
		if !errors.As(err, &qe) {
			t.Errorf("%+v: got %v, want a QueryError", q, err)
		}
	}
}

// checkSeries compares, for every shared metric, over all keys and for
// key, at several steps, the merged series with a from-scratch count over
// recs, and the source of each point with the batch watermark.
func checkSeries(t *testing.T, r *merge.Reader, recs []schemas.Record, key1 string, from, to time.Time, phase string, wantBatchUntil time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, m := range metrics.All() {
		for _, key := range []string{"", key1} {
			for _, step := range []time.Duration{m.Window, time.Hour, 6 * time.Hour} {
				if step%m.Window != 0 {
					continue
				}
				s, err := r.Series(ctx, merge.Query{Metric: m.Name, Key: key, From: from, To: to, Step: step})
				if err != nil {
					t.Fatalf("%s: %s: %v", phase, m.Name, err)
				}
				want := fromScratch(m, recs, key, from, to, step)
				if len(s.Points) != len(want) {
					t.Fatalf("%s: %s step %s: %d points, want %d (gapless)", phase, m.Name, step, len(s.Points), len(want))
				}
				var total int64
				for i, p := range s.Points {
					total += p.Value
					if !p.Time.Equal(from.Add(time.Duration(i) * step)) {
						t.Fatalf("%s: %s: point %d at %s", phase, m.Name, i, p.Time)
					}
					if p.Value != want[i] {
						t.Errorf("%s: %s key %q step %s at %s: %d (%s), want %d", phase, m.Name, key, step, p.Time, p.Value, p.Source, want[i])
					}
					wantSrc := "realtime"
					if p.Time.Before(wantBatchUntil) {
						wantSrc = "batch"
					}
					if p.Source != wantSrc {
						t.Errorf("%s: %s at %s from %s, want %s", phase, m.Name, p.Time, p.Source, wantSrc)
					}
				}
				if total == 0 && (key == "" || m.Name == metrics.SSHFailedLoginsPerSourceHour) {
					t.Errorf("%s: %s key %q: empty series; the check would prove nothing", phase, m.Name, key)
				}
				if !s.Watermark.Equal(wantBatchUntil) && !(wantBatchUntil.IsZero() && s.Watermark.IsZero()) {
					t.Errorf("%s: watermark %s, want %s", phase, s.Watermark, wantBatchUntil)
				}
			}
		}
	}
}
