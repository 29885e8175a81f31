package gen

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
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

// BenchmarkProduceKafka measures the whole path of `lambdalog gen` without
// pacing: generate, hand to franz-go (idempotent, 5 ms linger, per codec) and wait
// for every acknowledgement from an in-process broker (kfake) that shares
// the machine's cores.
func BenchmarkProduceKafka(b *testing.B) {
	for _, c := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"lz4", kgo.Lz4Compression()}, {"snappy", kgo.SnappyCompression()}, {"zstd", kgo.ZstdCompression()}, {"none", kgo.NoCompression()}} {
		b.Run(c.name, func(b *testing.B) {
			br := kafkatest.Start(b, kafkatest.Options{Partitions: 6})
			cl := kafkatest.Client(b, br, ProducerOptions(c.codec)...)
			g, err := New(Options{Seed: 1, Rate: 1_000_000, Count: int64(b.N), MaxSkew: time.Second, LateFraction: 0.001})
			if err != nil {
				b.Fatal(err)
			}
			sink := NewKafkaSink(cl)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			tr, err := g.Run(ctx, sink)
			if err != nil {
				b.Fatal(err)
			}
			if err := sink.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if sink.Produced() != int64(b.N) || tr.Events != int64(b.N) {
				b.Fatalf("acknowledged %d of %d", sink.Produced(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
