package gen

import (
	"testing"
	"time"
)

// BenchmarkGenerate measures line generation alone (no sink): the events/s
// one core can produce, and allocations per line.
func BenchmarkGenerate(b *testing.B) {
	g, err := New(Options{Seed: 1, Rate: 1_000_000, MaxSkew: time.Second, LateFraction: 0.001})
	if err != nil {
		b.Fatal(err)
	}
	var l Line
	bytes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !g.Next(&l) {
			b.Fatal("unbounded generator ended")
		}
		bytes += len(l.Value)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}
