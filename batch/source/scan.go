package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/metadata"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// ScanOptions configure Scan.
type ScanOptions struct {
	// Columns to read, by name. "timestamp" is always read (added when
	// absent) because rows outside the interval are the caller's to drop
	// when a chunk is not InInterval.
	Columns []string
	// Dict lists string columns to read dictionary-encoded
	// (*array.Dictionary over utf8): group-by keys then cost one index per
	// row instead of one string.
	Dict []string
	// From and To bound the event times wanted; row groups entirely
	// outside are skipped by their statistics.
	From, To time.Time
	// SkipTimestamp lets the scan leave out the timestamp column for
	// partitions that lie inside [From, To) and span exactly one UTC hour:
	// every row's interval membership and hour are then known (InInterval,
	// Hour) and Chunk.Timestamp is nil. Callers that need per-row times
	// (windows shorter than an hour) leave it false.
	SkipTimestamp bool
	// Workers is the number of files read in parallel (GOMAXPROCS when 0).
	Workers int
	// BatchRows caps the rows of one Chunk (default 1<<20).
	BatchRows int64
	// Mem allocates Arrow buffers (Go allocator when nil).
	Mem memory.Allocator
	// Recycle lets each worker reuse the Arrow buffers of the files it
	// has finished (see recycler), up to RecycleBytes per worker (default
	// 256 MiB). Only for callbacks that copy what they keep out of the
	// chunk; it replaces Mem.
	Recycle      bool
	RecycleBytes int

	onRecycler func(*recycler) // tests: each worker's recycler, after its scan
}

// Chunk is a slice of one row group's rows, projected to the requested
// columns. It is valid only during the callback: its arrays are released
// afterwards, so copy out any string you keep.
type Chunk struct {
	File *File
	// Rows is the number of rows.
	Rows int
	// Cols holds the columns in Columns order; an entry is nil when the
	// file predates the column (read it as the zero value).
	Cols []arrow.Array
	// Timestamp is the event-time column (microseconds, UTC); nil when
	// ScanOptions.SkipTimestamp left it out (then InInterval is true and
	// Hour is set).
	Timestamp []arrow.Timestamp
	// InInterval is true when every row's timestamp is known (from the
	// partition or the row-group statistics) to lie in [From, To).
	InInterval bool
	// Hour is the UTC hour holding every row of the chunk, or the zero
	// time when the rows span several hours.
	Hour time.Time
}

// Stats describe a scan.
type Stats struct {
	Files     int64
	RowGroups int64
	Skipped   int64 // row groups skipped by statistics
	Rows      int64
	Bytes     int64
}

// Scan reads files in parallel and calls fn for every chunk; fn runs
// concurrently on up to Workers goroutines and gets the worker's index
// (0..Workers-1) so it can aggregate into per-worker state without locks.
// The first error stops the scan.
func Scan(ctx context.Context, fsys storage.FS, files []File, o ScanOptions, fn func(worker int, c *Chunk) error) (Stats, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Workers > len(files) {
		o.Workers = max(1, len(files))
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 1 << 20
	}
	if o.Mem == nil {
		o.Mem = memory.DefaultAllocator
	}
	cols := append([]string(nil), o.Columns...)
	tsIdx := -1
	for i, c := range cols {
		if c == "timestamp" {
			tsIdx = i
		}
	}
	if tsIdx < 0 {
		tsIdx = len(cols)
		cols = append(cols, "timestamp")
	}
	o.Columns = cols

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		st       Stats
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wo := o
			var rec *recycler
			if o.Recycle {
				rec = newRecycler(cmp.Or(o.RecycleBytes, 256<<20))
				wo.Mem = rec
				if o.onRecycler != nil {
					defer o.onRecycler(rec)
				}
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) || ctx.Err() != nil {
					return
				}
				err := scanFile(ctx, fsys, &files[i], wo, tsIdx, &st, func(c *Chunk) error { return fn(w, c) })
				if err != nil {
					fail(err)
					return
				}
				if rec != nil {
					rec.endFile()
				}
			}
		}(w)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return Stats{Files: atomic.LoadInt64(&st.Files), RowGroups: atomic.LoadInt64(&st.RowGroups), Skipped: atomic.LoadInt64(&st.Skipped),
		Rows: atomic.LoadInt64(&st.Rows), Bytes: atomic.LoadInt64(&st.Bytes)}, firstErr
}

func scanFile(ctx context.Context, fsys storage.FS, f *File, o ScanOptions, tsIdx int, st *Stats, fn func(*Chunk) error) error {
	r, err := fsys.Open(ctx, f.Name)
	if err != nil {
		return fmt.Errorf("source: open %s: %w", f.Name, err)
	}
	defer r.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		return fmt.Errorf("source: read parquet footer of %s: %w", f.Name, err)
	}
	defer pf.Close()
	atomic.AddInt64(&st.Files, 1)
	atomic.AddInt64(&st.Bytes, r.Size())

	sch := pf.MetaData().Schema
	props := pqarrow.ArrowReadProperties{BatchSize: o.BatchRows}
	// Within a partition fully inside the interval every row is in it.
	partInside := !f.PartStart.IsZero() && !f.PartStart.Before(o.From) && !f.PartEnd.After(o.To)
	partHour := time.Time{}
	if f.PartEnd.Sub(f.PartStart) == time.Hour && f.PartStart.Equal(f.PartStart.Truncate(time.Hour)) {
		partHour = f.PartStart.UTC()
	}
	skipTS := o.SkipTimestamp && partInside && !partHour.IsZero()
	tsLeaf := sch.ColumnIndexByName("timestamp")
	if tsLeaf < 0 {
		return fmt.Errorf("source: %s has no timestamp column", f.Name)
	}
	// Map requested columns to leaf indices; missing ones stay -1.
	leaf := make([]int, len(o.Columns))
	var read []int
	for i, c := range o.Columns {
		leaf[i] = sch.ColumnIndexByName(c)
		if i == tsIdx && skipTS {
			leaf[i] = -1
		}
		if leaf[i] >= 0 {
			read = append(read, leaf[i])
		}
	}
	for _, d := range o.Dict {
		if i := sch.ColumnIndexByName(d); i >= 0 {
			props.SetReadDict(i, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, props, o.Mem)
	if err != nil {
		return fmt.Errorf("source: %s: %w", f.Name, err)
	}
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		lo, hi, hasStats := tsStats(pf.MetaData().RowGroup(rg), tsLeaf)
		if hasStats && (hi.Before(o.From) || !lo.Before(o.To)) {
			atomic.AddInt64(&st.Skipped, 1)
			continue
		}
		inside := partInside || (hasStats && !lo.Before(o.From) && hi.Before(o.To))
		var hour time.Time
		if hasStats && lo.Truncate(time.Hour).Equal(hi.Truncate(time.Hour)) {
			hour = lo.Truncate(time.Hour)
		}
		if skipTS {
			hour = partHour
		}
		// pqarrow sizes its builders by BatchSize: never more than the
		// row group holds, or small row groups pay for 1M-row buffers.
		fr.Props.BatchSize = min(o.BatchRows, max(1, pf.MetaData().RowGroup(rg).NumRows()))
		if err := scanRowGroup(ctx, fr, f, rg, read, leaf, tsIdx, inside, hour, fn, st); err != nil {
			return err
		}
		atomic.AddInt64(&st.RowGroups, 1)
	}
	return nil
}

func scanRowGroup(ctx context.Context, fr *pqarrow.FileReader, f *File, rg int, read, leaf []int, tsIdx int, inside bool, hour time.Time, fn func(*Chunk) error, st *Stats) error {
	rr, err := fr.GetRecordReader(ctx, read, []int{rg})
	if err != nil {
		return fmt.Errorf("source: %s row group %d: %w", f.Name, rg, err)
	}
	defer rr.Release()
	pos := make([]int, len(leaf)) // column position in the record, -1 missing
	p := 0
	for i, l := range leaf {
		if l < 0 {
			pos[i] = -1
			continue
		}
		pos[i] = p
		p++
	}
	for rr.Next() {
		rec := rr.Record()
		c := &Chunk{File: f, Rows: int(rec.NumRows()), Cols: make([]arrow.Array, len(leaf)), InInterval: inside, Hour: hour}
		for i, q := range pos {
			if q >= 0 {
				c.Cols[i] = rec.Column(q)
			}
		}
		if c.Cols[tsIdx] != nil {
			ts, ok := c.Cols[tsIdx].(interface{ TimestampValues() []arrow.Timestamp })
			if !ok {
				return fmt.Errorf("source: %s: timestamp column is %s", f.Name, c.Cols[tsIdx].DataType())
			}
			if u := c.Cols[tsIdx].DataType().(*arrow.TimestampType).Unit; u != arrow.Microsecond {
				return fmt.Errorf("source: %s: timestamp unit %s, want us", f.Name, u)
			}
			c.Timestamp = ts.TimestampValues()
		}
		atomic.AddInt64(&st.Rows, int64(c.Rows))
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("source: %s row group %d: %w", f.Name, rg, err)
	}
	return nil
}

// tsStats returns the row group's timestamp range from its statistics.
func tsStats(rg *metadata.RowGroupMetaData, col int) (lo, hi time.Time, ok bool) {
	cc, err := rg.ColumnChunk(col)
	if err != nil {
		return
	}
	s, err := cc.Statistics()
	if err != nil || s == nil || !s.HasMinMax() || s.NullCount() > 0 {
		return
	}
	is, isInt := s.(*metadata.Int64Statistics)
	if !isInt {
		return
	}
	return time.UnixMicro(is.Min()).UTC(), time.UnixMicro(is.Max()).UTC(), true
}
