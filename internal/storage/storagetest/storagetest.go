// Package storagetest is the conformance suite every storage backend must
// pass: the guarantees the exactly-once consumer and the batch readers rely
// on, written once and run against each backend.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// Run runs the suite. newFS returns an empty FS for one subtest; it is
// called once per subtest and must arrange its own cleanup.
func Run(t *testing.T, newFS func(t *testing.T) storage.FS) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.FS)
	}{
		{"CreateIfAbsent", testCreateIfAbsent},
		{"CreateNeedsParent", testCreateNeedsParent},
		{"EmptyFile", testEmptyFile},
		{"ClosedFile", testClosedFile},
		{"RenameNoOverwrite", testRenameNoOverwrite},
		{"RenameMissingSource", testRenameMissingSource},
		{"RenameDirectory", testRenameDirectory},
		{"StatAndReadDir", testStatAndReadDir},
		{"ReadAtRandomOffsets", testReadAt},
		{"Remove", testRemove},
		{"MkdirAllIdempotent", testMkdirAll},
		{"AbortLeavesNothing", testAbort},
		{"InvalidNames", testInvalidNames},
		{"CancelledContext", testCancelled},
		{"ConcurrentCreators", testConcurrentCreators},
		{"ParquetRoundTrip", testParquet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newFS(t)) })
	}
}

// WriteFile creates name with data and closes it, failing the test on error.
func WriteFile(t testing.TB, fsys storage.FS, name string, data []byte) {
	t.Helper()
	f, err := fsys.Create(context.Background(), name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

// ReadFile reads the whole of name through Open and Read.
func ReadFile(t testing.TB, fsys storage.FS, name string) []byte {
	t.Helper()
	r, err := fsys.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if int64(len(b)) != r.Size() {
		t.Fatalf("read %s: %d bytes, Size() = %d", name, len(b), r.Size())
	}
	return b
}

// RandomBytes returns n deterministic pseudo-random bytes.
func RandomBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func mustMkdir(t *testing.T, fsys storage.FS, name string) {
	t.Helper()
	if err := fsys.MkdirAll(context.Background(), name); err != nil {
		t.Fatalf("mkdirall %s: %v", name, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one matching %v", what, err, target)
	}
	if storage.IsRetryable(err) {
		t.Fatalf("%s: %v is marked retryable; a definite answer must not be", what, err)
	}
}

func wantContent(t *testing.T, fsys storage.FS, name string, want []byte) {
	t.Helper()
	if got := ReadFile(t, fsys, name); !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes %.40q, want %d bytes %.40q", name, len(got), got, len(want), want)
	}
}

func testCreateIfAbsent(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "d")
	WriteFile(t, fsys, "d/a", []byte("first"))
	_, err := fsys.Create(ctx, "d/a")
	wantErr(t, "second create of d/a", err, fs.ErrExist)
	wantContent(t, fsys, "d/a", []byte("first"))
	// A directory is taken too.
	_, err = fsys.Create(ctx, "d")
	wantErr(t, "create over a directory", err, fs.ErrExist)
}

func testCreateNeedsParent(t *testing.T, fsys storage.FS) {
	_, err := fsys.Create(context.Background(), "missing/a")
	wantErr(t, "create under a missing directory", err, fs.ErrNotExist)
}

func testEmptyFile(t *testing.T, fsys storage.FS) {
	f, err := fsys.Create(context.Background(), "empty")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close empty file: %v", err)
	}
	e, err := fsys.Stat(context.Background(), "empty")
	if err != nil || e.Size != 0 || e.IsDir || e.Name != "empty" {
		t.Fatalf("Stat(empty) = %+v, %v; want a 0-byte file named empty", e, err)
	}
	wantContent(t, fsys, "empty", nil)
}

func testClosedFile(t *testing.T, fsys storage.FS) {
	f, err := fsys.Create(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "c" {
		t.Fatalf("Name() = %q", f.Name())
	}
	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("more")); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Write after Close: %v, want fs.ErrClosed", err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Close: %v, want fs.ErrClosed", err)
	}
	if err := f.Abort(); err != nil {
		t.Fatalf("Abort after Close: %v, want nil (no-op)", err)
	}
	wantContent(t, fsys, "c", []byte("abc"))
}

func testRenameNoOverwrite(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "tmp")
	mustMkdir(t, fsys, "data/p0")
	WriteFile(t, fsys, "tmp/x", []byte("new"))
	WriteFile(t, fsys, "data/p0/000", []byte("committed"))

	err := fsys.Rename(ctx, "tmp/x", "data/p0/000")
	wantErr(t, "rename onto an existing file", err, fs.ErrExist)
	wantContent(t, fsys, "data/p0/000", []byte("committed"))
	wantContent(t, fsys, "tmp/x", []byte("new"))

	if err := fsys.Rename(ctx, "tmp/x", "data/p0/001"); err != nil {
		t.Fatalf("rename to a free name: %v", err)
	}
	wantContent(t, fsys, "data/p0/001", []byte("new"))
	_, err = fsys.Stat(ctx, "tmp/x")
	wantErr(t, "stat of the renamed source", err, fs.ErrNotExist)

	// Onto an existing directory is refused as well.
	WriteFile(t, fsys, "tmp/y", []byte("y"))
	wantErr(t, "rename onto a directory", fsys.Rename(ctx, "tmp/y", "data"), fs.ErrExist)
}

func testRenameMissingSource(t *testing.T, fsys storage.FS) {
	err := fsys.Rename(context.Background(), "nope", "other")
	wantErr(t, "rename of a missing source", err, fs.ErrNotExist)
	_, err = fsys.Stat(context.Background(), "other")
	wantErr(t, "stat of the rename target", err, fs.ErrNotExist)
}

func testRenameDirectory(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "staging/batch")
	WriteFile(t, fsys, "staging/batch/f", []byte("rows"))
	if err := fsys.Rename(ctx, "staging/batch", "batch"); err != nil {
		t.Fatalf("rename a directory: %v", err)
	}
	wantContent(t, fsys, "batch/f", []byte("rows"))
	mustMkdir(t, fsys, "staging/batch2")
	wantErr(t, "rename a directory onto another", fsys.Rename(ctx, "staging/batch2", "batch"), fs.ErrExist)
}

func testStatAndReadDir(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "ds/sub")
	WriteFile(t, fsys, "ds/b.parquet", []byte("bb"))
	WriteFile(t, fsys, "ds/a.parquet", []byte("a"))
	WriteFile(t, fsys, "ds/c", make([]byte, 1000))

	es, err := fsys.ReadDir(ctx, "ds")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name string
		size int64
		dir  bool
	}
	var got []row
	for _, e := range es {
		got = append(got, row{e.Name, e.Size, e.IsDir})
		if e.ModTime.IsZero() {
			t.Errorf("%s: zero ModTime", e.Name)
		}
	}
	want := []row{{"a.parquet", 1, false}, {"b.parquet", 2, false}, {"c", 1000, false}, {"sub", 0, true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ReadDir(ds) = %v, want %v", got, want)
	}

	e, err := fsys.Stat(ctx, "ds/c")
	if err != nil || e.Name != "c" || e.Size != 1000 || e.IsDir {
		t.Fatalf("Stat(ds/c) = %+v, %v", e, err)
	}
	e, err = fsys.Stat(ctx, "ds/sub")
	if err != nil || e.Name != "sub" || !e.IsDir {
		t.Fatalf("Stat(ds/sub) = %+v, %v", e, err)
	}
	e, err = fsys.Stat(ctx, ".")
	if err != nil || !e.IsDir {
		t.Fatalf("Stat(.) = %+v, %v; want the root directory", e, err)
	}
	root, err := fsys.ReadDir(ctx, ".")
	if err != nil || len(root) != 1 || root[0].Name != "ds" || !root[0].IsDir {
		t.Fatalf("ReadDir(.) = %+v, %v; want [ds]", root, err)
	}
	empty, err := fsys.ReadDir(ctx, "ds/sub")
	if err != nil || len(empty) != 0 {
		t.Fatalf("ReadDir(empty dir) = %+v, %v", empty, err)
	}
	_, err = fsys.Stat(ctx, "ds/none")
	wantErr(t, "stat of a missing file", err, fs.ErrNotExist)
	_, err = fsys.ReadDir(ctx, "none")
	wantErr(t, "readdir of a missing directory", err, fs.ErrNotExist)
	_, err = fsys.Open(ctx, "ds/none")
	wantErr(t, "open of a missing file", err, fs.ErrNotExist)
	if r, err := fsys.Open(ctx, "ds/sub"); err == nil {
		r.Close()
		t.Fatal("Open of a directory succeeded")
	}
}

func testReadAt(t *testing.T, fsys storage.FS) {
	const size = 3<<20 + 12345 // several HDFS blocks in the HDFS suite
	data := RandomBytes(7, size)
	WriteFile(t, fsys, "big", data)

	r, err := fsys.Open(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != size {
		t.Fatalf("Size() = %d, want %d", r.Size(), size)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		off := rng.Int64N(size)
		n := 1 + rng.IntN(200_000)
		buf := make([]byte, n)
		got, err := r.ReadAt(buf, off)
		wantN := min(int64(n), size-off)
		if int64(got) != wantN || (wantN == int64(n) && err != nil) || (wantN < int64(n) && err != io.EOF) {
			t.Fatalf("read %d: ReadAt(%d bytes, %d) = %d, %v; want %d", i, n, off, got, err, wantN)
		}
		if !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
			t.Fatalf("read %d: ReadAt(%d bytes, %d) returned wrong bytes", i, n, off)
		}
	}
	// Concurrent ReadAt calls (Parquet readers may issue them).
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			off := int64(g) * 700_000
			if _, err := r.ReadAt(buf, off); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
				errs <- fmt.Errorf("goroutine %d read wrong bytes", g)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := r.ReadAt(make([]byte, 10), size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
	// The whole file through Read.
	wantContent(t, fsys, "big", data)
}

func testRemove(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "r/deep/er")
	WriteFile(t, fsys, "r/f", []byte("x"))
	WriteFile(t, fsys, "r/deep/er/g", []byte("y"))

	if err := fsys.Remove(ctx, "r/f"); err != nil {
		t.Fatalf("remove a file: %v", err)
	}
	_, err := fsys.Stat(ctx, "r/f")
	wantErr(t, "stat after remove", err, fs.ErrNotExist)
	wantErr(t, "remove of a missing file", fsys.Remove(ctx, "r/f"), fs.ErrNotExist)

	if err := fsys.Remove(ctx, "r/deep"); err == nil {
		t.Fatal("Remove of a non-empty directory succeeded")
	}
	wantContent(t, fsys, "r/deep/er/g", []byte("y"))

	if err := fsys.RemoveAll(ctx, "r/deep"); err != nil {
		t.Fatalf("removeall: %v", err)
	}
	_, err = fsys.Stat(ctx, "r/deep")
	wantErr(t, "stat after removeall", err, fs.ErrNotExist)
	if err := fsys.RemoveAll(ctx, "r/deep"); err != nil {
		t.Fatalf("removeall of a missing path: %v, want nil", err)
	}
	if err := fsys.Remove(ctx, "r"); err != nil {
		t.Fatalf("remove an empty directory: %v", err)
	}
	if err := fsys.Remove(ctx, "."); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("remove of the root: %v, want fs.ErrInvalid", err)
	}
}

func testMkdirAll(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	for range 2 {
		mustMkdir(t, fsys, "y=2024/m=05/d=01")
	}
	mustMkdir(t, fsys, "y=2024")
	mustMkdir(t, fsys, ".")
	e, err := fsys.Stat(ctx, "y=2024/m=05/d=01")
	if err != nil || !e.IsDir {
		t.Fatalf("Stat after MkdirAll = %+v, %v", e, err)
	}
	WriteFile(t, fsys, "y=2024/file", []byte("f"))
	wantErr(t, "mkdirall over a file", fsys.MkdirAll(ctx, "y=2024/file"), fs.ErrExist)
}

func testAbort(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	mustMkdir(t, fsys, "tmp")
	f, err := fsys.Create(ctx, "tmp/part")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(RandomBytes(3, 300_000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if err := f.Abort(); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Close after Abort: %v, want fs.ErrClosed", err)
	}
	_, err = fsys.Stat(ctx, "tmp/part")
	wantErr(t, "stat after abort", err, fs.ErrNotExist)
	if es, err := fsys.ReadDir(ctx, "tmp"); err != nil || len(es) != 0 {
		t.Fatalf("ReadDir(tmp) after abort = %+v, %v; want empty", es, err)
	}
	// The name is free again.
	WriteFile(t, fsys, "tmp/part", []byte("second try"))
	wantContent(t, fsys, "tmp/part", []byte("second try"))
}

func testInvalidNames(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	for _, name := range []string{"/abs", "../up", "a//b", "a/", "", "a/../b"} {
		_, err := fsys.Create(ctx, name)
		wantErr(t, fmt.Sprintf("create %q", name), err, fs.ErrInvalid)
		_, err = fsys.Stat(ctx, name)
		wantErr(t, fmt.Sprintf("stat %q", name), err, fs.ErrInvalid)
		wantErr(t, fmt.Sprintf("rename to %q", name), fsys.Rename(ctx, "x", name), fs.ErrInvalid)
	}
}

func testCancelled(t *testing.T, fsys storage.FS) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fsys.Stat(ctx, "."); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stat with a cancelled context: %v", err)
	}
	if _, err := fsys.Create(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context: %v", err)
	}
	if _, err := fsys.Stat(context.Background(), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a cancelled Create left x behind: %v", err)
	}
}

func testConcurrentCreators(t *testing.T, fsys storage.FS) {
	const n = 6
	mustMkdir(t, fsys, "commit")
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			f, err := fsys.Create(context.Background(), "commit/00042")
			if err != nil {
				results[i] = err
				return
			}
			if _, err := fmt.Fprintf(f, "writer %d", i); err != nil {
				results[i] = err
				f.Abort()
				return
			}
			results[i] = f.Close()
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v, want fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	wantContent(t, fsys, "commit/00042", fmt.Appendf(nil, "writer %d", winner))
}

// testParquet writes a Parquet file with pqarrow through a File and reads
// it back with the pqarrow reader through the Reader's io.ReaderAt.
func testParquet(t *testing.T, fsys storage.FS) {
	ctx := context.Background()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: arrow.PrimitiveTypes.Int64},
		{Name: "host", Type: arrow.BinaryTypes.String},
		{Name: "bytes", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, nil)
	const rows = 50_000
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	rng := rand.New(rand.NewPCG(3, 4))
	hosts := []string{"web-1", "web-2", "db-1"}
	var sumBytes int64
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(1_700_000_000_000 + int64(i))
		b.Field(1).(*array.StringBuilder).Append(hosts[i%3])
		if i%10 == 0 {
			b.Field(2).(*array.Int32Builder).AppendNull()
		} else {
			v := rng.Int32N(1 << 20)
			sumBytes += int64(v)
			b.Field(2).(*array.Int32Builder).Append(v)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()

	f, err := fsys.Create(ctx, "events.parquet")
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(12_000))
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // closes f too
		t.Fatalf("close parquet writer: %v", err)
	}

	r, err := fsys.Open(ctx, "events.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("parquet reader: %v", err)
	}
	defer pf.Close()
	if pf.NumRowGroups() != 5 || pf.NumRows() != rows {
		t.Fatalf("file has %d row groups, %d rows; want 5, %d", pf.NumRowGroups(), pf.NumRows(), rows)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: 4096}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	defer tbl.Release()
	if tbl.NumRows() != rows || tbl.Schema().NumFields() != schema.NumFields() {
		t.Fatalf("table %v with %d rows; want %v with %d", tbl.Schema(), tbl.NumRows(), schema, rows)
	}
	for i, want := range schema.Fields() {
		// The reader adds PARQUET:field_id metadata; names and types must match.
		got := tbl.Schema().Field(i)
		if got.Name != want.Name || !arrow.TypeEqual(got.Type, want.Type) || got.Nullable != want.Nullable {
			t.Fatalf("column %d = %v, want %v", i, got, want)
		}
	}
	var gotSum int64
	var nulls, web2 int
	for _, chunk := range tbl.Column(2).Data().Chunks() {
		c := chunk.(*array.Int32)
		for j := range c.Len() {
			if c.IsNull(j) {
				nulls++
			} else {
				gotSum += int64(c.Value(j))
			}
		}
	}
	for _, chunk := range tbl.Column(1).Data().Chunks() {
		c := chunk.(*array.String)
		for j := range c.Len() {
			if c.Value(j) == "web-2" {
				web2++
			}
		}
	}
	if gotSum != sumBytes || nulls != rows/10 || web2 != (rows+1)/3 {
		t.Fatalf("read back sum(bytes)=%d nulls=%d web-2=%d; want %d, %d, %d", gotSum, nulls, web2, sumBytes, rows/10, (rows+1)/3)
	}
	last := tbl.Column(0).Data().Chunk(len(tbl.Column(0).Data().Chunks()) - 1).(*array.Int64)
	if v := last.Value(last.Len() - 1); v != 1_700_000_000_000+rows-1 {
		t.Fatalf("last ts = %d", v)
	}
}
