package consumer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

const (
	benchRecords    = 300_000
	benchPartitions = 3
	// benchRoll commits each partition once per op, triggered by the
	// record count: the partitions hold exactly benchRoll records each, so
	// no partition's tail waits for RollInterval (which would measure the
	// timer, not the pipeline).
	benchRoll = benchRecords / benchPartitions
)

// benchRecs are the benchmark's Kafka records, round-robin over the
// partitions so that each holds exactly benchRecords/benchPartitions.
func benchRecs() []*kgo.Record {
	recs := make([]*kgo.Record, 0, benchRecords)
	for i := 0; i < benchRecords; i++ {
		recs = append(recs, &kgo.Record{Topic: "auth", Partition: int32(i % benchPartitions), Key: []byte(fmt.Sprint(i % 101)), Value: []byte(sshdLine(i))})
	}
	return recs
}

func benchBroker(b *testing.B) string {
	br := kafkatest.Start(b, kafkatest.Options{Topics: []string{"auth"}, Partitions: benchPartitions})
	cl := kafkatest.Client(b, br, kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(context.Background(), benchRecs()...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cl.Close()
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
	m := startMeasure(b)
	for i := 0; i < b.N; i++ {
		m.pause()
		fsys, err := storage.Open(context.Background(), dataset(), storage.Options{User: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(addr)}, Group: fmt.Sprintf("bench-%d", i),
			Sources: []Source{{"auth", "sshd"}}, RollRecords: benchRoll, RollInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		m.resume()
		go func() { done <- c.Run(ctx) }()
		for c.RecordsCommitted() < benchRecords {
			time.Sleep(time.Millisecond)
		}
		m.pause()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		fsys.Close()
		m.resume()
	}
	m.report(benchRecords)
}

// BenchmarkConsumeAuthPipeline is the consumer without Kafka: the same
// records, already fetched, go through the consumer's own absorb (parse,
// lineage, PartitionWriter.Add) and commitDue (Parquet, commit log) on the
// local backend, in polls of pollRecords per partition as PollRecords
// would hand them over. Its CPU per record is the consumer's alone, where
// the end-to-end benchmarks also pay for the in-process broker and the
// Kafka client.
func BenchmarkConsumeAuthPipeline(b *testing.B) {
	const pollRecords = 10_000
	recs := benchRecs()
	byPart := make([][]*kgo.Record, benchPartitions)
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, r := range recs {
		r.Offset = int64(len(byPart[r.Partition]))
		r.Timestamp = at
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	ctx := context.Background()
	m := startMeasure(b)
	for i := 0; i < b.N; i++ {
		m.pause()
		fsys, err := storage.Open(ctx, "file://"+b.TempDir(), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(Options{FS: fsys, Group: "pipeline", Sources: []Source{{"auth", "sshd"}}, RollRecords: benchRoll, RollInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		m.resume()
		for p := int32(0); p < benchPartitions; p++ {
			if _, err := c.claim(ctx, "auth", p); err != nil {
				b.Fatal(err)
			}
		}
		for from := 0; from < benchRecords/benchPartitions; from += pollRecords {
			ft := kgo.FetchTopic{Topic: "auth"}
			for p := range byPart {
				to := min(from+pollRecords, len(byPart[p]))
				ft.Partitions = append(ft.Partitions, kgo.FetchPartition{Partition: int32(p), Records: byPart[p][from:to]})
			}
			if err := c.absorb(kgo.Fetches{{Topics: []kgo.FetchTopic{ft}}}); err != nil {
				b.Fatal(err)
			}
			if err := c.commitDue(ctx, nil, false); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.commitDue(ctx, nil, true); err != nil {
			b.Fatal(err)
		}
		if got := c.RecordsCommitted(); got != benchRecords {
			b.Fatalf("committed %d records, want %d", got, benchRecords)
		}
		m.pause()
		fsys.Close()
		m.resume()
	}
	m.report(benchRecords)
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
	m := startMeasure(b)
	for i := 0; i < b.N; i++ {
		m.pause()
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
		m.resume()
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
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		m.pause()
		f.Close()
		cl.Close()
		m.resume()
	}
	m.report(benchRecords)
}

// measure accumulates the wall and process CPU time of the timed parts of
// a consume benchmark and the peak resident set of the process while they
// ran. The CPU time counts every thread (the in-process broker's, the
// Kafka client's, the GC's), so records per CPU second is the honest
// per-core figure on a machine whose cores are shared: wall time there
// also counts waiting for a core.
type measure struct {
	b       *testing.B
	cpu     time.Duration
	cpuFrom time.Duration
	peakRSS int64 // bytes; 0 when /proc is not available
	// baseRSS is the largest resident set at the start of a timed part:
	// what the process held before consuming (the broker's log, the
	// records produced), so peakRSS-baseRSS is what consuming added.
	baseRSS int64
}

func startMeasure(b *testing.B) *measure {
	// The GC runs as lambdalog consume sets it (consumer.gc_percent), for
	// the naive baseline too, so the comparison is at equal settings; a
	// GOGC environment variable wins, as it does for the command. The
	// soft memory limit is not applied: the in-process broker's log
	// shares the heap.
	if os.Getenv("GOGC") == "" {
		if pct := config.Default().Consumer.GCPercent; pct > 0 {
			old := debug.SetGCPercent(pct)
			b.Cleanup(func() { debug.SetGCPercent(old) })
		}
	}
	// The setup (producing into the broker) is garbage the timed part
	// would otherwise collect and count.
	runtime.GC()
	m := &measure{b: b}
	b.ResetTimer()
	m.resume()
	return m
}

func (m *measure) pause() {
	m.b.StopTimer()
	m.cpu += processCPU() - m.cpuFrom
	if rss := peakRSS(); rss > m.peakRSS {
		m.peakRSS = rss
	}
}

func (m *measure) resume() {
	resetPeakRSS()
	if rss := peakRSS(); rss > m.baseRSS {
		m.baseRSS = rss
	}
	m.cpuFrom = processCPU()
	m.b.StartTimer()
}

func (m *measure) report(perOp int) {
	m.pause()
	total := float64(perOp) * float64(m.b.N)
	perSec := total / m.b.Elapsed().Seconds()
	m.b.ReportMetric(perSec, "records/s")
	m.b.ReportMetric(perSec/float64(runtime.GOMAXPROCS(0)), "records/s/core")
	if m.cpu > 0 {
		m.b.ReportMetric(total/m.cpu.Seconds(), "records/cpu-s")
		m.b.ReportMetric(float64(m.cpu.Nanoseconds())/total, "cpu-ns/record")
	}
	if m.peakRSS > 0 {
		m.b.ReportMetric(float64(m.peakRSS)/(1<<20), "peak-rss-MiB")
		m.b.ReportMetric(float64(m.baseRSS)/(1<<20), "start-rss-MiB")
	}
}

// BenchmarkEncodeAuthParquet isolates the Parquet step: the benchmark's
// records, parsed once, go through PartitionWriter.Add and Commit into the
// local backend, so only the Arrow building, the encoder and the commit
// are timed, not parsing or Kafka.
func BenchmarkEncodeAuthParquet(b *testing.B) {
	p, err := parse.New("sshd", parse.Options{})
	if err != nil {
		b.Fatal(err)
	}
	const n = benchRecords / benchPartitions
	recs := make([]schemas.Record, n)
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := range recs {
		r, err := p.Parse([]byte(sshdLine(i)))
		if err != nil {
			b.Fatal(err)
		}
		c := r.Common()
		c.KafkaTopic, c.KafkaPartition, c.KafkaOffset, c.KafkaTimestamp, c.IngestTime = "auth", 0, int64(i), at, at
		recs[i] = r
	}
	ctx := context.Background()
	fsys, err := storage.Open(ctx, "file://"+b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fsys.Close()
	l := NewLog(fsys, "auth", 0)
	claim, err := l.Claim(ctx, newEpoch())
	if err != nil {
		b.Fatal(err)
	}
	w := NewPartitionWriter(fsys, l, claim, WriterOptions{})
	var bytes int64
	m := startMeasure(b)
	for i := 0; i < b.N; i++ {
		next := w.Next()
		for j, r := range recs {
			r.Common().KafkaOffset = next + int64(j)
			if err := w.Add(r, next+int64(j), 120); err != nil {
				b.Fatal(err)
			}
		}
		e, ok, err := w.Commit(ctx)
		if err != nil || !ok {
			b.Fatalf("commit: %v %v", ok, err)
		}
		bytes = e.Files[0].Bytes
	}
	m.report(n)
	b.ReportMetric(float64(bytes)/n, "file-bytes/record")
}
