package gen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FileSink writes each dataset to its own file in a directory (auth.log,
// firewall.log, ids.json, web.log), one line per event.
type FileSink struct {
	dir   string
	files [NumDatasets]*os.File
	w     [NumDatasets]*bufio.Writer
}

// NewFileSink creates (or truncates) the four files in dir, creating dir.
func NewFileSink(dir string) (*FileSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("gen: output dir: %w", err)
	}
	s := &FileSink{dir: dir}
	for d := Dataset(0); d < NumDatasets; d++ {
		name := filepath.Join(dir, d.FileName())
		f, err := os.Create(name)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("gen: create %s: %w", name, err)
		}
		s.files[d] = f
		s.w[d] = bufio.NewWriterSize(f, 1<<20)
	}
	return s, nil
}

// Write appends the line and a newline to its dataset's file.
func (s *FileSink) Write(_ context.Context, l *Line) error {
	w := s.w[l.Dataset]
	if _, err := w.Write(l.Value); err != nil {
		return fmt.Errorf("gen: write %s: %w", l.Dataset.FileName(), err)
	}
	if err := w.WriteByte('\n'); err != nil {
		return fmt.Errorf("gen: write %s: %w", l.Dataset.FileName(), err)
	}
	return nil
}

// Close flushes and closes the files, returning the first error.
func (s *FileSink) Close() error {
	var errs []error
	for d, f := range s.files {
		if f == nil {
			continue
		}
		if s.w[d] != nil {
			if err := s.w[d].Flush(); err != nil {
				errs = append(errs, fmt.Errorf("gen: flush %s: %w", f.Name(), err))
			}
		}
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gen: close %s: %w", f.Name(), err))
		}
		s.files[d] = nil
	}
	return errors.Join(errs...)
}

// ProducerOptions are the franz-go producer settings the generator uses on
// top of the connection options: idempotent writes (franz-go's default),
// batches that linger a few milliseconds, compression, and a large buffer
// so Produce rarely blocks. Keys are hashed to partitions with Kafka's
// murmur2, so one IP's lines stay in one partition. Snappy is the cheapest
// codec on this path (see docs/benchmarks.md): lz4 costs franz-go about a
// third of the run's CPU.
func ProducerOptions(codec kgo.CompressionCodec) []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(1 << 20),
		kgo.MaxBufferedBytes(256 << 20),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
}

// KafkaSink produces lines asynchronously to Kafka, keyed by source IP.
// Record memory is carved from large slabs so producing does not allocate
// per line.
type KafkaSink struct {
	cl       *kgo.Client
	slab     []byte
	recs     []kgo.Record
	produced atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	err      error
	promise  func(*kgo.Record, error)
	// now is the record timestamp, refreshed every nowEvery lines: the
	// producer would otherwise read the clock once per record.
	now      time.Time
	sinceNow int
}

const nowEvery = 256

// NewKafkaSink produces through cl, which should be built with
// ProducerOptions.
func NewKafkaSink(cl *kgo.Client) *KafkaSink {
	s := &KafkaSink{cl: cl}
	s.promise = func(_ *kgo.Record, err error) {
		if err != nil {
			s.failed.Add(1)
			s.mu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		s.produced.Add(1)
	}
	return s
}

const slabSize = 1 << 20

// Write hands the line to the producer; it blocks only when the producer's
// buffer is full, and returns the first produce error seen so far.
func (s *KafkaSink) Write(ctx context.Context, l *Line) error {
	if s.failed.Load() > 0 {
		return fmt.Errorf("gen: produce to %s: %w", l.Topic, s.firstErr())
	}
	n := len(l.Key) + len(l.Value)
	if cap(s.slab)-len(s.slab) < n {
		s.slab = make([]byte, 0, max(slabSize, n))
	}
	at := len(s.slab)
	s.slab = append(s.slab, l.Key...)
	s.slab = append(s.slab, l.Value...)
	key := s.slab[at : at+len(l.Key) : at+len(l.Key)]
	val := s.slab[at+len(l.Key) : at+n : at+n]
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]kgo.Record, 0, 4096)
	}
	if s.sinceNow == 0 {
		s.now = time.Now()
		s.sinceNow = nowEvery
	}
	s.sinceNow--
	s.recs = append(s.recs, kgo.Record{Topic: l.Topic, Key: key, Value: val, Timestamp: s.now})
	s.cl.Produce(ctx, &s.recs[len(s.recs)-1], s.promise)
	return nil
}

// Flush waits until every produced line is acknowledged, and returns the
// first produce error.
func (s *KafkaSink) Flush(ctx context.Context) error {
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("gen: flush producer: %w", err)
	}
	if err := s.firstErr(); err != nil {
		return fmt.Errorf("gen: produce: %d lines failed, first: %w", s.failed.Load(), err)
	}
	return nil
}

// Produced is the number of lines acknowledged by the brokers.
func (s *KafkaSink) Produced() int64 { return s.produced.Load() }

func (s *KafkaSink) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
