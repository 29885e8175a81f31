package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/realtime/minutes"
)

type discardRows struct{}

func (discardRows) Write(context.Context, []merge.MinuteAggregate) error { return nil }

// BenchmarkServiceMinutes is BenchmarkServiceEndToEnd (500,000 generated
// events, 3 partitions, 10 ms transactions) without the per-minute
// aggregator, with it writing nowhere (its cost in the loop), and with it
// writing to a private ClickHouse on the same 2 cores (flush every 100
// ms). Each op is a fresh group and ends when its committed offsets reach
// the end; with ClickHouse, drain-ms is how much longer the last rows
// took to be written.
func BenchmarkServiceMinutes(b *testing.B) {
	br := kafkatest.Start(b, kafkatest.Options{Partitions: 3})
	recs, _ := genLines(b, gen.Options{Seed: 5, Rate: 10000, Duration: 50 * time.Second})
	produce(b, kafkatest.Client(b, br, gen.ProducerOptions(kgo.SnappyCompression())...), recs)
	groups := 0 // a fresh group per op, across the framework's reruns
	for _, mode := range []string{"off", "discard", "clickhouse"} {
		b.Run("minutes="+mode, func(b *testing.B) {
			var db *chdb.DB
			if mode == "clickhouse" {
				srv := chtest.Start(b)
				var err error
				if db, err = chdb.Open(context.Background(), srv.DSN(chtest.NewDatabase(b, srv))); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				if err := merge.Migrate(context.Background(), db); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var total, cpu, drain time.Duration
			var rows int64
			for i := 0; i < b.N; i++ {
				groups++
				o := testOptions(b, br, fmt.Sprintf("bench-%s-%d", mode, groups), "alerts")
				var agg *minutes.Aggregator
				if mode != "off" {
					var w minutes.Writer = discardRows{}
					if db != nil {
						w = merge.NewWriter(db)
					}
					var err error
					if agg, err = minutes.New(minutes.Options{Writer: w, FlushInterval: 100 * time.Millisecond}); err != nil {
						b.Fatal(err)
					}
					o.Minutes = agg
				}
				svc, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				start, cpu0 := time.Now(), processCPU()
				ctx, cancel := contextWithCancel()
				done := make(chan error, 1)
				go func() { done <- svc.Run(ctx) }()
				waitCaughtUp(b, br, o.Group, 5*time.Minute)
				total += time.Since(start)
				cpu += processCPU() - cpu0
				caught := time.Now()
				for agg != nil && db != nil && agg.Stats().Dirty > 0 {
					time.Sleep(5 * time.Millisecond)
				}
				drain += time.Since(caught)
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if st := svc.Stats(); st.Events != int64(len(recs)) {
					b.Fatalf("%d events, want %d", st.Events, len(recs))
				}
				if agg != nil {
					rows += agg.Stats().RowsWritten
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/total.Seconds(), "events/s")
			// CPU of the whole process (broker, service, ClickHouse client;
			// not the ClickHouse server): comparable between modes when
			// the shared cores make wall time noisy.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(recs)*b.N), "cpu-ns/event")
			if mode != "off" {
				b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
			}
			if db != nil {
				b.ReportMetric(float64(drain.Milliseconds())/float64(b.N), "drain-ms")
			}
		})
	}
}
