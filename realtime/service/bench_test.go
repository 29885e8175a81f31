package service

import (
	"fmt"
	"os"
	"runtime/debug"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// BenchmarkServiceEndToEnd: 500,000 generated events (10,000/s of event
// time, attacks included) already in an in-process broker (3 partitions
// per topic); each op is a fresh group consuming all of them — fetch,
// parse, windows, rules, transactional alert output — until its committed
// offsets reach the end (of the source and the repartition topics). The
// broker runs on the same 2 cores. repartition=false is the input of
// every rule read from the source topics, as before repartitioning.
//
// The GC runs as lambdalog realtime sets it (realtime.gc_percent); a GOGC
// environment variable wins, as it does for the command.
func BenchmarkServiceEndToEnd(b *testing.B) {
	if os.Getenv("GOGC") == "" {
		if pct := config.Default().Realtime.GCPercent; pct > 0 {
			old := debug.SetGCPercent(pct)
			b.Cleanup(func() { debug.SetGCPercent(old) })
		}
	}
	for _, c := range []struct {
		interval    time.Duration
		repartition bool
	}{{10 * time.Millisecond, true}, {10 * time.Millisecond, false}, {100 * time.Millisecond, true}} {
		interval := c.interval
		b.Run(fmt.Sprintf("txn=%v/repartition=%v", interval, c.repartition), func(b *testing.B) {
			br := kafkatest.Start(b, kafkatest.Options{Partitions: 3})
			recs, _ := genLines(b, gen.Options{Seed: 5, Rate: 10000, Duration: 50 * time.Second})
			produce(b, kafkatest.Client(b, br, gen.ProducerOptions(kgo.SnappyCompression())...), recs)
			b.ReportAllocs()
			b.ResetTimer()
			var total, cpu time.Duration
			for i := 0; i < b.N; i++ {
				o := testOptions(b, br, fmt.Sprintf("bench-%d", i), "alerts")
				o.TransactionInterval = interval
				o.Repartition.Disabled = !c.repartition
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
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if st := svc.Stats(); st.Events != int64(len(recs)) {
					b.Fatalf("%d events, want %d", st.Events, len(recs))
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/total.Seconds(), "events/s")
			// CPU of the whole process (broker and service): the figure to
			// compare when other work shares the cores and wall time is noisy.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(recs)*b.N), "cpu-ns/event")
		})
	}
}
