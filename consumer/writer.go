package consumer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

// WriterOptions configure how a partition's records become Parquet files.
type WriterOptions struct {
	// Location of the dt=/hour= partitions (default UTC).
	Location *time.Location
	// Compression: "zstd" (default), "snappy" or "none".
	Compression string
	// RowGroupRows caps rows per row group (default 1,000,000).
	RowGroupRows int64
	// Watermark lag: a partition's event-time watermark is its newest
	// event time minus this (the lateness the batch layer must allow).
	WatermarkLag time.Duration
	Allocator    memory.Allocator
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Compression == "" {
		o.Compression = "zstd"
	}
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 1_000_000
	}
	if o.Allocator == nil {
		o.Allocator = memory.DefaultAllocator
	}
	return o
}

func (o WriterOptions) codec() (compress.Compression, error) {
	switch o.Compression {
	case "zstd":
		return compress.Codecs.Zstd, nil
	case "snappy":
		return compress.Codecs.Snappy, nil
	case "none":
		return compress.Codecs.Uncompressed, nil
	}
	return 0, fmt.Errorf("consumer: compression %q: want zstd, snappy or none", o.Compression)
}

// groupKey is one output file of a commit: a file never mixes datasets or
// event-time partitions.
type groupKey struct {
	dataset string
	dt      string
	hour    int
}

type group struct {
	b *schemas.BatchBuilder
	// rec is the built batch, kept until the commit succeeds: building
	// empties the builder, so a retried commit must reuse it.
	rec         arrow.Record
	first, last int64
	rows        int64
}

// PartitionWriter buffers one topic-partition's records and publishes them
// as one commit: Parquet files plus a commit log entry covering the
// contiguous offsets [Next, last+1).
type PartitionWriter struct {
	fs    storage.FS
	log   *Log
	epoch string
	opts  WriterOptions

	seq    int64 // last published sequence number
	next   int64 // first offset not yet committed
	last   int64 // last buffered offset, next-1 when empty
	groups map[groupKey]*group
	// records and bytes buffered; started is when the first was buffered.
	records int64
	bytes   int64
	started time.Time

	maxEventTime time.Time
	watermark    time.Time
	// pending is a published entry whose files are not all moved yet
	// (the move failed); the next Commit finishes it first.
	pending *Entry
}

// NewPartitionWriter continues the log after claim (from Log.Claim).
func NewPartitionWriter(fsys storage.FS, log *Log, claim Entry, opts WriterOptions) *PartitionWriter {
	return &PartitionWriter{fs: fsys, log: log, epoch: claim.Epoch, opts: opts.withDefaults(),
		seq: claim.Seq, next: claim.Next, last: claim.Next - 1, groups: map[groupKey]*group{},
		maxEventTime: claim.MaxEventTime, watermark: claim.Watermark}
}

// Next is the first offset not yet committed: where consumption resumes.
func (w *PartitionWriter) Next() int64 { return w.next }

// Buffered reports the records and approximate bytes waiting for a commit
// and when the first of them arrived.
func (w *PartitionWriter) Buffered() (records, bytes int64, since time.Time) {
	return w.records, w.bytes, w.started
}

// Add buffers a record read at offset; offsets must increase.
func (w *PartitionWriter) Add(r schemas.Record, offset int64, size int) error {
	if offset <= w.last {
		return fmt.Errorf("consumer: %s/%d: offset %d after %d", w.log.topic, w.log.partition, offset, w.last)
	}
	t := r.EventTime().In(w.opts.Location)
	k := groupKey{dataset: r.Dataset(), dt: t.Format("2006-01-02"), hour: t.Hour()}
	g := w.groups[k]
	if g == nil {
		ds, ok := schemas.Lookup(k.dataset)
		if !ok {
			return fmt.Errorf("consumer: unknown dataset %q", k.dataset)
		}
		g = &group{b: schemas.NewBatchBuilder(ds, w.opts.Allocator), first: offset}
		w.groups[k] = g
	}
	if err := g.b.Append(r); err != nil {
		return fmt.Errorf("consumer: append to %s: %w", k.dataset, err)
	}
	g.last = offset
	g.rows++
	if w.records == 0 {
		w.started = time.Now()
	}
	w.records++
	w.bytes += int64(size)
	w.last = offset
	if et := r.EventTime(); et.After(w.maxEventTime) {
		w.maxEventTime = et
		if wm := et.Add(-w.opts.WatermarkLag); wm.After(w.watermark) {
			w.watermark = wm
		}
	}
	return nil
}

// Skip advances past offsets that carry no record (none today: every line
// is written or quarantined), keeping ranges contiguous.
func (w *PartitionWriter) Skip(offset int64) {
	if offset > w.last {
		w.last = offset
	}
}

// Commit writes the buffered records as Parquet files and publishes them
// with their offset range. It returns the entry, or ok=false when nothing
// was buffered. On ErrFenced the writer must be dropped.
func (w *PartitionWriter) Commit(ctx context.Context) (e Entry, ok bool, err error) {
	if w.pending != nil {
		if err := w.log.RollForward(ctx, *w.pending); err != nil {
			return Entry{}, false, err
		}
		w.pending = nil
	}
	if w.last < w.next {
		return Entry{}, false, nil
	}
	seq := w.seq + 1
	keys := make([]groupKey, 0, len(w.groups))
	for k := range w.groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return w.groups[keys[i]].first < w.groups[keys[j]].first })
	stage := w.log.tmp(w.epoch)
	if err := w.fs.MkdirAll(ctx, stage); err != nil {
		return Entry{}, false, fmt.Errorf("consumer: stage dir: %w", err)
	}
	var files []FileRef
	for _, k := range keys {
		g := w.groups[k]
		name := fmt.Sprintf("part-%s-%d-%020d.parquet", w.log.topic, w.log.partition, g.first)
		ref := FileRef{
			Temp:        path.Join(stage, seqName(seq)+"-"+name),
			Final:       path.Join(k.dataset, "dt="+k.dt, fmt.Sprintf("hour=%02d", k.hour), name),
			Dataset:     k.dataset,
			Rows:        g.rows,
			FirstOffset: g.first,
			LastOffset:  g.last,
		}
		size, err := w.writeParquet(ctx, ref, g)
		if err != nil {
			return Entry{}, false, err
		}
		ref.Bytes = size
		files = append(files, ref)
	}
	if err := w.log.step("files-written"); err != nil {
		return Entry{}, false, err
	}
	e = Entry{Seq: seq, Start: w.next, Next: w.last + 1, Epoch: w.epoch, Files: files, Records: w.records,
		MaxEventTime: w.maxEventTime, Watermark: w.watermark}
	if err := w.log.Publish(ctx, e); err != nil {
		return Entry{}, false, err
	}
	w.seq, w.next = seq, w.last+1
	w.reset()
	if err := w.log.RollForward(ctx, e); err != nil {
		// The entry is published: the next Commit (or the next owner's
		// claim) completes the move.
		w.pending = &e
		return e, true, err
	}
	return e, true, nil
}

// Abort drops the buffered records and their temporary files (on
// revocation); the next owner resumes from the last commit.
func (w *PartitionWriter) Abort(ctx context.Context) error {
	w.reset()
	w.last = w.next - 1
	if err := w.fs.RemoveAll(ctx, w.log.tmp(w.epoch)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (w *PartitionWriter) reset() {
	for _, g := range w.groups {
		if g.rec != nil {
			g.rec.Release()
		}
		g.b.Release()
	}
	w.groups = map[groupKey]*group{}
	w.records, w.bytes, w.started = 0, 0, time.Time{}
}

// writeOnly hides Close, so the Parquet writer does not close the storage
// file: Close is ours, because its error decides whether the file is durable.
type writeOnly struct{ f storage.File }

func (w writeOnly) Write(p []byte) (int, error) { return w.f.Write(p) }

// writeParquet writes one group as a Parquet file at ref.Temp and closes
// it. The Parquet library panics when its first write (the magic bytes)
// fails; that is an I/O error like any other here, not a crash.
func (w *PartitionWriter) writeParquet(ctx context.Context, ref FileRef, g *group) (n int64, err error) {
	var f storage.File
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				f.Abort()
			}
			n, err = 0, fmt.Errorf("consumer: write %s: %v", ref.Temp, r)
		}
	}()
	return w.writeParquetFile(ctx, ref, g, &f)
}

func (w *PartitionWriter) writeParquetFile(ctx context.Context, ref FileRef, g *group, fp *storage.File) (int64, error) {
	codec, err := w.opts.codec()
	if err != nil {
		return 0, err
	}
	// A failed earlier attempt at this (unpublished) sequence may have
	// left the file behind; it is ours and referenced by nothing.
	if err := w.fs.Remove(ctx, ref.Temp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("consumer: clear %s: %w", ref.Temp, err)
	}
	f, err := w.fs.Create(ctx, ref.Temp)
	if err != nil {
		return 0, fmt.Errorf("consumer: create %s: %w", ref.Temp, err)
	}
	*fp = f
	if g.rec == nil {
		g.rec = g.b.NewRecordBatch()
	}
	rec := g.rec
	props := parquet.NewWriterProperties(
		parquet.WithCompression(codec),
		parquet.WithDictionaryDefault(true),
		parquet.WithStats(true),
		parquet.WithMaxRowGroupLength(w.opts.RowGroupRows),
		parquet.WithAllocator(w.opts.Allocator),
		parquet.WithCreatedBy("lambdalog consumer"),
	)
	counter := &countingWriter{w: writeOnly{f}}
	pw, err := pqarrow.NewFileWriter(rec.Schema(), counter, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(w.opts.Allocator)))
	if err != nil {
		f.Abort()
		return 0, fmt.Errorf("consumer: parquet writer: %w", err)
	}
	meta := map[string]string{
		"lambdalog.kafka_topic":     w.log.topic,
		"lambdalog.kafka_partition": strconv.Itoa(int(w.log.partition)),
		"lambdalog.first_offset":    strconv.FormatInt(ref.FirstOffset, 10),
		"lambdalog.last_offset":     strconv.FormatInt(ref.LastOffset, 10),
		"lambdalog.schema_version":  strconv.Itoa(int(schemas.Version)),
	}
	for k, v := range meta {
		if err := pw.AppendKeyValueMetadata(k, v); err != nil {
			f.Abort()
			return 0, fmt.Errorf("consumer: parquet metadata: %w", err)
		}
	}
	if err := pw.Write(rec); err != nil {
		f.Abort()
		return 0, fmt.Errorf("consumer: write %s: %w", ref.Temp, err)
	}
	if err := pw.Close(); err != nil {
		f.Abort()
		return 0, fmt.Errorf("consumer: finish %s: %w", ref.Temp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("consumer: close %s: %w", ref.Temp, err)
	}
	return counter.n, nil
}

type countingWriter struct {
	w writeOnly
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
