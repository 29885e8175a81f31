package main

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// TestRealtimeWritesMinuteAggregates runs `lambdalog realtime` on
// generated traffic with clickhouse.dsn pointing at a private server: it
// creates rt_metric_minutes itself and fills it so that, per shared
// metric, the windows folded from the rows (sum of minutes, or the largest
// running distinct count) add up to the metric's reference over the
// produced events; SIGTERM then exits 0.
func TestRealtimeWritesMinuteAggregates(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	srv := chtest.Start(t)
	dsn := srv.DSN(chtest.NewDatabase(t, srv))
	ctx := context.Background()

	g, err := gen.New(gen.Options{Seed: 5, Rate: 50, Duration: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var parsers [gen.NumDatasets]parse.Parser
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		if parsers[d], err = parse.New(d.Format(), parse.Options{Location: time.UTC}); err != nil {
			t.Fatal(err)
		}
	}
	var recs []*kgo.Record
	var parsed []schemas.Record
	if _, err := g.Run(ctx, gen.SinkFunc(func(_ context.Context, l *gen.Line) error {
		r, perr := parsers[l.Dataset].Parse(l.Value)
		if perr != nil {
			return perr
		}
		parsed = append(parsed, r)
		recs = append(recs, &kgo.Record{Topic: l.Topic, Key: append([]byte(nil), l.Key...), Value: append([]byte(nil), l.Value...)})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, m := range metrics.All() {
		for _, v := range m.Reference(parsed) {
			want[m.Name] += v
		}
		if want[m.Name] == 0 {
			t.Fatalf("%s: nothing to count in the traffic; the test would prove nothing", m.Name)
		}
	}

	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := lambdalog(rctx, t, "realtime", "--brokers", b.Addr(), "--clickhouse", dsn, "--http", "127.0.0.1:0",
		"--set", "realtime.minutes_flush_interval=100ms", "--set", "realtime.transactional_id=minutes-test")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("lambdalog realtime output:\n%s", logs.String())
		}
	}()

	db, err := chdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]int64{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got = foldedTotals(ctx, db)
		same := len(got) == len(want)
		for k, v := range want {
			same = same && got[k] == v
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rt_metric_minutes totals %v, want %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("realtime did not exit 0 on SIGTERM: %v", err)
	}
	if !strings.Contains(logs.String(), "speed layer started") {
		t.Errorf("no start line in the log")
	}
	t.Logf("per-metric totals equal: %v", got)
}

// foldedTotals reads rt_metric_minutes as the serving layer does (newest
// version per minute, windows folded by sum or max) and totals each
// metric over all keys and windows; empty while the table does not exist.
func foldedTotals(ctx context.Context, db *chdb.DB) map[string]int64 {
	out := map[string]int64{}
	for _, m := range metrics.All() {
		fold := "sum(v)"
		if m.Agg == metrics.Distinct {
			fold = "max(v)"
		}
		win := int64(m.Window / time.Second)
		rows, err := db.Query(ctx, `SELECT toInt64(sum(wv)) FROM (
    SELECT key, intDiv(toInt64(toUInt32(minute)), `+strconv.FormatInt(win, 10)+`) AS w, `+fold+` AS wv FROM (
        SELECT key, minute, argMax(value, version) AS v FROM `+merge.Table+` WHERE metric = '`+m.Name+`' GROUP BY key, minute)
    GROUP BY key, w)`)
		if err != nil {
			return map[string]int64{}
		}
		for rows.Next() {
			var v int64
			if rows.Scan(&v) == nil && v > 0 {
				out[m.Name] = v
			}
		}
		rows.Close()
	}
	return out
}
