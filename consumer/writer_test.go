package consumer

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// parsedAuth is sshdLine(i) parsed, with the lineage the consumer adds.
func parsedAuth(t *testing.T, p parse.Parser, i int) schemas.Record {
	t.Helper()
	r, err := p.Parse([]byte(sshdLine(i)))
	if err != nil {
		t.Fatal(err)
	}
	c := r.Common()
	c.KafkaTopic, c.KafkaPartition, c.KafkaOffset = "auth", 0, int64(i)
	c.KafkaTimestamp, c.IngestTime = base, base.Add(time.Second)
	return r
}

// writeOneCommit writes records [0, n) of partition auth/0 in one commit
// and returns the commit's files.
func writeOneCommit(t *testing.T, fsys storage.FS, opts WriterOptions, n int) []FileRef {
	t.Helper()
	ctx := context.Background()
	p, err := parse.New("sshd", parse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(fsys, "auth", 0)
	claim, err := l.Claim(ctx, newEpoch())
	if err != nil {
		t.Fatal(err)
	}
	w := NewPartitionWriter(fsys, l, claim, opts)
	for i := 0; i < n; i++ {
		if err := w.Add(parsedAuth(t, p, i), int64(i), 100); err != nil {
			t.Fatal(err)
		}
	}
	e, ok, err := w.Commit(ctx)
	if err != nil || !ok {
		t.Fatalf("commit: ok=%v err=%v", ok, err)
	}
	if e.Records != int64(n) {
		t.Fatalf("commit has %d records, want %d", e.Records, n)
	}
	return e.Files
}

// openParquet opens a committed file and returns its Parquet reader.
func openParquet(t *testing.T, fsys storage.FS, name string) *file.Reader {
	t.Helper()
	r, err := fsys.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	pr, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { pr.Close() })
	return pr
}

// rowGroupSize sums the column chunks of row group i. (Arrow's writer
// records the compressed size as the row group's total_byte_size, so that
// field cannot be used for the uncompressed one.)
func rowGroupSize(t *testing.T, pr *file.Reader, i int) (uncompressed, compressed int64) {
	t.Helper()
	rg := pr.MetaData().RowGroup(i)
	for c := 0; c < rg.NumColumns(); c++ {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		uncompressed += cc.TotalUncompressedSize()
		compressed += cc.TotalCompressedSize()
	}
	return uncompressed, compressed
}

// readAll decodes every row of a Parquet file of dataset ds.
func readAll(t *testing.T, pr *file.Reader, ds *schemas.Dataset) []schemas.Record {
	t.Helper()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1000}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	var out []schemas.Record
	for tr.Next() {
		if err := schemas.ReadRows(ds, tr.Record(), func(r schemas.Record) error { out = append(out, r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRowGroupsBoundedByBytes writes one file under a small byte budget:
// it must hold several row groups, none larger than the budget either
// uncompressed or on disk, and a reader must get every record back intact
// and in order.
func TestRowGroupsBoundedByBytes(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		const n, budget = 5000, 256 << 10
		files := writeOneCommit(t, fsys, WriterOptions{RowGroupBytes: budget}, n)
		if len(files) != 1 {
			t.Fatalf("%d files, want 1 (one dataset, one hour)", len(files))
		}
		pr := openParquet(t, fsys, files[0].Final)
		// 5000 sshd records take about 1.6 MB PLAIN-encoded: with a
		// 256 KiB budget that is at least 6 row groups.
		if got := pr.NumRowGroups(); got < 6 {
			t.Fatalf("%d row groups, want >= 6 under a %d-byte budget", got, budget)
		}
		var rows int64
		for i := 0; i < pr.NumRowGroups(); i++ {
			rg := pr.MetaData().RowGroup(i)
			uncompressed, compressed := rowGroupSize(t, pr, i)
			if uncompressed > budget || compressed > budget {
				t.Errorf("row group %d: %d bytes uncompressed, %d on disk, budget %d", i, uncompressed, compressed, budget)
			}
			// Cut by bytes, not starved: each but the last is over half full.
			if i < pr.NumRowGroups()-1 && rg.NumRows() < 100 {
				t.Errorf("row group %d has only %d rows", i, rg.NumRows())
			}
			rows += rg.NumRows()
		}
		if rows != n {
			t.Fatalf("row groups hold %d rows, want %d", rows, n)
		}
		ds, _ := schemas.Lookup("auth")
		got := readAll(t, pr, ds)
		if len(got) != n {
			t.Fatalf("read %d records, want %d", len(got), n)
		}
		p, _ := parse.New("sshd", parse.Options{})
		for i, r := range got {
			want := parsedAuth(t, p, i).(*schemas.Auth)
			a := r.(*schemas.Auth)
			if a.Base.KafkaOffset != int64(i) || a.User != want.User || a.SourceIP != want.SourceIP || a.SourcePort != want.SourcePort ||
				a.Base.EventOriginal != want.Base.EventOriginal || !a.Base.Timestamp.Equal(want.Base.Timestamp) || !a.Base.IngestTime.Equal(want.Base.IngestTime) {
				t.Fatalf("row %d = %+v, want %+v", i, a, want)
			}
		}
	})
}

// TestRowGroupsCappedByRows: the row cap still applies under a byte
// budget that is never reached, and row groups fill up to it exactly.
func TestRowGroupsCappedByRows(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	files := writeOneCommit(t, fsys, WriterOptions{RowGroupRows: 20_000}, 50_000)
	pr := openParquet(t, fsys, files[0].Final)
	var got []int64
	for i := 0; i < pr.NumRowGroups(); i++ {
		got = append(got, pr.MetaData().RowGroup(i).NumRows())
	}
	if fmt.Sprint(got) != "[20000 20000 10000]" {
		t.Fatalf("row groups of %v rows, want [20000 20000 10000]", got)
	}
}

// TestRowSizeBoundsParquet checks the estimate row groups are cut by
// against what Parquet writes: over a default-sized file of the
// benchmark's records, the row group's uncompressed size must not exceed
// the sum of the rows' RowSize.
func TestRowSizeBoundsParquet(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	const n = 30_000
	files := writeOneCommit(t, fsys, WriterOptions{}, n)
	pr := openParquet(t, fsys, files[0].Final)
	ds, _ := schemas.Lookup("auth")
	b := schemas.NewBatchBuilder(ds, nil)
	defer b.Release()
	p, _ := parse.New("sshd", parse.Options{})
	var est int64
	for i := 0; i < n; i++ {
		est += b.RowSize(parsedAuth(t, p, i))
	}
	if pr.NumRowGroups() != 1 {
		t.Fatalf("%d row groups, want 1 under the default budget", pr.NumRowGroups())
	}
	uncompressed, compressed := rowGroupSize(t, pr, 0)
	if uncompressed > est || uncompressed <= 0 {
		t.Fatalf("row group is %d bytes uncompressed, estimate %d", uncompressed, est)
	}
	t.Logf("RowSize estimate %d bytes, Parquet uncompressed %d, on disk %d", est, uncompressed, compressed)
}
