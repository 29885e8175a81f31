// Package reports computes lambdalog's batch reports from the Parquet
// master dataset with Arrow: declarative group-by queries (filter, keys,
// tumbling window, measures) evaluated column-wise over dictionary-encoded
// chunks, several queries per scan, files in parallel across cores.
//
// The same Query renders as ClickHouse SQL (SQL), so a report can be
// checked against, and benchmarked next to, ClickHouse computing it over
// the loaded event tables.
package reports

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// MeasureKind is how a measure aggregates.
type MeasureKind int

// Measure kinds.
const (
	// CountRows counts the group's rows that pass Where.
	CountRows MeasureKind = iota + 1
	// SumColumn adds an integer column over rows that pass Where.
	SumColumn
	// DistinctColumn counts distinct values of a column over rows that
	// pass Where (exactly).
	DistinctColumn
)

// Measure is one aggregate column of a query.
type Measure struct {
	Name   string
	Kind   MeasureKind
	Column string // for SumColumn and DistinctColumn
	// Where restricts the rows the measure sees, on top of the query's
	// filter (a conditional count).
	Where []metrics.Predicate
}

// maxKeys bounds the group-by columns of a query.
const maxKeys = 5

// Query is one group-by over one dataset.
type Query struct {
	// Name names the result (the report table).
	Name    string
	Dataset string
	// Filter selects the rows (conjunction).
	Filter []metrics.Predicate
	// Keys are the group-by columns (string or integer), at most 5.
	Keys []string
	// Window, when positive, adds a period_start key: the start of the
	// tumbling window (aligned to the Unix epoch, UTC) holding the event.
	// Zero groups the whole interval (period_start = interval start).
	Window   time.Duration
	Measures []Measure
}

// Row is one result group: the period, the key values as text (integers
// in decimal) and the measures in Measures order. Rows come in no
// particular order (ClickHouse orders them by the table key; sort when
// presenting).
type Row struct {
	Period time.Time
	Keys   []string
	Values []int64
}

// Result is a query's rows.
type Result struct {
	Query Query
	Rows  []Row
}

// Columns are the columns the query reads.
func (q *Query) Columns() []string {
	seen := map[string]bool{}
	var out []string
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	add("timestamp")
	for _, p := range q.Filter {
		add(p.Column)
	}
	for _, k := range q.Keys {
		add(k)
	}
	for _, m := range q.Measures {
		add(m.Column)
		for _, p := range m.Where {
			add(p.Column)
		}
	}
	return out
}

// Validate checks the query against the event model.
func (q *Query) Validate() error {
	ds, ok := schemas.Lookup(q.Dataset)
	if !ok {
		return fmt.Errorf("reports: %s: unknown dataset %q", q.Name, q.Dataset)
	}
	if len(q.Keys) > maxKeys {
		return fmt.Errorf("reports: %s: %d keys, at most %d", q.Name, len(q.Keys), maxKeys)
	}
	for _, c := range q.Columns() {
		if c == "timestamp" {
			continue // read for the interval and the window, never as a value
		}
		f, ok := ds.Field(c)
		if !ok {
			return fmt.Errorf("reports: %s: dataset %s has no column %q", q.Name, q.Dataset, c)
		}
		if f.Kind == schemas.KindBytes || f.Kind == schemas.KindFloat64 || f.Kind == schemas.KindTime {
			return fmt.Errorf("reports: %s: column %s of kind %s is not supported", q.Name, c, f.Kind)
		}
	}
	for _, m := range q.Measures {
		if m.Kind == SumColumn {
			if f, _ := ds.Field(m.Column); f.Kind == schemas.KindString {
				return fmt.Errorf("reports: %s: sum of string column %s", q.Name, m.Column)
			}
		}
		if m.Kind < CountRows || m.Kind > DistinctColumn {
			return fmt.Errorf("reports: %s: measure %s has no kind", q.Name, m.Name)
		}
	}
	return nil
}

// FromMetric is the query computing a shared metric: the metric's filter,
// key and window, and its aggregate as the one measure "value".
func FromMetric(m *metrics.Metric) Query {
	q := Query{Name: m.Name, Dataset: m.Dataset, Filter: m.Filter, Keys: []string{m.KeyColumn}, Window: m.Window}
	switch m.Agg {
	case metrics.Count:
		q.Measures = []Measure{{Name: "value", Kind: CountRows}}
	case metrics.Sum:
		q.Measures = []Measure{{Name: "value", Kind: SumColumn, Column: m.Of}}
	case metrics.Distinct:
		q.Measures = []Measure{{Name: "value", Kind: DistinctColumn, Column: m.Of}}
	}
	return q
}

// Options configure Run.
type Options struct {
	// Workers is the scan parallelism (GOMAXPROCS when 0).
	Workers int
	// MemoryBudget bounds the aggregation state in bytes: past it the
	// state is spilled to SpillDir and merged bucket by bucket at the end
	// (spill.go). 0: unbounded, everything stays in memory.
	MemoryBudget int64
	// SpillDir is where spill files go (os.TempDir when empty). Each Run
	// removes its files on return, whether it succeeded or not.
	SpillDir string
}

// Stats describe a Run.
type Stats struct {
	Scan source.Stats
	// RowsRead counts rows inside the interval.
	RowsRead int64
	// SpillFiles and SpillBytes count the state written to disk (zero
	// under the memory budget).
	SpillFiles int
	SpillBytes int64
	// StaleSpillDirs and StaleSpillErr: see Output.
	StaleSpillDirs []string
	StaleSpillErr  error
}

// Run evaluates queries over one dataset's files for the interval
// [from, to) in a single parallel scan.
func Run(ctx context.Context, fsys storage.FS, files []source.File, from, to time.Time, queries []Query, o Options) ([]Result, Stats, error) {
	if len(queries) == 0 {
		return nil, Stats{}, nil
	}
	ex, sp, stats, err := scan(ctx, fsys, files, from, to, queries, o)
	if sp != nil {
		defer sp.close()
		stats.StaleSpillDirs, stats.StaleSpillErr = sp.stale, sp.staleErr
	}
	if err != nil {
		return nil, stats, err
	}
	if sp == nil || !sp.spilled() {
		return ex.merge(from), stats, nil
	}
	per := make([][][]Row, spillBuckets) // [bucket][query]rows
	err = ex.mergeSpilled(ctx, sp, func(b int, rows [][]Row) error {
		per[b] = rows
		return nil
	})
	stats.SpillFiles, stats.SpillBytes = len(sp.files), sp.bytes.Load()
	if err != nil {
		return nil, stats, err
	}
	if err := sp.close(); err != nil {
		return nil, stats, err
	}
	out := make([]Result, len(queries))
	for qi := range out {
		n := 0
		for b := range per {
			n += len(per[b][qi])
		}
		rows := make([]Row, 0, n)
		for b := range per {
			rows = append(rows, per[b][qi]...)
			per[b][qi] = nil
		}
		out[qi] = Result{Query: ex.queries[qi], Rows: rows}
	}
	return out, stats, nil
}

// Emit receives finished rows of query qi (an index into Run's queries).
// The rows are complete (no later call adds to their groups); their
// slices are the caller's to keep. Calls are serialized.
type Emit func(ctx context.Context, qi int, rows []Row) error

// emitRows is how many rows the in-memory path builds per Emit call.
const emitRows = 8192

// RunTo is Run handing the rows to emit as they are finished instead of
// returning them: one query at a time, emitRows rows per call, in memory;
// one spill bucket at a time when the state spilled. Unless emit keeps
// them, the rows live only during the call, so a run's live heap is its
// aggregation state plus one call's rows.
func RunTo(ctx context.Context, fsys storage.FS, files []source.File, from, to time.Time, queries []Query, o Options, emit Emit) (Stats, error) {
	if len(queries) == 0 {
		return Stats{}, nil
	}
	ex, sp, stats, err := scan(ctx, fsys, files, from, to, queries, o)
	if sp != nil {
		defer sp.close()
		stats.StaleSpillDirs, stats.StaleSpillErr = sp.stale, sp.staleErr
	}
	if err != nil {
		return stats, err
	}
	if sp == nil || !sp.spilled() {
		return stats, ex.mergeTo(ctx, emit)
	}
	err = ex.mergeSpilled(ctx, sp, func(b int, rows [][]Row) error {
		for qi, r := range rows {
			if len(r) == 0 {
				continue
			}
			if err := emit(ctx, qi, r); err != nil {
				return err
			}
			rows[qi] = nil
		}
		return nil
	})
	stats.SpillFiles, stats.SpillBytes = len(sp.files), sp.bytes.Load()
	if err != nil {
		return stats, err
	}
	if err := sp.close(); err != nil {
		return stats, err
	}
	return stats, nil
}

// scan validates the queries and aggregates the files; the caller merges.
// The spiller, when not nil, must be closed by the caller.
func scan(ctx context.Context, fsys storage.FS, files []source.File, from, to time.Time, queries []Query, o Options) (*executor, *spiller, Stats, error) {
	ds := queries[0].Dataset
	for i := range queries {
		if err := queries[i].Validate(); err != nil {
			return nil, nil, Stats{}, err
		}
		if queries[i].Dataset != ds {
			return nil, nil, Stats{}, fmt.Errorf("reports: queries over %s and %s in one scan", ds, queries[i].Dataset)
		}
	}
	dataset, _ := schemas.Lookup(ds)
	// Union of the columns, dictionary reads for the strings.
	var cols, dict []string
	colIdx := map[string]int{}
	for i := range queries {
		for _, c := range queries[i].Columns() {
			if _, ok := colIdx[c]; ok {
				continue
			}
			colIdx[c] = len(cols)
			cols = append(cols, c)
			if f, _ := dataset.Field(c); f.Kind == schemas.KindString {
				dict = append(dict, c)
			}
		}
	}
	ex := &executor{queries: queries, colIdx: colIdx, from: from.UnixMicro(), to: to.UnixMicro(), intern: newInterner()}
	// Hour and whole-interval windows need no per-row time where the
	// partition already says which hour a row is in.
	skipTS := true
	for _, q := range queries {
		if q.Window != 0 && q.Window != time.Hour {
			skipTS = false
		}
	}
	workers := o.Workers
	if workers <= 0 {
		workers = defaultWorkers()
	}
	ex.workers = make([]*workerState, workers)
	for w := range ex.workers {
		ex.workers[w] = ex.newWorker()
	}
	chunk := func(w int, c *source.Chunk) error { return ex.workers[w].chunk(c) }
	var sp *spiller
	var batchRows int64 // Scan's default
	if o.MemoryBudget > 0 {
		sp = newSpiller(o.SpillDir, len(queries))
		// Each worker's state and, at the in-memory merge, the merged
		// copy of it must fit: a worker gets half the budget's share.
		limit := o.MemoryBudget / int64(2*workers)
		// The state is checked between chunks, so a chunk may add at most
		// a fraction of the limit: a row adds up to a few hundred bytes
		// (a new group in each query and its distinct values).
		batchRows = min(max(limit/bytesPerRowWorst, 1024), 1<<20)
		chunk = func(w int, c *source.Chunk) error {
			ws := ex.workers[w]
			if err := ws.chunk(c); err != nil {
				return err
			}
			if ws.size() > limit {
				return ws.spill(sp)
			}
			return nil
		}
	}
	st, err := source.Scan(ctx, fsys, files, source.ScanOptions{Columns: cols, Dict: dict, From: from, To: to, Workers: workers, SkipTimestamp: skipTS, BatchRows: batchRows}, chunk)
	stats := Stats{Scan: st}
	if err != nil {
		return nil, sp, stats, err
	}
	for _, w := range ex.workers {
		stats.RowsRead += w.rowsRead
	}
	return ex, sp, stats, nil
}

// interner maps strings to dense ids shared by all workers. It is hit
// once per dictionary entry per chunk, not per row, so a mutex is cheap.
type interner struct {
	mu   sync.Mutex
	ids  map[string]int64
	strs []string
}

func newInterner() *interner { return &interner{ids: map[string]int64{}} }

func (in *interner) idsOf(values []string, dst []int64) []int64 {
	dst = dst[:0]
	in.mu.Lock()
	for _, s := range values {
		id, ok := in.ids[s]
		if !ok {
			id = int64(len(in.strs))
			s = string([]byte(s)) // the Arrow buffer is released after the chunk
			in.ids[s] = id
			in.strs = append(in.strs, s)
		}
		dst = append(dst, id)
	}
	in.mu.Unlock()
	return dst
}

func (in *interner) str(id int64) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.strs[id]
}

type executor struct {
	queries []Query
	colIdx  map[string]int
	from    int64
	to      int64
	intern  *interner
	workers []*workerState
}

type groupKey struct {
	period int64
	k      [maxKeys]int64
}

type distinctKey struct {
	g int32
	m int32
	v int64
}

// queryState is one worker's partial result of one query. Groups of at
// most one key, and distinct values that fit 32 bits, use maps keyed by a
// packed uint64 (Go's fast 64-bit map path); the wide struct keys are the
// general fallback.
type queryState struct {
	groups   map[groupKey]int32
	groups64 map[uint64]int32
	keys     []groupKey
	vals     []int64 // len(keys) * len(measures)
	distinct map[distinctKey]struct{}
	// distinct64[m] holds group<<32 | value for measure m.
	distinct64 []map[uint64]struct{}
}

type workerState struct {
	ex       *executor
	qs       []*queryState
	cols     []colView
	mask     []bool
	mmask    []bool
	base     []bool
	pass     []bool
	cache    []int32
	gidx     []int32
	rowsRead int64
}

// colView is one column of a chunk as ids: strings by dictionary code and
// per-code interned id, integers by value.
type colView struct {
	str     bool
	codes   []int32  // per row, strings
	codeIDs []int64  // per code: interned id
	dict    []string // per code: the string (valid during the chunk)
	ints    []int64  // per row, integers
	missing bool     // the file predates the column: every value is zero
}

func (c *colView) id(row int) int64 {
	switch {
	case c.missing && c.str:
		return c.codeIDs[0]
	case c.missing:
		return 0
	case c.str:
		return c.codeIDs[c.codes[row]]
	default:
		return c.ints[row]
	}
}

func (ex *executor) newWorker() *workerState {
	w := &workerState{ex: ex, cols: make([]colView, len(ex.colIdx))}
	for _, q := range ex.queries {
		w.qs = append(w.qs, newQueryState(len(q.Measures)))
	}
	return w
}

// load fills the column views of a chunk.
func (w *workerState) load(c *source.Chunk) error {
	ds, _ := schemas.Lookup(w.ex.queries[0].Dataset)
	for name, i := range w.ex.colIdx {
		if name == "timestamp" {
			continue // the chunk's Timestamp slice serves it
		}
		v := &w.cols[i]
		f, _ := ds.Field(name)
		*v = colView{str: f.Kind == schemas.KindString, codes: v.codes[:0], codeIDs: v.codeIDs[:0], dict: v.dict[:0], ints: v.ints[:0]}
		arr := c.Cols[i]
		if arr == nil {
			v.missing = true
			if v.str {
				v.codeIDs = w.ex.intern.idsOf([]string{""}, v.codeIDs)
				v.dict = append(v.dict, "")
			}
			continue
		}
		switch a := arr.(type) {
		case *array.Dictionary:
			d, ok := a.Dictionary().(*array.String)
			if !ok {
				return fmt.Errorf("reports: column %s: dictionary of %s", name, a.Dictionary().DataType())
			}
			for j := 0; j < d.Len(); j++ {
				v.dict = append(v.dict, d.Value(j))
			}
			nullCode := int32(len(v.dict))
			v.dict = append(v.dict, "")
			v.codeIDs = w.ex.intern.idsOf(v.dict, v.codeIDs)
			if idx, ok := a.Indices().(*array.Int32); ok && a.NullN() == 0 {
				v.codes = append(v.codes, idx.Int32Values()...)
			} else {
				for r := 0; r < a.Len(); r++ {
					if a.IsNull(r) {
						v.codes = append(v.codes, nullCode)
					} else {
						v.codes = append(v.codes, int32(a.GetValueIndex(r)))
					}
				}
			}
		case *array.String:
			local := map[string]int32{}
			for r := 0; r < a.Len(); r++ {
				s := a.Value(r)
				code, ok := local[s]
				if !ok {
					code = int32(len(v.dict))
					local[s] = code
					v.dict = append(v.dict, s)
				}
				v.codes = append(v.codes, code)
			}
			v.codeIDs = w.ex.intern.idsOf(v.dict, v.codeIDs)
		case *array.Uint16:
			for _, x := range a.Uint16Values() {
				v.ints = append(v.ints, int64(x))
			}
		case *array.Int32:
			for _, x := range a.Int32Values() {
				v.ints = append(v.ints, int64(x))
			}
		case *array.Int64:
			v.ints = append(v.ints, a.Int64Values()...)
		default:
			return fmt.Errorf("reports: column %s: unsupported array %s", name, arr.DataType())
		}
	}
	return nil
}

// predMask ANDs the predicates into mask (true = row passes).
func (w *workerState) predMask(preds []metrics.Predicate, mask []bool) error {
	for _, p := range preds {
		v := &w.cols[w.ex.colIdx[p.Column]]
		if v.str {
			// Evaluate once per dictionary entry, then per row by code.
			w.pass = resize(w.pass, len(v.dict))
			pass := w.pass
			for code, s := range v.dict {
				switch p.Op {
				case metrics.OpEq:
					pass[code] = s == p.Strings[0]
				case metrics.OpNe:
					pass[code] = s != p.Strings[0]
				case metrics.OpIn:
					pass[code] = false
					for _, want := range p.Strings {
						if s == want {
							pass[code] = true
						}
					}
				default:
					n, err := strconv.ParseInt(s, 10, 64)
					pass[code] = err == nil && ((p.Op == metrics.OpGte && n >= p.Int) || (p.Op == metrics.OpLte && n <= p.Int))
				}
			}
			if v.missing {
				if !pass[0] {
					clear(mask)
				}
				continue
			}
			for r, code := range v.codes {
				if !pass[code] {
					mask[r] = false
				}
			}
			continue
		}
		if v.missing {
			if !intPass(p, 0) {
				clear(mask)
			}
			continue
		}
		for r, x := range v.ints {
			if !intPass(p, x) {
				mask[r] = false
			}
		}
	}
	return nil
}

func intPass(p metrics.Predicate, x int64) bool {
	switch p.Op {
	case metrics.OpGte:
		return x >= p.Int
	case metrics.OpLte:
		return x <= p.Int
	case metrics.OpEq:
		return strconv.FormatInt(x, 10) == p.Strings[0]
	case metrics.OpNe:
		return strconv.FormatInt(x, 10) != p.Strings[0]
	case metrics.OpIn:
		s := strconv.FormatInt(x, 10)
		for _, want := range p.Strings {
			if s == want {
				return true
			}
		}
	}
	return false
}

func (w *workerState) chunk(c *source.Chunk) error {
	if err := w.load(c); err != nil {
		return err
	}
	n := c.Rows
	w.mask = resize(w.mask, n)
	w.mmask = resize(w.mmask, n)
	w.gidx = resizeI32(w.gidx, n)
	// Rows inside the interval.
	inside := w.mask
	for r := range inside {
		inside[r] = true
	}
	read := int64(n)
	if !c.InInterval {
		read = 0
		for r, t := range c.Timestamp {
			inside[r] = int64(t) >= w.ex.from && int64(t) < w.ex.to
			if inside[r] {
				read++
			}
		}
	}
	w.rowsRead += read
	w.base = resize(w.base, n)
	copy(w.base, inside)
	for qi := range w.ex.queries {
		copy(w.mask, w.base)
		if err := w.query(qi, c); err != nil {
			return err
		}
	}
	return nil
}

func resize(b []bool, n int) []bool {
	if cap(b) < n {
		return make([]bool, n)
	}
	return b[:n]
}

func resizeI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

func (w *workerState) query(qi int, c *source.Chunk) error {
	q := &w.ex.queries[qi]
	qs := w.qs[qi]
	mask := w.mask
	if err := w.predMask(q.Filter, mask); err != nil {
		return err
	}
	keyCols := make([]*colView, len(q.Keys))
	for i, k := range q.Keys {
		keyCols[i] = &w.cols[w.ex.colIdx[k]]
	}
	win := q.Window.Microseconds()
	constPeriod := int64(-1)
	switch {
	case win <= 0:
		constPeriod = w.ex.from
	case !c.Hour.IsZero() && win == time.Hour.Microseconds():
		constPeriod = c.Hour.UnixMicro()
	}
	nm := len(q.Measures)
	packed := len(keyCols) <= 1
	base := w.ex.from
	if win > 0 {
		base -= mod(base, win)
	}
	lookup := func(gk groupKey) int32 {
		if packed {
			var idx int64
			if win > 0 {
				idx = (gk.period - base) / win
			}
			if idx >= 0 && idx < 1<<23 && gk.k[0] >= 0 && gk.k[0] < 1<<40 {
				pk := uint64(idx)<<40 | uint64(gk.k[0])
				if g, ok := qs.groups64[pk]; ok {
					return g
				}
				g := qs.group(gk, nm)
				qs.groups64[pk] = g
				return g
			}
		}
		return qs.group(gk, nm)
	}
	// Group index per row. A single string key with a constant period
	// caches the group per dictionary code: one map lookup per code.
	gidx := w.gidx
	if len(keyCols) == 1 && keyCols[0].str && !keyCols[0].missing && constPeriod >= 0 {
		kc := keyCols[0]
		w.cache = resizeI32(w.cache, len(kc.dict))
		cache := w.cache
		for i := range cache {
			cache[i] = -1
		}
		for r, code := range kc.codes {
			if !mask[r] {
				continue
			}
			g := cache[code]
			if g < 0 {
				g = lookup(groupKey{period: constPeriod, k: [maxKeys]int64{kc.codeIDs[code]}})
				cache[code] = g
			}
			gidx[r] = g
		}
	} else {
		for r := 0; r < c.Rows; r++ {
			if !mask[r] {
				continue
			}
			var gk groupKey
			if constPeriod >= 0 {
				gk.period = constPeriod
			} else {
				t := int64(c.Timestamp[r])
				gk.period = t - mod(t, win)
			}
			for i, kc := range keyCols {
				gk.k[i] = kc.id(r)
			}
			gidx[r] = lookup(gk)
		}
	}
	for mi, m := range q.Measures {
		mm := mask
		if len(m.Where) > 0 {
			mm = w.mmask
			copy(mm, mask)
			if err := w.predMask(m.Where, mm); err != nil {
				return err
			}
		}
		switch m.Kind {
		case CountRows:
			for r, ok := range mm {
				if ok {
					qs.vals[int(gidx[r])*nm+mi]++
				}
			}
		case SumColumn:
			v := &w.cols[w.ex.colIdx[m.Column]]
			if v.missing {
				continue
			}
			for r, ok := range mm {
				if ok {
					qs.vals[int(gidx[r])*nm+mi] += v.ints[r]
				}
			}
		case DistinctColumn:
			v := &w.cols[w.ex.colIdx[m.Column]]
			d64 := qs.distinct64[mi]
			for r, ok := range mm {
				if !ok {
					continue
				}
				x := v.id(r)
				if x >= 0 && x < 1<<32 {
					d64[uint64(gidx[r])<<32|uint64(x)] = struct{}{}
				} else {
					qs.distinct[distinctKey{g: gidx[r], m: int32(mi), v: x}] = struct{}{}
				}
			}
		}
	}
	return nil
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (qs *queryState) group(gk groupKey, nm int) int32 {
	g, ok := qs.groups[gk]
	if !ok {
		g = int32(len(qs.keys))
		qs.groups[gk] = g
		qs.keys = append(qs.keys, gk)
		qs.vals = append(qs.vals, make([]int64, nm)...)
	}
	return g
}

// merge combines the workers' partial results, one query per goroutine
// (queries are independent; the merge of large distinct sets is the
// serial tail of a run otherwise).
func (ex *executor) merge(from time.Time) []Result {
	out := make([]Result, len(ex.queries))
	ex.eachQuery(func(qi int) { out[qi] = ex.mergeQuery(qi) })
	return out
}

// eachQuery calls fn for every query, on up to one goroutine per core.
func (ex *executor) eachQuery(fn func(qi int)) {
	sem := make(chan struct{}, defaultWorkers())
	var wg sync.WaitGroup
	for qi := range ex.queries {
		wg.Add(1)
		sem <- struct{}{}
		go func(qi int) {
			defer func() { <-sem; wg.Done() }()
			fn(qi)
		}(qi)
	}
	wg.Wait()
}

func (ex *executor) mergeQuery(qi int) Result {
	keys, vals := ex.mergeGroups(qi)
	return Result{Query: ex.queries[qi], Rows: ex.rowsOf(qi, keys, vals)}
}

// mergeTo merges the workers' partial results like merge, then builds and
// emits the rows one query and emitRows rows at a time, letting go of
// each query's merged state once its rows are out.
func (ex *executor) mergeTo(ctx context.Context, emit Emit) error {
	type mq struct {
		keys []groupKey
		vals []int64
	}
	ms := make([]mq, len(ex.queries))
	ex.eachQuery(func(qi int) { ms[qi].keys, ms[qi].vals = ex.mergeGroups(qi) })
	ex.workers = nil // merged: the partial states can go
	for qi := range ms {
		nm := len(ex.queries[qi].Measures)
		keys, vals := ms[qi].keys, ms[qi].vals
		ms[qi] = mq{}
		for lo := 0; lo < len(keys); lo += emitRows {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("reports: emit %s: %w", ex.queries[qi].Name, err)
			}
			hi := min(lo+emitRows, len(keys))
			if err := emit(ctx, qi, ex.rowsOf(qi, keys[lo:hi], vals[lo*nm:hi*nm])); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergeGroups combines the workers' partial states of query qi into one
// group list and its values (distinct sets counted).
func (ex *executor) mergeGroups(qi int) ([]groupKey, []int64) {
	q := ex.queries[qi]
	{
		nm := len(q.Measures)
		groups := map[groupKey]int{}
		var keys []groupKey
		var vals []int64
		distinct := map[distinctKey]struct{}{}
		distinct64 := make([]map[uint64]struct{}, nm)
		for m := range distinct64 {
			distinct64[m] = map[uint64]struct{}{}
		}
		for _, w := range ex.workers {
			qs := w.qs[qi]
			local := make([]int, len(qs.keys))
			for g, gk := range qs.keys {
				idx, ok := groups[gk]
				if !ok {
					idx = len(keys)
					groups[gk] = idx
					keys = append(keys, gk)
					vals = append(vals, make([]int64, nm)...)
				}
				local[g] = idx
				for m := 0; m < nm; m++ {
					vals[idx*nm+m] += qs.vals[g*nm+m]
				}
			}
			for dk := range qs.distinct {
				distinct[distinctKey{g: int32(local[dk.g]), m: dk.m, v: dk.v}] = struct{}{}
			}
			for m, d := range qs.distinct64 {
				if len(ex.workers) == 1 {
					distinct64[m] = d // one worker: already global
					continue
				}
				for k := range d {
					distinct64[m][uint64(local[k>>32])<<32|k&(1<<32-1)] = struct{}{}
				}
			}
		}
		for dk := range distinct {
			vals[int(dk.g)*nm+int(dk.m)]++
		}
		for m, d := range distinct64 {
			for k := range d {
				vals[int(k>>32)*nm+m]++
			}
		}
		return keys, vals
	}
}

// rowsOf turns merged groups into rows (string keys from the interner).
func (ex *executor) rowsOf(qi int, keys []groupKey, vals []int64) []Row {
	ds, _ := schemas.Lookup(ex.queries[0].Dataset)
	q := &ex.queries[qi]
	nm := len(q.Measures)
	isStr := make([]bool, len(q.Keys))
	for i, k := range q.Keys {
		f, _ := ds.Field(k)
		isStr[i] = f.Kind == schemas.KindString
	}
	rows := make([]Row, len(keys))
	for g, gk := range keys {
		r := Row{Period: time.UnixMicro(gk.period).UTC(), Keys: make([]string, len(q.Keys)), Values: vals[g*nm : (g+1)*nm : (g+1)*nm]}
		for i := range q.Keys {
			if isStr[i] {
				r.Keys[i] = ex.intern.str(gk.k[i])
			} else {
				r.Keys[i] = strconv.FormatInt(gk.k[i], 10)
			}
		}
		rows[g] = r
	}
	return rows
}

// SortRows orders rows by period, then keys.
func SortRows(rows []Row) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if !a.Period.Equal(b.Period) {
			return a.Period.Before(b.Period)
		}
		for k := range a.Keys {
			if a.Keys[k] != b.Keys[k] {
				return a.Keys[k] < b.Keys[k]
			}
		}
		return false
	})
}

func defaultWorkers() int { return runtime.GOMAXPROCS(0) }
