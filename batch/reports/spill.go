package reports

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Spilling (grace hash aggregation). With Options.MemoryBudget set, each
// worker checks the estimated size of its partial state after every
// chunk; past its share of the budget it writes the whole state to a temp
// file, partitioned by the hash of the group key into spillBuckets
// buckets, and starts empty. At the end, when anything was spilled, the
// workers' remaining state is spilled too and the result is merged bucket
// by bucket: a group (and its exact distinct sets) lives in exactly one
// bucket, so a bucket's merge is complete and only one bucket per merging
// goroutine is in memory. Under the budget nothing is written and the
// in-memory merge runs as before.

// spillBuckets is the number of hash partitions of a spill. A bucket holds
// about 1/256 of the day's state, so a day whose merged state is up to 256
// times the budget merges within it.
const spillBuckets = 256

// Estimated heap bytes per state entry (Go swiss-table slots at a typical
// load factor plus the group's key and values), used to compare a worker's
// state with its budget. Calibrated against runtime.MemStats on generated
// traffic (TestSpillPeakHeap).
const (
	bytesPerGroup     = 96 // map[groupKey]int32 slot
	bytesPerGroup64   = 24 // map[uint64]int32 slot
	bytesPerGroupKey  = 48 // keys slice entry
	bytesPerDistinct  = 16 // map[uint64]struct{} slot
	bytesPerDistinctW = 40 // map[distinctKey]struct{} slot
	// bytesPerRowWorst sizes the scan's chunks under a budget: what a row
	// may add to the state at most, roughly (a new group in two or three
	// queries of the scan and their distinct values).
	bytesPerRowWorst = 512
)

// size estimates the state's heap bytes.
func (qs *queryState) size() int64 {
	n := int64(len(qs.groups))*bytesPerGroup + int64(len(qs.groups64))*bytesPerGroup64 +
		int64(cap(qs.keys))*bytesPerGroupKey + int64(cap(qs.vals))*8 + int64(len(qs.distinct))*bytesPerDistinctW
	for _, d := range qs.distinct64 {
		n += int64(len(d)) * bytesPerDistinct
	}
	return n
}

func (w *workerState) size() int64 {
	var n int64
	for _, qs := range w.qs {
		n += qs.size()
	}
	return n
}

func newQueryState(nm int) *queryState {
	qs := &queryState{groups: map[groupKey]int32{}, groups64: map[uint64]int32{}, distinct: map[distinctKey]struct{}{}}
	for range nm {
		qs.distinct64 = append(qs.distinct64, map[uint64]struct{}{})
	}
	return qs
}

// spiller owns a run's spill files: one per spill, each holding every
// query's groups in bucket order with an index of the segments.
type spiller struct {
	dir    string   // created on the first spill, removed by close
	lock   *os.File // held on dir while it exists (spill_lock_unix.go)
	parent string   // where dir is created
	// stale lists the spill directories of dead runs removed from parent
	// when the spiller was made (a kill -9 leaves its directory behind).
	stale    []string
	staleErr error
	nq       int
	mu       sync.Mutex
	files    []spillFile
	bytes    atomic.Int64
	mkdirErr error
}

type spillFile struct {
	path string
	// off[q*spillBuckets+b] is where query q's bucket b starts; the
	// segment ends at the next offset (one extra at the end).
	off []int64
}

func newSpiller(parent string, nq int) *spiller {
	s := &spiller{parent: spillParent(parent), nq: nq}
	s.stale, s.staleErr = removeStaleSpillDirs(s.parent)
	return s
}

// spillParent is where spill directories go: dir, or the system's temp
// directory.
func spillParent(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// spilled reports whether any state went to disk.
func (s *spiller) spilled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files) > 0
}

// close removes every spill file.
func (s *spiller) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	if err != nil {
		return fmt.Errorf("reports: remove spill dir %s: %w", s.dir, err)
	}
	s.dir = ""
	return nil
}

// spillDirPrefix starts the name of every spill directory.
const spillDirPrefix = "lambdalog-spill-"

func (s *spiller) newFile() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		d, err := os.MkdirTemp(s.parent, spillDirPrefix)
		if err != nil {
			return nil, fmt.Errorf("reports: spill dir in %s: %w", s.parent, err)
		}
		lock, err := lockSpillDir(d)
		if err != nil {
			os.RemoveAll(d)
			return nil, err
		}
		s.dir, s.lock = d, lock
	}
	f, err := os.CreateTemp(s.dir, "state-*.bin")
	if err != nil {
		return nil, fmt.Errorf("reports: spill file in %s: %w", s.dir, err)
	}
	return f, nil
}

// bucketOf hashes a group key to its bucket (the same for every worker:
// string keys are ids of the shared interner).
func bucketOf(gk *groupKey) int {
	h := uint64(gk.period) * 0x9e3779b97f4a7c15
	for _, k := range gk.k {
		h ^= uint64(k)
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 31
	}
	h ^= h >> 29
	h *= 0x94d049bb133111eb
	h ^= h >> 32
	return int(h % spillBuckets)
}

// spill writes the worker's state to a new spill file and resets it.
func (w *workerState) spill(s *spiller) error {
	f, err := s.newFile()
	if err != nil {
		return err
	}
	path := f.Name()
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, 256<<10)
	off := make([]int64, 0, s.nq*spillBuckets+1)
	var buf []byte
	for qi := range w.ex.queries {
		q := &w.ex.queries[qi]
		qs := w.qs[qi]
		if buf, err = writeQuery(bw, q, qs, &off, cw, buf); err != nil {
			f.Close()
			return fmt.Errorf("reports: spill %s: %w", path, err)
		}
		w.qs[qi] = newQueryState(len(q.Measures))
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("reports: spill %s: %w", path, err)
	}
	off = append(off, cw.n)
	if err := f.Close(); err != nil {
		return fmt.Errorf("reports: spill %s: %w", path, err)
	}
	s.bytes.Add(cw.n)
	s.mu.Lock()
	s.files = append(s.files, spillFile{path: path, off: off})
	s.mu.Unlock()
	if testHookSpilled != nil {
		testHookSpilled()
	}
	return nil
}

// testHookSpilled, when set by a test, runs after each spill file is
// written.
var testHookSpilled func()

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeQuery appends one query's state in bucket order. A group record is
// period, keys, values (zigzag varints), then per distinct measure the
// count and the values.
func writeQuery(bw *bufio.Writer, q *Query, qs *queryState, off *[]int64, cw *countWriter, buf []byte) ([]byte, error) {
	nm := len(q.Measures)
	ng := len(qs.keys)
	// Groups by bucket (counting sort).
	var start [spillBuckets + 1]int32
	bk := make([]uint8, ng)
	for g := range qs.keys {
		b := bucketOf(&qs.keys[g])
		bk[g] = uint8(b)
		start[b+1]++
	}
	for b := 1; b <= spillBuckets; b++ {
		start[b] += start[b-1]
	}
	order := make([]int32, ng)
	pos := start
	for g := range qs.keys {
		order[pos[bk[g]]] = int32(g)
		pos[bk[g]]++
	}
	bk = nil
	// Distinct values by group, per distinct measure (counting sort).
	type dlist struct {
		start []int32
		vals  []int64
	}
	dl := make([]dlist, nm)
	for mi, m := range q.Measures {
		if m.Kind != DistinctColumn {
			continue
		}
		st := make([]int32, ng+1)
		for k := range qs.distinct64[mi] {
			st[k>>32+1]++
		}
		for dk := range qs.distinct {
			if int(dk.m) == mi {
				st[dk.g+1]++
			}
		}
		for g := 1; g <= ng; g++ {
			st[g] += st[g-1]
		}
		vals := make([]int64, st[ng])
		p := append([]int32(nil), st[:ng]...)
		for k := range qs.distinct64[mi] {
			g := k >> 32
			vals[p[g]] = int64(k & (1<<32 - 1))
			p[g]++
		}
		for dk := range qs.distinct {
			if int(dk.m) == mi {
				vals[p[dk.g]] = dk.v
				p[dk.g]++
			}
		}
		dl[mi] = dlist{start: st, vals: vals}
	}
	for b := 0; b < spillBuckets; b++ {
		if err := bw.Flush(); err != nil {
			return buf, err
		}
		*off = append(*off, cw.n)
		for _, g := range order[start[b]:start[b+1]] {
			gk := &qs.keys[g]
			buf = binary.AppendVarint(buf[:0], gk.period)
			for i := range q.Keys {
				buf = binary.AppendVarint(buf, gk.k[i])
			}
			for mi := 0; mi < nm; mi++ {
				if q.Measures[mi].Kind == DistinctColumn {
					d := dl[mi]
					vs := d.vals[d.start[g]:d.start[g+1]]
					buf = binary.AppendUvarint(buf, uint64(len(vs)))
					for _, v := range vs {
						buf = binary.AppendVarint(buf, v)
					}
					continue
				}
				buf = binary.AppendVarint(buf, qs.vals[int(g)*nm+mi])
			}
			if _, err := bw.Write(buf); err != nil {
				return buf, err
			}
		}
	}
	return buf, nil
}

// mergeSpilled spills what the workers still hold and merges the spill
// files bucket by bucket, parallel across buckets, handing each bucket's
// rows (per query) to done, one call at a time.
func (ex *executor) mergeSpilled(ctx context.Context, s *spiller, done func(b int, rows [][]Row) error) error {
	for _, w := range ex.workers {
		if w.size() == 0 {
			continue
		}
		if err := w.spill(s); err != nil {
			return err
		}
	}
	ex.workers = nil // the spill files hold everything now
	par := defaultWorkers()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		failed  atomic.Bool
		doneMu  sync.Mutex
	)
	fail := func(err error) {
		errOnce.Do(func() { first = err })
		failed.Store(true)
	}
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= spillBuckets || failed.Load() {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(fmt.Errorf("reports: merge spilled state: %w", err))
					return
				}
				rows, err := ex.mergeBucket(s, b)
				if err != nil {
					fail(err)
					return
				}
				doneMu.Lock()
				if failed.Load() {
					doneMu.Unlock()
					return
				}
				err = done(b, rows)
				doneMu.Unlock()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// mergeBucket merges bucket b of every spill file, one query at a time.
func (ex *executor) mergeBucket(s *spiller, b int) ([][]Row, error) {
	s.mu.Lock()
	files := append([]spillFile(nil), s.files...)
	s.mu.Unlock()
	fds := make([]*os.File, len(files))
	defer func() {
		for _, f := range fds {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, sf := range files {
		f, err := os.Open(sf.path)
		if err != nil {
			return nil, fmt.Errorf("reports: spill %s: %w", sf.path, err)
		}
		fds[i] = f
	}
	out := make([][]Row, len(ex.queries))
	br := bufio.NewReaderSize(nil, 64<<10)
	for qi := range ex.queries {
		q := &ex.queries[qi]
		nm := len(q.Measures)
		m := newMerged(nm)
		for i, sf := range files {
			lo, hi := sf.off[qi*spillBuckets+b], sf.off[qi*spillBuckets+b+1]
			if lo == hi {
				continue
			}
			br.Reset(io.NewSectionReader(fds[i], lo, hi-lo))
			if err := m.read(br, q); err != nil {
				return nil, fmt.Errorf("reports: spill %s: query %s bucket %d: %w", sf.path, q.Name, b, err)
			}
		}
		keys, vals := m.finish()
		out[qi] = ex.rowsOf(qi, keys, vals)
	}
	return out, nil
}

// merged is one bucket's merged state of one query.
type merged struct {
	nm         int
	groups     map[groupKey]int
	keys       []groupKey
	vals       []int64
	distinct   map[distinctKey]struct{}
	distinct64 []map[uint64]struct{}
}

func newMerged(nm int) *merged {
	m := &merged{nm: nm, groups: map[groupKey]int{}, distinct: map[distinctKey]struct{}{}, distinct64: make([]map[uint64]struct{}, nm)}
	for i := range m.distinct64 {
		m.distinct64[i] = map[uint64]struct{}{}
	}
	return m
}

func (m *merged) read(br *bufio.Reader, q *Query) error {
	nm := m.nm
	for {
		period, err := binary.ReadVarint(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		gk := groupKey{period: period}
		for i := range q.Keys {
			if gk.k[i], err = binary.ReadVarint(br); err != nil {
				return unexpected(err)
			}
		}
		idx, ok := m.groups[gk]
		if !ok {
			idx = len(m.keys)
			m.groups[gk] = idx
			m.keys = append(m.keys, gk)
			m.vals = append(m.vals, make([]int64, nm)...)
		}
		for mi := 0; mi < nm; mi++ {
			if q.Measures[mi].Kind == DistinctColumn {
				n, err := binary.ReadUvarint(br)
				if err != nil {
					return unexpected(err)
				}
				d64 := m.distinct64[mi]
				for ; n > 0; n-- {
					x, err := binary.ReadVarint(br)
					if err != nil {
						return unexpected(err)
					}
					if x >= 0 && x < 1<<32 {
						d64[uint64(idx)<<32|uint64(x)] = struct{}{}
					} else {
						m.distinct[distinctKey{g: int32(idx), m: int32(mi), v: x}] = struct{}{}
					}
				}
				continue
			}
			v, err := binary.ReadVarint(br)
			if err != nil {
				return unexpected(err)
			}
			m.vals[idx*nm+mi] += v
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// finish counts the distinct sets into the values.
func (m *merged) finish() ([]groupKey, []int64) {
	for dk := range m.distinct {
		m.vals[int(dk.g)*m.nm+int(dk.m)]++
	}
	for mi, d := range m.distinct64 {
		for k := range d {
			m.vals[int(k>>32)*m.nm+mi]++
		}
	}
	return m.keys, m.vals
}
