package minutes

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

type discard struct{ rows int }

func (d *discard) Write(_ context.Context, aggs []merge.MinuteAggregate) error {
	d.rows += len(aggs)
	return nil
}

// BenchmarkAggregator: 300,000 parsed generated events (5,000/s of event
// time, all datasets, attacks included) through Add, with Advance every
// 1,000 events (as the service advances per poll) and a Flush to a
// discarding writer every 20,000 (building the rows, not sending them).
// One op is the whole stream on a fresh aggregator. The generator's
// traffic has many distinct source IPs, so many events open a new cell:
// a pessimistic mix for the per-key maps.
func BenchmarkAggregator(b *testing.B) {
	g, err := gen.New(gen.Options{Seed: 5, Rate: 5000, Duration: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	var parsers [gen.NumDatasets]parse.Parser
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		if parsers[d], err = parse.New(d.Format(), parse.Options{Location: time.UTC}); err != nil {
			b.Fatal(err)
		}
	}
	type in struct {
		rec   schemas.Record
		topic string
	}
	var evs []in
	if _, err := g.Run(context.Background(), gen.SinkFunc(func(_ context.Context, l *gen.Line) error {
		if r, err := parsers[l.Dataset].Parse(l.Value); err == nil {
			evs = append(evs, in{r, l.Topic})
		}
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	var w discard
	for range b.N {
		a, err := New(Options{Writer: &w})
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range []string{"auth", "firewall", "ids", "web"} {
			a.Assign(t, 0, time.Time{})
		}
		var newest time.Time
		for i, e := range evs {
			a.Add(e.topic, 0, e.rec)
			if et := e.rec.EventTime(); et.After(newest) {
				newest = et
			}
			if i%1000 == 999 {
				a.Advance(newest.Add(-5 * time.Second))
			}
			if i%20000 == 19999 {
				if err := a.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := a.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(evs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(evs)*b.N), "ns/event")
	b.ReportMetric(float64(w.rows)/float64(b.N), "rows/op")
	if cpu := processCPU() - cpu0; cpu > 0 {
		// CPU time, GC included: wall time on the shared cores also
		// counts waiting for one.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(evs)*b.N), "cpu-ns/event")
	}
}
