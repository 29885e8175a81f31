package consumer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

const benchRecords = 300_000

func benchBroker(b *testing.B) string {
	br := kafkatest.Start(b, kafkatest.Options{Topics: []string{"auth"}, Partitions: 3})
	cl := kafkatest.Client(b, br, kgo.ProducerLinger(5*time.Millisecond))
	ctx := context.Background()
	recs := make([]*kgo.Record, 0, benchRecords)
	for i := 0; i < benchRecords; i++ {
		recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(fmt.Sprint(i % 101)), Value: []byte(sshdLine(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return br.Addr()
}

// BenchmarkConsumeAuthParquet measures the whole exactly-once path: fetch
// from the embedded broker, parse, Arrow, zstd Parquet, commit, on the local
// backend. One op consumes benchRecords records.
func BenchmarkConsumeAuthParquet(b *testing.B) {
	benchConsume(b, func() string { return "file://" + b.TempDir() })
}

// BenchmarkConsumeAuthParquetHDFS is the same into the in-process HDFS
// (NameNode and DataNode share the two cores with the consumer).
func BenchmarkConsumeAuthParquetHDFS(b *testing.B) {
	srv := hdfstest.Start(b)
	n := 0
	benchConsume(b, func() string { n++; return fmt.Sprintf("%sbench-%d", srv.URL(), n) })
}

func benchConsume(b *testing.B, dataset func() string) {
	addr := benchBroker(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fsys, err := storage.Open(context.Background(), dataset(), storage.Options{User: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(addr)}, Group: fmt.Sprintf("bench-%d", i),
			Sources: []Source{{"auth", "sshd"}}, RollRecords: 100_000, RollInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- c.Run(ctx) }()
		for c.RecordsCommitted() < benchRecords {
			time.Sleep(2 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
		fsys.Close()
		b.StartTimer()
	}
	perSec := float64(benchRecords) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "records/s")
	b.ReportMetric(perSec/float64(runtime.GOMAXPROCS(0)), "records/s/core")
}

// BenchmarkConsumeAuthJSONBaseline is the naive comparison: the same
// records fetched and parsed, written as JSON lines to one local file, no
// Parquet, no commit protocol, offsets left to Kafka's auto-commit.
func BenchmarkConsumeAuthJSONBaseline(b *testing.B) {
	addr := benchBroker(b)
	p, err := parse.New("sshd", parse.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f, err := os.Create(filepath.Join(b.TempDir(), "out.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(fmt.Sprintf("json-%d", i)), kgo.ConsumeTopics("auth"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := 0
		var buf []byte
		for n < benchRecords {
			fs := cl.PollFetches(context.Background())
			fs.EachRecord(func(r *kgo.Record) {
				rec, err := p.Parse(r.Value)
				if err != nil {
					return
				}
				buf = schemas.AppendJSON(buf[:0], rec)
				buf = append(buf, '\n')
				w.Write(buf)
				n++
			})
		}
		w.Flush()
		f.Sync()
		b.StopTimer()
		f.Close()
		cl.Close()
		b.StartTimer()
	}
	perSec := float64(benchRecords) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "records/s")
	b.ReportMetric(perSec/float64(runtime.GOMAXPROCS(0)), "records/s/core")
}
