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

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/compress"

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
	// RowGroupBytes caps a row group's size as the rows' PLAIN-encoded
	// Parquet bytes (schemas.BatchBuilder.RowSize; default 128 MiB), the
	// unit readers fetch and decompress at once. Dictionary encoding and
	// compression only shrink it, so the row group's uncompressed and
	// on-disk sizes stay within it; a single record larger than the
	// budget still gets a row group of its own.
	RowGroupBytes int64
	// Watermark lag: a partition's event-time watermark is its newest
	// event time minus this (the lateness the batch layer must allow).
	WatermarkLag time.Duration
	Allocator    memory.Allocator
}

// DefaultRowGroupBytes is WriterOptions.RowGroupBytes when unset.
const DefaultRowGroupBytes = 128 << 20

// Rows travel from Add to a group's encoder in chunks of at most
// chunkRows rows or chunkBytes bytes: small enough that the Arrow data
// in flight stays a few MB per group whatever the commit size, large
// enough that the per-call cost of the Parquet writer is amortised.
const (
	chunkRows  = 32 << 10
	chunkBytes = 8 << 20
)

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
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
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
// event-time partitions. hour counts local wall-clock hours since the Unix
// epoch in the writer's Location, which names dt= and hour= uniquely.
type groupKey struct {
	dataset string
	hour    int64
}

// partition is the key's dt= and hour= values.
func (k groupKey) partition() (dt string, hour int) {
	t := time.Unix(k.hour*3600, 0).UTC() // wall clock of the Location, read as UTC
	return t.Format("2006-01-02"), t.Hour()
}

// group is one output file being built. Add appends rows to b; full chunks
// go to enc, which encodes them into Parquet in memory on its own
// goroutine while the next chunk is parsed, so parsing and encoding use
// two cores and a group holds compressed pages, not a commit's worth of
// Arrow buffers.
type group struct {
	b   *schemas.BatchBuilder
	enc *encoder
	// file is the finished Parquet file, kept until the commit succeeds so
	// a retried commit rewrites the same bytes.
	file        *memFile
	first, last int64
	rows        int64
	// Accounting of the row group being filled: rows and bytes already
	// handed to the encoder, bytes of the rows still in b, and whether the
	// next chunk starts a new row group.
	rgRows, rgBytes, chunk int64
	newRowGroup            bool
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
	// The group of the previous record: consecutive records nearly always
	// share dataset and hour, so most Adds skip the map.
	lastKey   groupKey
	lastGroup *group
	// spare are the builders of the groups of earlier commits, empty, by
	// dataset: a builder sizes each batch by the previous one, so reusing
	// it spares every commit's first chunk the growth from nothing.
	spare map[string][]*schemas.BatchBuilder
	// sealed is set once a commit has finished its files; records added
	// after it would be missing from a retried commit's files, so Add
	// refuses until the commit succeeds or the writer is aborted.
	sealed bool
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
	if w.sealed {
		return fmt.Errorf("consumer: %s/%d: add at offset %d while a failed commit is unresolved", w.log.topic, w.log.partition, offset)
	}
	et := r.EventTime()
	_, off := et.In(w.opts.Location).Zone()
	k := groupKey{dataset: r.Dataset(), hour: floorDiv(et.Unix()+int64(off), 3600)}
	g := w.lastGroup
	if g == nil || k != w.lastKey {
		g = w.groups[k]
		if g == nil {
			b, err := w.builder(k.dataset)
			if err != nil {
				return err
			}
			g = &group{b: b, first: offset, newRowGroup: true}
			w.groups[k] = g
		}
		w.lastKey, w.lastGroup = k, g
	}
	if err := w.append(g, r); err != nil {
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
	if et.After(w.maxEventTime) {
		w.maxEventTime = et
		if wm := et.Add(-w.opts.WatermarkLag); wm.After(w.watermark) {
			w.watermark = wm
		}
	}
	return nil
}

// builder returns an empty batch builder for dataset, a spare one when
// there is.
func (w *PartitionWriter) builder(dataset string) (*schemas.BatchBuilder, error) {
	if bs := w.spare[dataset]; len(bs) > 0 {
		w.spare[dataset] = bs[:len(bs)-1]
		return bs[len(bs)-1], nil
	}
	ds, ok := schemas.Lookup(dataset)
	if !ok {
		return nil, fmt.Errorf("consumer: unknown dataset %q", dataset)
	}
	return schemas.NewBatchBuilder(ds, w.opts.Allocator), nil
}

// append adds r to g, closing the row group first when r would take it
// past RowGroupBytes or RowGroupRows, and hands the rows to the encoder
// when a chunk is full.
func (w *PartitionWriter) append(g *group, r schemas.Record) error {
	sz := g.b.RowSize(r)
	if rows := g.rgRows + int64(g.b.Len()); rows > 0 && (g.rgBytes+g.chunk+sz > w.opts.RowGroupBytes || rows >= w.opts.RowGroupRows) {
		if err := w.flushChunk(g); err != nil {
			return err
		}
		g.rgRows, g.rgBytes, g.newRowGroup = 0, 0, true
	}
	if err := g.b.Append(r); err != nil {
		return err
	}
	g.chunk += sz
	if g.b.Len() >= chunkRows || g.chunk >= chunkBytes {
		return w.flushChunk(g)
	}
	return nil
}

// flushChunk hands the rows buffered in g's builder to its encoder,
// starting the encoder with the group's first chunk.
func (w *PartitionWriter) flushChunk(g *group) error {
	if g.b.Len() == 0 {
		return nil
	}
	if g.enc == nil {
		enc, err := w.newEncoder(g.b.Dataset())
		if err != nil {
			return err
		}
		g.enc = enc
	}
	n := int64(g.b.Len())
	g.enc.send(g.b.NewRecordBatch(), g.newRowGroup, g.chunk)
	g.rgRows += n
	g.rgBytes += g.chunk
	g.chunk, g.newRowGroup = 0, false
	return nil
}

// The memory of an open file, as MemBytes estimates it. Measured for the
// auth dataset (20 columns) by buffering sshd records in writers without
// committing and reading the live heap after a GC (TestMemBytesTracksHeap):
// once a file's Parquet writer exists it holds about 30 MiB of per-column
// page, level and compression buffers, and, until its row group is
// closed, about 0.6 byte per PLAIN byte of the row group's rows (the
// buffered pages, dictionary indices and statistics of a row group that
// is written out only when it closes). Closed row groups are held
// compressed.
const (
	openFileBytes          = 30 << 20
	rowGroupHeldPerPlain10 = 6 // tenths of a byte per PLAIN byte
)

// MemBytes estimates the memory the writer's buffered records hold across
// its open files: the Arrow rows being filled and in flight to the
// encoders, what each Parquet writer holds, and finished files waiting for
// the commit. The consumer's memory budget sums it over partitions.
func (w *PartitionWriter) MemBytes() int64 {
	var n int64
	for _, g := range w.groups {
		n += g.memBytes()
	}
	return n
}

func (g *group) memBytes() int64 {
	switch {
	case g.file != nil:
		return g.file.size // finished: only the file waits for the commit
	case g.enc == nil:
		return g.chunk // no Parquet writer yet: only the Arrow rows
	}
	return openFileBytes + g.chunk + g.enc.inflight.Load() + g.rgBytes*rowGroupHeldPerPlain10/10 + g.enc.held.Load()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
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
	// Every group's last chunk is handed over before any file is awaited,
	// so the encoders finish their tails in parallel.
	w.sealed = true
	for _, k := range keys {
		if g := w.groups[k]; g.file == nil {
			if err := w.flushChunk(g); err != nil {
				return Entry{}, false, err
			}
		}
	}
	stage := w.log.tmp(w.epoch)
	if err := w.fs.MkdirAll(ctx, stage); err != nil {
		return Entry{}, false, fmt.Errorf("consumer: stage dir: %w", err)
	}
	var files []FileRef
	for _, k := range keys {
		g := w.groups[k]
		dt, hour := k.partition()
		name := fmt.Sprintf("part-%s-%d-%020d.parquet", w.log.topic, w.log.partition, g.first)
		ref := FileRef{
			Temp:        path.Join(stage, seqName(seq)+"-"+name),
			Final:       path.Join(k.dataset, "dt="+dt, fmt.Sprintf("hour=%02d", hour), name),
			Dataset:     k.dataset,
			Rows:        g.rows,
			FirstOffset: g.first,
			LastOffset:  g.last,
		}
		if g.file == nil {
			f, err := g.enc.finish(w.fileMetadata(ref))
			if err != nil {
				return Entry{}, false, fmt.Errorf("consumer: encode %s: %w", ref.Temp, err)
			}
			g.file = f
		}
		if err := w.writeFile(ctx, ref, g.file); err != nil {
			return Entry{}, false, err
		}
		ref.Bytes = g.file.size
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
// revocation); the next owner resumes from the last commit. The files of a
// published entry whose move failed (pending) are the entry's data: they
// stay for the next owner's claim to roll forward, which then cleans the
// rest of this epoch's temporary files.
func (w *PartitionWriter) Abort(ctx context.Context) error {
	w.discard()
	if w.pending != nil {
		return nil
	}
	if err := w.fs.RemoveAll(ctx, w.log.tmp(w.epoch)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// discard drops the buffered records and stops the encoders, touching no
// file.
func (w *PartitionWriter) discard() {
	w.reset()
	w.last = w.next - 1
}

func (w *PartitionWriter) reset() {
	for k, g := range w.groups {
		if g.enc != nil {
			g.enc.abort()
		}
		g.b.Release() // drops rows never handed over (an abort); keeps the sizes
		if w.spare == nil {
			w.spare = map[string][]*schemas.BatchBuilder{}
		}
		w.spare[k.dataset] = append(w.spare[k.dataset], g.b)
	}
	w.groups = map[groupKey]*group{}
	w.lastKey, w.lastGroup = groupKey{}, nil
	w.sealed = false
	w.records, w.bytes, w.started = 0, 0, time.Time{}
}

func (w *PartitionWriter) fileMetadata(ref FileRef) map[string]string {
	return map[string]string{
		"lambdalog.kafka_topic":     w.log.topic,
		"lambdalog.kafka_partition": strconv.Itoa(int(w.log.partition)),
		"lambdalog.first_offset":    strconv.FormatInt(ref.FirstOffset, 10),
		"lambdalog.last_offset":     strconv.FormatInt(ref.LastOffset, 10),
		"lambdalog.schema_version":  strconv.Itoa(int(schemas.Version)),
	}
}

// writeFile stores a finished Parquet file at ref.Temp and closes it.
func (w *PartitionWriter) writeFile(ctx context.Context, ref FileRef, m *memFile) error {
	// A failed earlier attempt at this (unpublished) sequence may have
	// left the file behind; it is ours and referenced by nothing.
	if err := w.fs.Remove(ctx, ref.Temp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("consumer: clear %s: %w", ref.Temp, err)
	}
	f, err := w.fs.Create(ctx, ref.Temp)
	if err != nil {
		return fmt.Errorf("consumer: create %s: %w", ref.Temp, err)
	}
	for _, p := range m.chunks {
		if _, err := f.Write(p); err != nil {
			f.Abort()
			return fmt.Errorf("consumer: write %s: %w", ref.Temp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("consumer: close %s: %w", ref.Temp, err)
	}
	return nil
}
