package reports

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
)

// summaryInputRows returns rows of summaryQueries[qi] for the sources ips.
func summaryInputRows(qi int, ips []string, val func(i int) int64) []Row {
	rows := make([]Row, len(ips))
	for i, ip := range ips {
		v := val(i)
		rows[i] = Row{Keys: []string{ip}, Values: []int64{v, v % 3, v % 2, v % 5}}
	}
	return rows
}

// TestSummaryEntryEstimate: bytesPerSummaryEntry is at least the live heap
// an entry of the summary's map takes, IP text included, for IPv4 and
// IPv6 sources, at a map just grown (120,000: past 7/8 of 2^17 slots)
// and a fuller one.
func TestSummaryEntryEstimate(t *testing.T) {
	for _, c := range []struct {
		n  int
		v6 bool
	}{{120_000, false}, {200_000, false}, {120_000, true}, {200_000, true}} {
		n, v6 := c.n, c.v6
		base := liveHeap()
		ips := make([]string, n)
		for i := range ips {
			if v6 {
				ips[i] = fmt.Sprintf("2001:db8:ffff:ffff:%x:%x:%x:%x", i>>16, i&0xffff, i%7, i%13)
			} else {
				ips[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			}
		}
		rows := summaryInputRows(0, ips, func(i int) int64 { return int64(i) })
		ips = nil
		a := newSummaryAcc()
		if err := a.add("auth_ip_day", rows); err != nil {
			t.Fatal(err)
		}
		rows = nil // the IPs stay live through the map alone
		per := float64(liveHeap()-base) / float64(n)
		runtime.KeepAlive(a)
		t.Logf("%d sources, v6=%v: %.0f B per entry, estimate %d", n, v6, per, bytesPerSummaryEntry)
		if per > bytesPerSummaryEntry {
			t.Errorf("%d sources, v6=%v: an entry takes %.0f B of live heap, above the estimate %d", n, v6, per, bytesPerSummaryEntry)
		}
	}
}

// summaryDay is a day of summary inputs: n sources with activity spread
// over the four datasets (some in one, most in several, some with risk
// 0), the empty IP with a high risk (left out), and tieN sources of equal
// risk across ranks 11 to 10+tieN, so the TopN cut falls inside the tie and
// only the IP order decides who is in.
func summaryDay(n, tieN int) [][]Row {
	in := make([][]Row, len(summaryQueries))
	ip := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255) }
	for i := range n {
		for qi := range summaryQueries {
			if (i+qi)%3 == 0 {
				continue // not in this dataset
			}
			v := int64((i * (qi + 7)) % 50)
			in[qi] = append(in[qi], Row{Keys: []string{ip(i)}, Values: []int64{v, v % 3, v % 2, v % 4}})
		}
	}
	// Risk 0 in every dataset it appears in.
	in[3] = append(in[3], Row{Keys: []string{"192.0.2.1"}, Values: []int64{9, 0, 0, 0}})
	in[0] = append(in[0], Row{Keys: []string{""}, Values: []int64{1e6, 0, 0, 0}})
	// Ten leaders, then the tie: 600 from auth failures plus 400 from
	// blocked packets, each half from another dataset, IPs in scrambled
	// order.
	for i := range 10 {
		in[2] = append(in[2], Row{Keys: []string{fmt.Sprintf("198.51.100.%d", i)}, Values: []int64{1000, 100 + int64(i), 0, 1}})
	}
	for i := range tieN {
		a := fmt.Sprintf("203.0.113.%d", (i*37)%tieN)
		in[0] = append(in[0], Row{Keys: []string{a}, Values: []int64{600, 0, 0, 0}})
		in[1] = append(in[1], Row{Keys: []string{a}, Values: []int64{400, 0}})
	}
	return in
}

// TestSummarySpillEqualsInMemory: the summary's join spilled under a tiny
// limit returns exactly the in-memory TopN, ties at the cut included,
// while its map never exceeds the limit; the unbounded map goes far over
// it, so the spill is what bounds it.
func TestSummarySpillEqualsInMemory(t *testing.T) {
	in := summaryDay(20_000, 30)
	mem := newSummaryAcc()
	for qi, q := range summaryQueries {
		if err := mem.add(q, in[qi]); err != nil {
			t.Fatal(err)
		}
	}
	want := mem.rows()[:TopN]
	var tied int
	for _, r := range want {
		if r.Risk == 1000 {
			tied++
		}
	}
	if tied != TopN-10 || want[TopN-1].Risk != 1000 || mem.rows()[TopN].Risk != 1000 {
		t.Fatalf("the TopN cut does not fall inside the tie (%d tied rows in the top): the test proves nothing", tied)
	}
	dir := t.TempDir()
	limit := summaryLimit(1 << 10) // the floor: 64 entries
	sp := newSummaryAcc()
	sp.limit, sp.sp = limit, &spiller{parent: dir}
	defer sp.close()
	for qi, q := range summaryQueries {
		// In calls of various sizes, as the scans hand them over.
		rows := in[qi]
		for len(rows) > 0 {
			k := min(len(rows), 1+len(rows)%977)
			if err := sp.add(q, rows[:k]); err != nil {
				t.Fatal(err)
			}
			rows = rows[k:]
		}
	}
	got, err := sp.top(context.Background(), TopN)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.files) < 100 || sp.bytes == 0 {
		t.Errorf("%d spill files, %d bytes: want one per %d sources", len(sp.files), sp.bytes, limit/bytesPerSummaryEntry)
	}
	if sp.peak > limit || mem.peak <= 100*limit {
		t.Errorf("map peak %d B spilled, %d B in memory; want at most the limit %d B and far over it", sp.peak, mem.peak, limit)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spilled summary differs:\n got %v\nwant %v", got, want)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("spill dir holds %v after the join", l)
	}
	// Fewer sources than TopN: every positive one, in order.
	few := newSummaryAcc()
	few.limit, few.sp = limit, &spiller{parent: dir}
	defer few.close()
	in = summaryDay(0, 5)
	for qi, q := range summaryQueries {
		if err := few.add(q, in[qi]); err != nil {
			t.Fatal(err)
		}
	}
	if err := few.spill(); err != nil {
		t.Fatal(err)
	}
	got, err = few.top(context.Background(), TopN)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 15 || got[10].SourceIP != "203.0.113.0" || got[14].SourceIP != "203.0.113.4" {
		t.Errorf("few sources spilled: %v", got)
	}
}

// failSink collects rows and, at the first rows of table at, checks
// whether spill files exist under dir and runs act, whose error it
// returns.
type failSink struct {
	collectSink
	dir, at string
	act     func() error
	sawFile bool
}

func (f *failSink) Rows(ctx context.Context, t *Table, rows []Row) error {
	if t.Name == f.at && f.act != nil {
		ds, _ := spillDirs(f.dir)
		for _, d := range ds {
			ents, _ := os.ReadDir(d)
			f.sawFile = f.sawFile || len(ents) > 1 // more than the lock file
		}
		act := f.act
		f.act = nil
		if err := act(); err != nil {
			return err
		}
	}
	return f.collectSink.Rows(ctx, t, rows)
}

// TestSummarySpillCleanup: the summary's spill files are removed when a
// streaming run fails (the sink fails during the last scan, before the
// summary's join, or on the summary itself) or is cancelled before the
// join, as on success (TestSpillEqualsInMemory).
func TestSummarySpillCleanup(t *testing.T) {
	fsys, src, day, end := generatedDay(t, 20_000)
	errSink := errors.New("sink failed")
	for _, c := range []struct {
		at     string
		cancel bool
		want   error
	}{
		{"report_web_client_hour", false, errSink},
		{"report_web_top_paths", false, errSink},
		{"report_security_summary", false, errSink},
		{"report_web_top_paths", true, context.Canceled},
	} {
		t.Run(fmt.Sprintf("%s-cancel=%v", c.at, c.cancel), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink := &failSink{dir: dir, at: c.at, act: func() error {
				if c.cancel {
					cancel()
					return nil
				}
				return errSink
			}}
			_, err := ComputeTo(ctx, src, fsys, day, end, Options{Workers: 2, MemoryBudget: 64 << 10, SpillDir: dir}, sink)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !sink.sawFile {
				t.Fatal("no spill file existed when the run failed; the test proves nothing")
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Errorf("spill dir holds %v after the failure", l)
			}
		})
	}
}
