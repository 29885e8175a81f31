package source

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

func TestRecyclerReusesOnlyAfterTheFile(t *testing.T) {
	r := newRecycler(1 << 20)
	a := r.Allocate(100 << 10)
	for i := range a {
		a[i] = 0xff
	}
	r.Free(a)
	// Arrow may still read a buffer it freed while the file is open.
	if b := r.Allocate(100 << 10); &b[0] == &a[0] {
		t.Fatal("a buffer freed during the file was handed out again before endFile")
	}
	r.endFile()
	b := r.Allocate(90 << 10)
	if &b[0] != &a[0] || r.reused != 1 {
		t.Fatalf("after endFile the freed buffer was not reused (reused %d)", r.reused)
	}
	if len(b) != 90<<10 || slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		t.Fatal("a reused buffer is not zeroed to the requested length")
	}
	// Too small for the request: allocate anew.
	r.Free(b)
	r.endFile()
	if c := r.Allocate(200 << 10); &c[0] == &b[0] || len(c) != 200<<10 {
		t.Fatal("a buffer smaller than the request was handed out")
	}
	// Small buffers are the Go allocator's business.
	small := r.Allocate(100)
	r.Free(small)
	r.endFile()
	if len(r.pending) != 0 || r.held != cap(b) {
		t.Fatalf("held %d bytes, want only the 90 KiB buffer's %d", r.held, cap(b))
	}
}

func TestRecyclerBoundsWhatItKeeps(t *testing.T) {
	r := newRecycler(300 << 10)
	for range 10 {
		r.Free(make([]byte, 100<<10))
	}
	r.endFile()
	if r.held > 300<<10 || r.held < 200<<10 {
		t.Fatalf("holds %d bytes with a limit of %d", r.held, 300<<10)
	}
}

func TestRecyclerReallocateKeepsContents(t *testing.T) {
	r := newRecycler(1 << 20)
	a := r.Allocate(40 << 10)
	for i := range a {
		a[i] = byte(i)
	}
	grown := r.Reallocate(80<<10, a)
	for i := range 40 << 10 {
		if grown[i] != byte(i) {
			t.Fatalf("byte %d changed by Reallocate", i)
		}
	}
	if slices.ContainsFunc(grown[40<<10:], func(c byte) bool { return c != 0 }) {
		t.Fatal("the grown part is not zeroed")
	}
	// Shrinking then growing within the capacity zeroes what returns.
	s := r.Reallocate(10, grown)
	s = r.Reallocate(40<<10, s)
	if slices.ContainsFunc(s[10:], func(c byte) bool { return c != 0 }) {
		t.Fatal("regrowing within the capacity exposed old bytes")
	}
}

// TestScanRecycleSameRows scans many files of several row groups and
// batches with and without Recycle: every row must read the same, and the
// workers must really have reused buffers.
func TestScanRecycleSameRows(t *testing.T) {
	ctx := context.Background()
	fsys, err := storage.Open(ctx, "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(4 * time.Hour)
	recs := batchtest.NewGen(11, 300).Events(200_000, from, to, [4]int{4, 3, 1, 3})
	if _, err := batchtest.WriteLayout(ctx, fsys, recs, batchtest.WriteOptions{RowGroupRows: 10_000, FilesPerHour: 2}); err != nil {
		t.Fatal(err)
	}
	ds, _ := schemas.Lookup(schemas.DatasetAuth)
	var cols, dict []string
	for _, f := range ds.Fields() {
		cols = append(cols, f.Name)
		if f.LowCardinality {
			dict = append(dict, f.Name)
		}
	}
	files, err := (&Layout{FS: fsys, Datasets: []string{schemas.DatasetAuth}}).Files(ctx, schemas.DatasetAuth, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("%d files, want several per worker", len(files))
	}
	scan := func(recycle bool) ([]string, int) {
		var (
			mu     sync.Mutex
			rows   []string
			reused int
		)
		o := ScanOptions{Columns: cols, Dict: dict, From: from, To: to, Workers: 2, BatchRows: 8192, Recycle: recycle,
			onRecycler: func(r *recycler) { mu.Lock(); reused += r.reused; mu.Unlock() }}
		_, err := Scan(ctx, fsys, files, o, func(_ int, c *Chunk) error {
			var out []string
			for i := range c.Rows {
				var sb strings.Builder
				for _, a := range c.Cols {
					if a == nil {
						sb.WriteString("<nil>|")
						continue
					}
					fmt.Fprintf(&sb, "%s|", a.ValueStr(i))
				}
				out = append(out, sb.String())
			}
			mu.Lock()
			rows = append(rows, out...)
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(rows)
		return rows, reused
	}
	want, _ := scan(false)
	got, reused := scan(true)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("recycling scan read %d rows, plain scan %d, or their values differ", len(got), len(want))
	}
	if reused == 0 {
		t.Fatal("the recycling scan reused no buffer")
	}
	t.Logf("%d rows, %d buffers reused", len(got), reused)
}
