package reports

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// generatedDay writes n generated events of one UTC day (the benchmark's
// generator, fewer hosts) and returns its source.
func generatedDay(t testing.TB, n int) (storage.FS, source.Source, time.Time, time.Time) {
	t.Helper()
	fsys := localFS(t)
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	if _, err := batchtest.WriteGenerated(context.Background(), fsys, batchtest.NewGen(1, 5000), n, day, end, [4]int{4, 3, 1, 3}, batchtest.WriteOptions{RowGroupRows: 1 << 14}); err != nil {
		t.Fatal(err)
	}
	return fsys, &source.Layout{FS: fsys, Datasets: ReportDatasets()}, day, end
}

// tableLines renders every row of every table, sorted, for an exact
// comparison that ignores only the row order.
func tableLines(o *Output) map[string][]string {
	out := map[string][]string{}
	for _, t := range o.Tables {
		lines := make([]string, 0, len(t.Rows))
		for _, r := range t.Rows {
			lines = append(lines, fmt.Sprint(r.Period.UnixMicro(), r.Keys, r.Values))
		}
		sort.Strings(lines)
		out[t.Name] = lines
	}
	return out
}

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestSpillEqualsInMemory(t *testing.T) {
	fsys, src, day, end := generatedDay(t, 60_000)
	ctx := context.Background()
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			want, err := Compute(ctx, src, fsys, day, end, Options{Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if want.SpillFiles != 0 {
				t.Fatalf("unbounded run spilled %d files", want.SpillFiles)
			}
			// A generous budget keeps the in-memory path.
			dir := t.TempDir()
			big, err := Compute(ctx, src, fsys, day, end, Options{Workers: workers, MemoryBudget: 1 << 30, SpillDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if big.SpillFiles != 0 {
				t.Errorf("1 GiB budget spilled %d files", big.SpillFiles)
			}
			got, err := Compute(ctx, src, fsys, day, end, Options{Workers: workers, MemoryBudget: 64 << 10, SpillDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if got.SpillFiles < 4*workers || got.SpillBytes == 0 {
				t.Errorf("64 KiB budget: %d spill files, %d bytes; want several per worker", got.SpillFiles, got.SpillBytes)
			}
			t.Logf("spilled %d files, %d bytes", got.SpillFiles, got.SpillBytes)
			if got.RowsRead != want.RowsRead {
				t.Errorf("rows read %d, want %d", got.RowsRead, want.RowsRead)
			}
			w, g := tableLines(want), tableLines(got)
			if len(w) != len(g) || len(w) != len(TableSchemas()) {
				t.Fatalf("%d tables, want %d", len(g), len(w))
			}
			rows := 0
			for name, wl := range w {
				gl := g[name]
				rows += len(wl)
				if len(gl) != len(wl) {
					t.Errorf("%s: %d rows, want %d", name, len(gl), len(wl))
					continue
				}
				for i := range wl {
					if gl[i] != wl[i] {
						t.Errorf("%s row %d: %s, want %s", name, i, gl[i], wl[i])
						break
					}
				}
				if len(wl) == 0 {
					t.Errorf("%s: no rows; the comparison proves nothing", name)
				}
			}
			// The ranked tables keep their order (ranks and ties).
			for _, name := range []string{"report_auth_top_sources", "report_firewall_top_ports", "report_web_top_clients", "report_web_top_paths", "report_security_summary"} {
				wt, _ := want.Table(name)
				gt, _ := got.Table(name)
				if fmt.Sprint(wt.Rows) != fmt.Sprint(gt.Rows) {
					t.Errorf("%s: ranking differs", name)
				}
			}
			t.Logf("%d rows compared", rows)
			// The streaming run hands over the same tables, row for row,
			// ranks included, in memory and spilled.
			for _, budget := range []int64{0, 64 << 10} {
				c := &collectSink{}
				st, err := ComputeTo(ctx, src, fsys, day, end, Options{Workers: workers, MemoryBudget: budget, SpillDir: dir}, c)
				if err != nil {
					t.Fatal(err)
				}
				if (st.SpillFiles > 0) != (budget > 0) || st.RowsRead != want.RowsRead {
					t.Errorf("ComputeTo budget %d: %d spill files, %d rows read (want %d)", budget, st.SpillFiles, st.RowsRead, want.RowsRead)
				}
				// The summary's join stays within its share by spilling;
				// unbounded it is far over that share.
				if lim := summaryLimit(64 << 10); budget > 0 && (st.SummarySpillBytes == 0 || st.SummaryPeakBytes > lim) ||
					budget == 0 && st.SummaryPeakBytes <= 4*lim {
					t.Errorf("ComputeTo budget %d: summary spilled %d bytes, its map peaked at %d B (share %d B)", budget, st.SummarySpillBytes, st.SummaryPeakBytes, lim)
				}
				s := c.output()
				if st.RowsOut != int64(c.rows) {
					t.Errorf("ComputeTo budget %d: RowsOut %d, sink got %d", budget, st.RowsOut, c.rows)
				}
				if c.most > emitRows || (budget > 0 && c.calls < 4*len(s.Tables)) {
					t.Errorf("ComputeTo budget %d: %d sink calls for %d tables, the largest %d rows; the rows did not stream", budget, c.calls, len(s.Tables), c.most)
				}
				sl := tableLines(s)
				for name, wl := range w {
					if fmt.Sprint(sl[name]) != fmt.Sprint(wl) {
						t.Errorf("ComputeTo budget %d: table %s differs (%d rows, want %d)", budget, name, len(sl[name]), len(wl))
					}
				}
				for _, name := range []string{"report_auth_top_sources", "report_firewall_top_ports", "report_web_top_clients", "report_web_top_paths", "report_security_summary"} {
					wt, _ := want.Table(name)
					st, _ := s.Table(name)
					if fmt.Sprint(wt.Rows) != fmt.Sprint(st.Rows) {
						t.Errorf("ComputeTo budget %d: %s: ranking differs", budget, name)
					}
				}
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Errorf("spill dir holds %v after success", l)
			}
		})
	}
}

// TestSpillCleanupOnCancel cancels the run after its first spill file and
// after the scan, and checks nothing is left.
func TestSpillCleanupOnCancel(t *testing.T) {
	fsys, src, day, end := generatedDay(t, 30_000)
	// How many spills a whole run makes: the last ones are the merge's
	// (the workers' remaining state), so cancelling at the last one
	// cancels the merge.
	var total atomic.Int32
	testHookSpilled = func() { total.Add(1) }
	_, err := Compute(context.Background(), src, fsys, day, end, Options{Workers: 2, MemoryBudget: 32 << 10, SpillDir: t.TempDir()})
	testHookSpilled = nil
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int32{1, 6, total.Load()} {
		t.Run(fmt.Sprintf("after-spill-%d-of-%d", at, total.Load()), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var n atomic.Int32
			sawFile := false
			testHookSpilled = func() {
				if n.Add(1) == at {
					if d, _ := spillDirs(dir); len(d) == 1 {
						sawFile = len(leftovers(t, d[0])) > 0
					}
					cancel()
				}
			}
			defer func() { testHookSpilled = nil }()
			_, err := Compute(ctx, src, fsys, day, end, Options{Workers: 2, MemoryBudget: 32 << 10, SpillDir: dir})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if !sawFile {
				t.Fatal("no spill file existed when the run was cancelled; the test proves nothing")
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Errorf("spill dir holds %v after cancellation", l)
			}
		})
	}
}

// TestSpillBadDir fails with the directory named, not with a panic.
func TestSpillBadDir(t *testing.T) {
	fsys, src, day, end := generatedDay(t, 5_000)
	_, err := Compute(context.Background(), src, fsys, day, end, Options{Workers: 1, MemoryBudget: 1 << 10, SpillDir: "/nonexistent/spill"})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a missing-directory error", err)
	}
}

// liveHeap collects and returns the heap marked live by that collection
// (allocations racing with it excluded, unlike HeapAlloc).
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakHeap runs fn while sampling the live heap every few milliseconds and
// returns the peak above the live heap before it, and what is still live
// above it after fn (its result).
func peakHeap(fn func()) (peak, retained uint64) {
	base := liveHeap()
	var most atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if l := liveHeap(); l > most.Load() {
				most.Store(l)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	sub := func(a uint64) uint64 {
		if a > base {
			return a - base
		}
		return 0
	}
	return sub(most.Load()), sub(liveHeap())
}

// TestSpillPeakHeap: with a small budget the run's peak live heap stays
// within what it cannot spill (the scan's Arrow buffers, measured with a
// query of one tiny group, and its result rows, which the job inserts into
// ClickHouse afterwards, twice while they are assembled) plus the budget,
// while the unbounded run's
// aggregation state takes it far over that.
func TestSpillPeakHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 1,000,000 events")
	}
	fsys, src, day, end := generatedDay(t, 1_000_000)
	ctx := context.Background()
	files, err := src.Files(ctx, "firewall", day, end)
	if err != nil {
		t.Fatal(err)
	}
	run := func(qs []Query, budget int64) (peak, retained uint64, st Stats) {
		var res []Result
		peak, retained = peakHeap(func() {
			var err error
			res, st, err = Run(ctx, fsys, files, day, end, qs, Options{Workers: 2, MemoryBudget: budget, SpillDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
		})
		runtime.KeepAlive(res)
		return peak, retained, st
	}
	// The scan's buffers: a query of one tiny group, the most of 3 runs
	// (the sampling can miss a short peak).
	var scan uint64
	for range 3 {
		p, _, _ := run([]Query{{Name: "by_action", Dataset: "firewall", Keys: []string{"event_action"}, Measures: []Measure{{Name: "n", Kind: CountRows}}}}, 0)
		scan = max(scan, p)
	}
	// The firewall queries: their state (ip x port x hour groups, distinct
	// ports and sources) is several times their result rows.
	fw := DatasetQueries("firewall")
	unbounded, results, _ := run(fw, 0)
	const budget = 4 << 20
	bounded, _, st := run(fw, budget)
	// Twice the results: the rows are assembled from the buckets' rows;
	// 8 MiB for the spill writers, the merging buckets and sampling noise.
	bound := scan + 2*results + budget + 8<<20
	t.Logf("peak live heap: scan alone %d MiB, results %d MiB; unbounded %d MiB, 4 MiB budget %d MiB (%d spill files, %d KiB); bound %d MiB",
		scan>>20, results>>20, unbounded>>20, bounded>>20, st.SpillFiles, st.SpillBytes>>10, bound>>20)
	if st.SpillFiles == 0 {
		t.Fatal("4 MiB budget did not spill")
	}
	if bounded > bound {
		t.Errorf("peak live heap with a 4 MiB budget %d MiB, want at most %d MiB", bounded>>20, bound>>20)
	}
	if unbounded <= bound+8<<20 {
		t.Errorf("unbounded peak live heap %d MiB is not well over the bound %d MiB: the test proves nothing", unbounded>>20, bound>>20)
	}
}

// spillDirs lists the spill directories under parent.
func spillDirs(parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	return filepath.Glob(filepath.Join(parent, "lambdalog-spill-*"))
}

// collectSink gathers a streaming run's rows into tables.
type collectSink struct {
	tables      map[string]*Table
	calls, rows int
	most        int // rows in the largest call
}

func (c *collectSink) Rows(_ context.Context, t *Table, rows []Row) error {
	if c.tables == nil {
		c.tables = map[string]*Table{}
	}
	tb := c.tables[t.Name]
	if tb == nil {
		tb = &Table{Name: t.Name, Keys: t.Keys, Values: t.Values}
		c.tables[t.Name] = tb
	}
	if len(t.Rows) != 0 {
		return fmt.Errorf("table %s handed over with rows", t.Name)
	}
	tb.Rows = append(tb.Rows, rows...)
	c.calls++
	c.rows += len(rows)
	c.most = max(c.most, len(rows))
	return nil
}

// output returns the tables in TableSchemas order, checking the columns.
func (c *collectSink) output() *Output {
	o := &Output{}
	for _, s := range TableSchemas() {
		tb := c.tables[s.Name]
		if tb == nil {
			tb = &s
		}
		if fmt.Sprint(tb.Keys, tb.Values) != fmt.Sprint(s.Keys, s.Values) {
			panic("columns of " + s.Name + " differ from TableSchemas")
		}
		o.Tables = append(o.Tables, *tb)
	}
	return o
}

// blockSink keeps the rows it is handed until it holds block of them, then
// drops them, as chload.ReportWriter does when it inserts a flush block.
type blockSink struct {
	block, held int
	rows        [][]Row
	total       int64
}

func (s *blockSink) Rows(_ context.Context, _ *Table, rows []Row) error {
	s.rows = append(s.rows, rows)
	s.held += len(rows)
	s.total += int64(len(rows))
	if s.held >= s.block {
		clear(s.rows)
		s.rows, s.held = s.rows[:0], 0
	}
	return nil
}

// TestStreamPeakHeap: a streaming run (ComputeTo) with a small budget
// keeps its peak live heap within the scan's buffers, the budget and one
// flush block of rows, while Compute with the same budget, which returns
// every row, goes well over that.
func TestStreamPeakHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 1,000,000 events")
	}
	fsys, src, day, end := generatedDay(t, 1_000_000)
	ctx := context.Background()
	const budget = 4 << 20
	opts := func() Options { return Options{Workers: 2, MemoryBudget: budget, SpillDir: t.TempDir()} }
	// The scan's buffers: a query of one tiny group over each dataset, the
	// most of 3 runs (the sampling can miss a short peak).
	var scan uint64
	for _, ds := range ReportDatasets() {
		files, err := src.Files(ctx, ds, day, end)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			p, _ := peakHeap(func() {
				if _, _, err := Run(ctx, fsys, files, day, end, []Query{{Name: "n", Dataset: ds, Measures: []Measure{{Name: "n", Kind: CountRows}}}}, opts()); err != nil {
					t.Fatal(err)
				}
			})
			scan = max(scan, p)
		}
	}
	var out *Output
	returned, retained := peakHeap(func() {
		var err error
		if out, err = Compute(ctx, src, fsys, day, end, opts()); err != nil {
			t.Fatal(err)
		}
	})
	var rows int
	for _, tb := range out.Tables {
		rows += len(tb.Rows)
	}
	runtime.KeepAlive(out)
	out = nil
	const block = 1 << 16
	var st ComputeStats
	sink := &blockSink{block: block}
	streamed, _ := peakHeap(func() {
		var err error
		if st, err = ComputeTo(ctx, src, fsys, day, end, opts(), sink); err != nil {
			t.Fatal(err)
		}
	})
	// A flush block of rows at 256 bytes each (about 160 on this
	// traffic, plus the call that completes the block), 8 MiB for the
	// spill writers, the merging buckets, the ranked tables' candidates
	// and sampling noise.
	bound := scan + budget + block*256 + 8<<20
	t.Logf("peak live heap: scan alone %d MiB; Compute %d MiB (%d rows, %d MiB retained); ComputeTo %d MiB (%d spill files); bound %d MiB",
		scan>>20, returned>>20, rows, retained>>20, streamed>>20, st.SpillFiles, bound>>20)
	if st.SpillFiles == 0 {
		t.Fatal("4 MiB budget did not spill")
	}
	if st.RowsOut != int64(rows) || sink.total != int64(rows) {
		t.Fatalf("ComputeTo handed over %d rows (sink saw %d), Compute returned %d", st.RowsOut, sink.total, rows)
	}
	if streamed > bound {
		t.Errorf("ComputeTo's peak live heap %d MiB, want at most %d MiB", streamed>>20, bound>>20)
	}
	if returned <= bound+8<<20 {
		t.Errorf("Compute's peak live heap %d MiB is not well over the bound %d MiB: the test proves nothing", returned>>20, bound>>20)
	}
}
