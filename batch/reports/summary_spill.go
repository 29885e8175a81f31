package reports

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Spilling the security summary's join. The join holds one entry per
// source IP seen in the day, across the four datasets' scans, so under
// Options.MemoryBudget ComputeTo gives it a share of the budget
// (summaryBudgetShare). Past it, the map is written to a spill file
// partitioned by the hash of the IP into spillBuckets buckets and starts
// empty, like a scan worker's state (spill.go); later rows accumulate and
// spill the same way. At the end the rest is spilled too and the files are
// joined bucket by bucket: an IP lives in exactly one bucket, so each
// bucket's join is complete, and only the TopN best rows seen so far are
// kept across buckets (the order is total, so they are the global TopN).

// bytesPerSummaryEntry estimates the heap bytes of one entry of the
// summary's map: its slot (string key and pointer, at the swiss table's
// load factor), the summaryEntry (112 B size class) and the IP's bytes
// (up to 48 B for an IPv6 text). Conservative: 163-183 B per IPv4 and
// 179-200 B per IPv6 entry of live heap, the most just after the table
// grew (runtime/metrics on 120,000 and 200,000 sources,
// TestSummaryEntryEstimate).
const bytesPerSummaryEntry = 256

// summaryBudgetShare: ComputeTo gives the summary's map 1/summaryBudgetShare
// of Options.MemoryBudget and the scans the rest. An eighth of the 384 MiB
// default is about 196,000 sources before anything is written.
const summaryBudgetShare = 8

// summaryMinEntries is the least the map may hold under a budget, so a
// tiny budget writes a file per 64 sources, not one per source.
const summaryMinEntries = 64

// summaryLimit is the summary map's share of budget (0: unbounded).
func summaryLimit(budget int64) int64 {
	if budget <= 0 {
		return 0
	}
	return max(budget/summaryBudgetShare, summaryMinEntries*bytesPerSummaryEntry)
}

// size estimates the map's heap bytes.
func (a *summaryAcc) size() int64 { return int64(len(a.by)) * bytesPerSummaryEntry }

// summaryBucket hashes a source IP to its bucket (FNV-1a, then mixed).
func summaryBucket(ip string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(ip); i++ {
		h ^= uint64(ip[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return int(h % spillBuckets)
}

// spill writes the map to a new spill file in bucket order and empties it.
// A record is the IP (length and bytes), the input mask and the ten input
// fields (varints).
func (a *summaryAcc) spill() error {
	f, err := a.sp.newFile()
	if err != nil {
		return fmt.Errorf("reports: security summary: %w", err)
	}
	path := f.Name()
	byBucket := make([][]*summaryEntry, spillBuckets)
	for _, e := range a.by {
		b := summaryBucket(e.row.SourceIP)
		byBucket[b] = append(byBucket[b], e)
	}
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, 64<<10)
	off := make([]int64, 0, spillBuckets+1)
	var buf []byte
	for _, es := range byBucket {
		if err := bw.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("reports: security summary spill %s: %w", path, err)
		}
		off = append(off, cw.n)
		for _, e := range es {
			s := &e.row
			buf = binary.AppendUvarint(buf[:0], uint64(len(s.SourceIP)))
			buf = append(buf, s.SourceIP...)
			buf = append(buf, e.set)
			for _, v := range [...]int64{s.AuthFailures, s.AuthDistinctUsers, s.FirewallBlocked, s.FirewallPorts,
				s.IDSAlerts, s.IDSSev1, s.IDSSev2, s.WebRequests, s.Web4xx, s.Web5xx} {
				buf = binary.AppendVarint(buf, v)
			}
			if _, err := bw.Write(buf); err != nil {
				f.Close()
				return fmt.Errorf("reports: security summary spill %s: %w", path, err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("reports: security summary spill %s: %w", path, err)
	}
	off = append(off, cw.n)
	if err := f.Close(); err != nil {
		return fmt.Errorf("reports: security summary spill %s: %w", path, err)
	}
	a.files = append(a.files, spillFile{path: path, off: off})
	a.bytes += cw.n
	// clear keeps the map's table, which held no more than the limit.
	clear(a.by)
	return nil
}

// top returns the first n sources of the summary (risk descending, ties by
// IP; risk 0 and the empty IP left out), joining the spill files bucket by
// bucket when the map spilled.
func (a *summaryAcc) top(ctx context.Context, n int) ([]SummaryRow, error) {
	if len(a.files) == 0 {
		rows := a.rows()
		return rows[:min(n, len(rows))], nil
	}
	if len(a.by) > 0 {
		if err := a.spill(); err != nil {
			return nil, err
		}
	}
	var best []SummaryRow
	for b := range spillBuckets {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reports: security summary join: %w", err)
		}
		joined, err := a.joinBucket(b)
		if err != nil {
			return nil, err
		}
		best = append(best, ranked(joined)...)
		if len(best) > 8*n {
			best = ranked(best)[:n]
		}
	}
	best = ranked(best)
	return best[:min(n, len(best))], nil
}

// joinBucket joins bucket b of every spill file, applying each record's
// inputs in the order they were written, as add did in memory.
func (a *summaryAcc) joinBucket(b int) ([]SummaryRow, error) {
	by := map[string]*summaryEntry{}
	br := bufio.NewReaderSize(nil, 64<<10)
	for _, sf := range a.files {
		lo, hi := sf.off[b], sf.off[b+1]
		if lo == hi {
			continue
		}
		f, err := os.Open(sf.path)
		if err != nil {
			return nil, fmt.Errorf("reports: security summary spill: %w", err)
		}
		br.Reset(io.NewSectionReader(f, lo, hi-lo))
		err = readSummary(br, func(rec *summaryEntry) {
			e := by[rec.row.SourceIP]
			if e == nil {
				e = &summaryEntry{row: SummaryRow{SourceIP: rec.row.SourceIP}}
				by[rec.row.SourceIP] = e
			}
			for qi := range summaryQueries {
				if rec.set&(1<<qi) != 0 {
					e.row.copyInput(qi, &rec.row)
				}
			}
			e.set |= rec.set
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reports: security summary spill %s bucket %d: %w", sf.path, b, err)
		}
	}
	out := make([]SummaryRow, 0, len(by))
	for _, e := range by {
		out = append(out, e.row)
	}
	return out, nil
}

// readSummary reads records until EOF, handing each to fn (the record is
// reused).
func readSummary(br *bufio.Reader, fn func(*summaryEntry)) error {
	var rec summaryEntry
	var ip []byte
	for {
		n, err := binary.ReadUvarint(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n > 1<<10 {
			return fmt.Errorf("source IP of %d bytes: corrupt spill", n)
		}
		if uint64(cap(ip)) < n {
			ip = make([]byte, n)
		}
		ip = ip[:n]
		if _, err := io.ReadFull(br, ip); err != nil {
			return unexpected(err)
		}
		if rec.set, err = br.ReadByte(); err != nil {
			return unexpected(err)
		}
		s := &rec.row
		s.SourceIP = string(ip)
		for _, p := range [...]*int64{&s.AuthFailures, &s.AuthDistinctUsers, &s.FirewallBlocked, &s.FirewallPorts,
			&s.IDSAlerts, &s.IDSSev1, &s.IDSSev2, &s.WebRequests, &s.Web4xx, &s.Web5xx} {
			if *p, err = binary.ReadVarint(br); err != nil {
				return unexpected(err)
			}
		}
		fn(&rec)
	}
}

// close removes the spill files.
func (a *summaryAcc) close() error {
	if a.sp == nil {
		return nil
	}
	return a.sp.close()
}
