package consumer

import (
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/schemas"
)

// encoder writes one Parquet file into memory on its own goroutine, from
// Arrow chunks sent by the partition's loop. The file stays in memory
// (compressed, typically a tenth of the Arrow data) until the commit
// stores it, because a retried commit must rewrite exactly the same file.
type encoder struct {
	in   chan encodeJob
	done chan struct{}
	pw   *pqarrow.FileWriter
	out  *memFile
	// err is the first write error, owned by the goroutine until done is
	// closed; later chunks are released unwritten.
	err     error
	stopped bool
	// inflight is the PLAIN size of the chunks sent and not yet encoded
	// (their Arrow buffers are alive); held is the size of the row groups
	// finished in out. Both feed the memory budget (MemBytes).
	inflight atomic.Int64
	held     atomic.Int64
}

type encodeJob struct {
	rec         arrow.Record
	newRowGroup bool
	bytes       int64
}

// newEncoder starts the encoder of one file of dataset ds.
func (w *PartitionWriter) newEncoder(ds *schemas.Dataset) (*encoder, error) {
	codec, err := w.opts.codec()
	if err != nil {
		return nil, err
	}
	popts := []parquet.WriterProperty{
		parquet.WithCompression(codec),
		parquet.WithDictionaryDefault(false),
		parquet.WithStats(true),
		// Row groups are cut by append (bytes and rows); the cap here only
		// keeps the library from cutting one on its own.
		parquet.WithMaxRowGroupLength(w.opts.RowGroupRows),
		parquet.WithAllocator(w.opts.Allocator),
		parquet.WithCreatedBy("lambdalog consumer"),
	}
	for _, f := range ds.Fields() {
		popts = append(popts, parquet.WithDictionaryFor(f.Name, dictionary(f)))
		if rawLine(f) {
			popts = append(popts, parquet.WithStatsFor(f.Name, false))
		}
	}
	props := parquet.NewWriterProperties(popts...)
	out := &memFile{}
	pw, err := pqarrow.NewFileWriter(ds.ArrowSchema(), out, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(w.opts.Allocator)))
	if err != nil {
		return nil, fmt.Errorf("consumer: parquet writer: %w", err)
	}
	// One chunk may wait while the previous one is encoded: enough to keep
	// both goroutines busy, and the loop blocks (back-pressure) when the
	// encoder falls behind instead of buffering without bound.
	e := &encoder{in: make(chan encodeJob, 1), done: make(chan struct{}), pw: pw, out: out}
	go e.run()
	return e, nil
}

// dictionary says whether column f is dictionary-encoded: only strings
// the schema marks low-cardinality (the mark that also makes them
// LowCardinality in ClickHouse). Arrow's dictionary encoders box every
// value into an interface (an allocation per value) and hash it; for the
// columns unique per record (the raw line, the offset, the millisecond
// event time) the dictionary is abandoned anyway at the page limit, and
// repeated addresses, user names and numbers compress as well with zstd
// in PLAIN pages. Measured in BenchmarkEncodeAuthParquet against
// dictionaries on every column but the unique ones: 15% less CPU per
// record and files 15% smaller (12.2 instead of 14.5 bytes per record on
// the benchmark's data).
func dictionary(f schemas.Field) bool {
	return (f.Kind == schemas.KindString || f.Kind == schemas.KindBytes) && f.LowCardinality
}

// rawLine says whether f is the raw line (event_original, quarantine's
// raw), whose statistics are off: the min and max of raw log lines prune
// nothing for a reader (every query filters parsed columns), but the
// writer compared every line against them (4% of the consumer's CPU in
// the profile) and stored two lines per page in the file. Every other
// column keeps its statistics.
func rawLine(f schemas.Field) bool {
	return f.Name == "event_original" || f.Name == "raw"
}

func (e *encoder) run() {
	defer close(e.done)
	for j := range e.in {
		if e.err == nil {
			e.err = e.write(j)
			e.held.Store(e.out.size)
		}
		j.rec.Release()
		e.inflight.Add(-j.bytes)
	}
}

// write adds a chunk to the file's current row group, or to a new one. The
// Parquet library panics on some internal errors; on this goroutine that
// would take the process down, so it becomes the file's error.
func (e *encoder) write(j encodeJob) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parquet writer: %v", r)
		}
	}()
	if j.newRowGroup {
		e.pw.NewBufferedRowGroup()
	}
	return e.pw.WriteBuffered(j.rec)
}

// send hands a chunk of PLAIN size bytes (and its ownership) to the
// encoder.
func (e *encoder) send(rec arrow.Record, newRowGroup bool, bytes int64) {
	e.inflight.Add(bytes)
	e.in <- encodeJob{rec: rec, newRowGroup: newRowGroup, bytes: bytes}
}

func (e *encoder) stop() {
	if !e.stopped {
		e.stopped = true
		close(e.in)
	}
	<-e.done
}

// finish waits for the chunks sent, adds the file's key-value metadata and
// writes the footer. It returns the finished file.
func (e *encoder) finish(meta map[string]string) (f *memFile, err error) {
	e.stop()
	if e.err != nil {
		return nil, e.err
	}
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("parquet writer: %v", r)
		}
	}()
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := e.pw.AppendKeyValueMetadata(k, meta[k]); err != nil {
			return nil, fmt.Errorf("parquet metadata: %w", err)
		}
	}
	if err := e.pw.Close(); err != nil {
		return nil, fmt.Errorf("parquet footer: %w", err)
	}
	return e.out, nil
}

// abort stops the encoder and frees its buffers; the file is dropped.
func (e *encoder) abort() {
	e.stop()
	defer func() { _ = recover() }()
	_ = e.pw.Close() // a no-op after finish
}

// memFile is an in-memory file in chunks: appending never copies what was
// written before, as a doubling buffer would.
type memFile struct {
	chunks [][]byte
	size   int64
}

const (
	memFileFirstChunk = 64 << 10
	memFileMaxChunk   = 4 << 20
)

func (m *memFile) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := len(m.chunks) - 1
		if last < 0 || len(m.chunks[last]) == cap(m.chunks[last]) {
			c := memFileFirstChunk
			if last >= 0 {
				c = min(2*cap(m.chunks[last]), memFileMaxChunk)
			}
			m.chunks = append(m.chunks, make([]byte, 0, c))
			last++
		}
		buf := m.chunks[last]
		k := min(len(p), cap(buf)-len(buf))
		m.chunks[last] = append(buf, p[:k]...)
		p = p[k:]
	}
	m.size += int64(n)
	return n, nil
}
