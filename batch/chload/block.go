package chload

import (
	"cmp"
	"fmt"
	"slices"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/schemas"
)

// block gathers one insert block's rows from the chunks of a scan and
// appends them to a batch in the order of the table's ORDER BY key.
//
// Why sort here: a MergeTree sorts every inserted block by its key and
// permutes every column before it writes the part, unless the block is
// already sorted (ClickHouse checks, 18.16 included). That sort was about
// 43% of the server's CPU per loaded row. The key is a few low-cardinality
// strings and then the event time, and a file's rows arrive in time order,
// so the client can do it for much less: each row goes to the bucket of
// its key values as it is read (a counting sort that writes every bucket
// sequentially), the buckets are sent in key order, and a bucket's rows
// are only re-ordered by time when they came from several files.
//
// String values are copied into the bucket's arena rather than referenced
// in the Arrow chunk: sending buckets in key order then reads memory
// sequentially instead of jumping around the chunks, and the arenas hold
// no pointers for the garbage collector to scan.
type block struct {
	fields []schemas.Field
	// keyFields are the ORDER BY's leading string columns and tsField its
	// last column, the event time. Without that shape (sorted false) all
	// rows share one bucket in arrival order and the server sorts.
	keyFields []int
	isKey     []bool // per field
	// lowCard numbers the values of the other low-cardinality string
	// columns (nil for the rest): a row keeps a 4-byte id instead of a
	// copy of its value.
	lowCard []*keyCol
	tsField int
	sorted  bool

	keys    []keyCol
	buckets []*bucket
	pages   pageCache
	byIDs   map[[maxKeys]uint32]int32
	rows    int

	// per-chunk scratch
	keep   []int
	rowBkt []int32
	rowIDs [maxKeys][]uint32
	ids    []uint32

	// per-flush scratch
	order  []int32
	seq    []rowRef
	runs   []run
	pcs    []piece
	tmp    []rowRef
	idx    []int32
	secs   []int64
	counts []int32
	strs   []string
	u16    []uint16
	i32    []int32
	i64    []int64
	f64    []float64
	tsecs  []int64
	ms     []uint16
}

const maxKeys = 4

// bucket holds the rows of one key value combination, by column.
type bucket struct {
	key  [maxKeys]uint32 // value ids per key column
	rows int
	cols []colBuf // per field
}

// colBuf holds one column's values in one bucket.
type colBuf struct {
	pages  [][]byte // string values, concatenated into pages (see put)
	strs   []strRef // each row's string value in pages
	u16    []uint16
	i32    []int32
	i64    []int64
	f64    []float64
	micros []int64  // a time (a null time is the epoch, as ClickHouse stores it)
	ids    []uint32 // a low-cardinality string: the id of its value
}

// push appends v to s, doubling the capacity when s is full. A bucket's
// columns grow to hundreds of thousands of rows, where append grows by a
// quarter at a time and so copies every value several times over.
func push[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		s = slices.Grow(s, max(len(s), 256))
	}
	return append(s, v)
}

// strRef locates a string value in its column's pages.
type strRef struct{ page, off, n uint32 }

// Arena pages grow from minPage to maxPage bytes by doubling, so a bucket
// with few rows holds little memory and a large one few pages; filled
// pages are reused by the next block (pageCache), so after the first
// blocks there is neither allocation nor a copy from a growing slice.
const (
	minPageShift = 12 // 4 KiB
	maxPageShift = 18 // 256 KiB
)

// pageCache keeps emptied arena pages by size class.
type pageCache [maxPageShift - minPageShift + 1][][]byte

// put appends s to cb's pages and records where.
func (pc *pageCache) put(cb *colBuf, s string) {
	if len(s) == 0 {
		cb.strs = push(cb.strs, strRef{})
		return
	}
	last := len(cb.pages) - 1
	if last < 0 || len(cb.pages[last])+len(s) > cap(cb.pages[last]) {
		cb.pages = append(cb.pages, pc.get(len(cb.pages), len(s)))
		last++
	}
	p := cb.pages[last]
	cb.strs = push(cb.strs, strRef{page: uint32(last), off: uint32(len(p)), n: uint32(len(s))})
	cb.pages[last] = append(p, s...)
}

// get returns an empty page for a column's k-th page, large enough for n
// bytes.
func (pc *pageCache) get(k, n int) []byte {
	shift := min(minPageShift+k, maxPageShift)
	for shift < maxPageShift && 1<<shift < n {
		shift++
	}
	if 1<<shift < n {
		return make([]byte, 0, n) // an oversized value: its own page, not kept
	}
	c := &pc[shift-minPageShift]
	if l := len(*c); l > 0 {
		p := (*c)[l-1]
		*c = (*c)[:l-1]
		return p
	}
	return make([]byte, 0, 1<<shift)
}

// release returns cb's pages to the cache.
func (pc *pageCache) release(cb *colBuf) {
	for _, p := range cb.pages {
		for shift := minPageShift; shift <= maxPageShift; shift++ {
			if cap(p) == 1<<shift {
				pc[shift-minPageShift] = append(pc[shift-minPageShift], p[:0])
				break
			}
		}
	}
	clear(cb.pages)
	cb.pages = cb.pages[:0]
}

// keyCol numbers one key column's distinct values.
type keyCol struct {
	index map[string]uint32
	names []string
	dict  []uint32 // the current chunk's dictionary index -> id
}

func newBlock(ds *schemas.Dataset, fields []schemas.Field) *block {
	b := &block{fields: fields, isKey: make([]bool, len(fields)), tsField: -1, byIDs: map[[maxKeys]uint32]int32{}}
	pos := map[string]int{}
	for i, f := range fields {
		pos[f.Name] = i
	}
	order := ds.OrderBy()
	b.sorted = len(order) >= 1 && len(order) <= maxKeys+1
	for i, name := range order {
		fi, ok := pos[name]
		if !ok {
			b.sorted = false
			break
		}
		last := i == len(order)-1
		switch kind := fields[fi].Kind; {
		case last && kind == schemas.KindTime:
			b.tsField = fi
		case !last && kind == schemas.KindString:
			b.keyFields = append(b.keyFields, fi)
		default:
			b.sorted = false
		}
	}
	if !b.sorted {
		b.keyFields, b.tsField = nil, -1
	}
	for _, fi := range b.keyFields {
		b.isKey[fi] = true
	}
	b.keys = make([]keyCol, len(b.keyFields))
	for i := range b.keys {
		b.keys[i].index = map[string]uint32{}
	}
	b.lowCard = make([]*keyCol, len(fields))
	for fi, f := range fields {
		if f.LowCardinality && f.Kind == schemas.KindString && !b.isKey[fi] {
			b.lowCard[fi] = &keyCol{index: map[string]uint32{}}
		}
	}
	return b
}

// add gathers the chunk's rows in [from, to) (microseconds). Whenever the
// block reaches limit rows it calls full, which must flush it, and goes
// on with the chunk's remaining rows. It returns how many rows it added.
func (b *block) add(c *source.Chunk, from, to int64, limit int, full func() error) (int, error) {
	b.keep = b.keep[:0]
	if c.InInterval {
		for r := 0; r < c.Rows; r++ {
			b.keep = append(b.keep, r)
		}
	} else {
		for r, t := range c.Timestamp {
			if int64(t) >= from && int64(t) < to {
				b.keep = append(b.keep, r)
			}
		}
	}
	keep := b.keep
	for off := 0; off < len(keep); {
		m := min(len(keep)-off, limit-b.rows)
		if err := b.addRows(c, keep[off:off+m]); err != nil {
			return off, err
		}
		off += m
		if b.rows >= limit {
			if err := full(); err != nil {
				return off, err
			}
		}
	}
	return len(keep), nil
}

// addRows gathers the chunk's rows listed in rows.
func (b *block) addRows(c *source.Chunk, rows []int) error {
	n := len(rows)
	row := func(i int) int { return rows[i] }
	if err := b.assign(c, n, row); err != nil {
		return err
	}
	for fi, f := range b.fields {
		if b.isKey[fi] {
			continue // the bucket's key holds it
		}
		arr := c.Cols[fi]
		if lc := b.lowCard[fi]; lc != nil {
			b.ids = slices.Grow(b.ids[:0], n)[:n]
			if err := lc.number(b.ids, arr, row); err != nil {
				return fmt.Errorf("column %s: %w", f.Name, err)
			}
			for i, id := range b.ids {
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.ids = push(cb.ids, id)
			}
			continue
		}
		switch f.Kind {
		case schemas.KindString, schemas.KindBytes:
			switch a := arr.(type) {
			case nil:
				for i := 0; i < n; i++ {
					cb := &b.buckets[b.rowBkt[i]].cols[fi]
					cb.strs = push(cb.strs, strRef{})
				}
			case *array.Dictionary:
				d, ok := a.Dictionary().(*array.String)
				if !ok {
					return fmt.Errorf("column %s: dictionary of %s", f.Name, a.Dictionary().DataType())
				}
				for i := 0; i < n; i++ {
					var v string
					if r := row(i); !a.IsNull(r) {
						v = d.Value(a.GetValueIndex(r))
					}
					b.pages.put(&b.buckets[b.rowBkt[i]].cols[fi], v)
				}
			case *array.String:
				for i := 0; i < n; i++ {
					b.pages.put(&b.buckets[b.rowBkt[i]].cols[fi], a.Value(row(i)))
				}
			case *array.Binary:
				for i := 0; i < n; i++ {
					v := a.Value(row(i))
					b.pages.put(&b.buckets[b.rowBkt[i]].cols[fi], unsafe.String(unsafe.SliceData(v), len(v)))
				}
			default:
				return fmt.Errorf("column %s: unexpected %s", f.Name, arr.DataType())
			}
		case schemas.KindUint16:
			a, _ := arr.(*array.Uint16)
			for i := 0; i < n; i++ {
				var v uint16
				if a != nil {
					v = a.Value(row(i))
				}
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.u16 = push(cb.u16, v)
			}
		case schemas.KindInt32:
			a, _ := arr.(*array.Int32)
			for i := 0; i < n; i++ {
				var v int32
				if a != nil {
					v = a.Value(row(i))
				}
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.i32 = push(cb.i32, v)
			}
		case schemas.KindInt64:
			a, _ := arr.(*array.Int64)
			for i := 0; i < n; i++ {
				var v int64
				if a != nil {
					v = a.Value(row(i))
				}
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.i64 = push(cb.i64, v)
			}
		case schemas.KindFloat64:
			a, _ := arr.(*array.Float64)
			for i := 0; i < n; i++ {
				var v float64
				if a != nil {
					v = a.Value(row(i))
				}
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.f64 = push(cb.f64, v)
			}
		case schemas.KindTime:
			a, _ := arr.(*array.Timestamp)
			var unit arrow.TimeUnit
			if a != nil {
				unit = a.DataType().(*arrow.TimestampType).Unit
			}
			for i := 0; i < n; i++ {
				var us int64
				if a != nil {
					if r := row(i); !a.IsNull(r) {
						us = toMicros(a.Value(r), unit)
					}
				}
				cb := &b.buckets[b.rowBkt[i]].cols[fi]
				cb.micros = push(cb.micros, us)
			}
		default:
			return fmt.Errorf("column %s: kind %s", f.Name, f.Kind)
		}
	}
	for i := 0; i < n; i++ {
		b.buckets[b.rowBkt[i]].rows++
	}
	b.rows += n
	return nil
}

// assign sets b.rowBkt, the bucket of each of the chunk's n rows.
func (b *block) assign(c *source.Chunk, n int, row func(int) int) error {
	b.rowBkt = slices.Grow(b.rowBkt[:0], n)[:n]
	if len(b.keyFields) == 0 {
		if len(b.buckets) == 0 {
			b.newBucket([maxKeys]uint32{})
		}
		clear(b.rowBkt)
		return nil
	}
	for k, fi := range b.keyFields {
		ids := slices.Grow(b.rowIDs[k][:0], n)[:n]
		b.rowIDs[k] = ids
		if err := b.keys[k].number(ids, c.Cols[fi], row); err != nil {
			return fmt.Errorf("column %s: %w", b.fields[fi].Name, err)
		}
	}
	var last [maxKeys]uint32
	lastBkt := int32(-1)
	for i := 0; i < n; i++ {
		var key [maxKeys]uint32
		for k := range b.keyFields {
			key[k] = b.rowIDs[k][i]
		}
		if lastBkt < 0 || key != last {
			bk, ok := b.byIDs[key]
			if !ok {
				bk = b.newBucket(key)
			}
			last, lastBkt = key, bk
		}
		b.rowBkt[i] = lastBkt
	}
	return nil
}

func (b *block) newBucket(key [maxKeys]uint32) int32 {
	bk := int32(len(b.buckets))
	b.buckets = append(b.buckets, &bucket{key: key, cols: make([]colBuf, len(b.fields))})
	b.byIDs[key] = bk
	return bk
}

func (k *keyCol) id(s string) uint32 {
	if id, ok := k.index[s]; ok {
		return id
	}
	id := uint32(len(k.names))
	s = string([]byte(s)) // the index outlives the chunk's Arrow memory
	k.index[s] = id
	k.names = append(k.names, s)
	return id
}

// number sets ids[i] to the id of the value of row(i) in arr.
func (k *keyCol) number(ids []uint32, arr arrow.Array, row func(int) int) error {
	switch a := arr.(type) {
	case nil:
		empty := k.id("")
		for i := range ids {
			ids[i] = empty
		}
	case *array.Dictionary:
		d, ok := a.Dictionary().(*array.String)
		if !ok {
			return fmt.Errorf("dictionary of %s", a.Dictionary().DataType())
		}
		k.dict = k.dict[:0]
		for j := 0; j < d.Len(); j++ {
			k.dict = append(k.dict, k.id(d.Value(j)))
		}
		empty := k.id("")
		for i := range ids {
			if r := row(i); a.IsNull(r) {
				ids[i] = empty
			} else {
				ids[i] = k.dict[a.GetValueIndex(r)]
			}
		}
	case *array.String:
		for i := range ids {
			ids[i] = k.id(a.Value(row(i)))
		}
	default:
		return fmt.Errorf("unexpected %s", arr.DataType())
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func toMicros(t arrow.Timestamp, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return int64(t) * 1e6
	case arrow.Millisecond:
		return int64(t) * 1e3
	case arrow.Microsecond:
		return int64(t)
	default:
		return floorDiv(int64(t), 1e3)
	}
}

// flush sends the gathered rows to batch, bucket by bucket in key order
// and by time within a bucket, in network blocks of sendRows rows, and
// empties the block. The server squashes those blocks back into one (see
// Loader.FlushRows), which is therefore sorted.
func (b *block) flush(batch driver.Batch, sendRows int) error {
	defer b.reset()
	if b.rows == 0 {
		return nil
	}
	// Buckets in key order.
	b.order = b.order[:0]
	for i, bk := range b.buckets {
		if bk.rows > 0 {
			b.order = append(b.order, int32(i))
		}
	}
	slices.SortFunc(b.order, func(x, y int32) int {
		kx, ky := &b.buckets[x].key, &b.buckets[y].key
		for k := range b.keys {
			if c := cmp.Compare(b.keys[k].names[kx[k]], b.keys[k].names[ky[k]]); c != 0 {
				return c
			}
		}
		return 0
	})
	// seq: every row in order, each bucket's rows by time; runs: seq cut
	// by bucket.
	b.seq, b.runs = b.seq[:0], b.runs[:0]
	for _, bi := range b.order {
		bk := b.buckets[bi]
		start := len(b.seq)
		for r := 0; r < bk.rows; r++ {
			b.seq = append(b.seq, rowRef{bucket: bi, row: int32(r)})
		}
		inOrder := true
		if b.tsField >= 0 {
			inOrder = b.sortByTime(b.seq[start:], bk.cols[b.tsField].micros)
		}
		b.runs = append(b.runs, run{bucket: bk, start: start, end: len(b.seq), inOrder: inOrder})
	}
	for lo := 0; lo < len(b.seq); lo += sendRows {
		if err := b.appendRows(batch, lo, min(lo+sendRows, len(b.seq))); err != nil {
			return err
		}
		if err := batch.Flush(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return nil
}

// rowRef is a row of a bucket.
type rowRef struct{ bucket, row int32 }

// run is the stretch [start, end) of seq that holds the rows of one
// bucket; inOrder says they are its rows 0, 1, 2, ... (not reordered by
// time), so a column's values can be copied as one slice.
type run struct {
	bucket     *bucket
	start, end int
	inOrder    bool
}

// piece is the part of a run inside the rows being appended.
type piece struct {
	bk      *bucket
	rows    []rowRef
	inOrder bool
}

// pieces cuts seq[lo:hi) into the pieces of its runs, reusing b.pcs.
func (b *block) pieces(lo, hi int) []piece {
	b.pcs = b.pcs[:0]
	i, _ := slices.BinarySearchFunc(b.runs, lo, func(r run, x int) int {
		if r.end <= x {
			return -1
		}
		if r.start > x {
			return 1
		}
		return 0
	})
	for ; i < len(b.runs) && b.runs[i].start < hi; i++ {
		r := b.runs[i]
		a, z := max(r.start, lo), min(r.end, hi)
		b.pcs = append(b.pcs, piece{bk: r.bucket, rows: b.seq[a:z], inOrder: r.inOrder})
	}
	return b.pcs
}

// gather appends to dst the values of src at rows: a slice copy when the
// rows are consecutive.
func gather[T any](dst, src []T, p piece) []T {
	if p.inOrder {
		r0 := int(p.rows[0].row)
		return append(dst, src[r0:r0+len(p.rows)]...)
	}
	for _, ref := range p.rows {
		dst = append(dst, src[ref.row])
	}
	return dst
}

// appendRows appends the rows seq[lo:hi) to batch, column by column,
// bucket by bucket: the bucket's column is looked up once per piece, not
// once per value.
func (b *block) appendRows(batch driver.Batch, lo, hi int) error {
	pcs := b.pieces(lo, hi)
	col := 0
	for fi, f := range b.fields {
		var err error
		switch f.Kind {
		case schemas.KindString, schemas.KindBytes:
			b.strs = b.strs[:0]
			switch lc := b.lowCard[fi]; {
			case b.isKey[fi]:
				k := slices.Index(b.keyFields, fi)
				names := b.keys[k].names
				for _, p := range pcs {
					v := names[p.bk.key[k]]
					for range p.rows {
						b.strs = append(b.strs, v)
					}
				}
			case lc != nil:
				for _, p := range pcs {
					ids := p.bk.cols[fi].ids
					for _, ref := range p.rows {
						b.strs = append(b.strs, lc.names[ids[ref.row]])
					}
				}
			default:
				for _, p := range pcs {
					cb := &p.bk.cols[fi]
					for _, ref := range p.rows {
						v := cb.strs[ref.row]
						if v.n == 0 {
							b.strs = append(b.strs, "")
						} else {
							b.strs = append(b.strs, unsafe.String(&cb.pages[v.page][v.off], int(v.n)))
						}
					}
				}
			}
			err = batch.Column(col).Append(b.strs)
			clear(b.strs) // no references into the arenas past the flush
		case schemas.KindUint16:
			b.u16 = b.u16[:0]
			for _, p := range pcs {
				b.u16 = gather(b.u16, p.bk.cols[fi].u16, p)
			}
			err = batch.Column(col).Append(b.u16)
		case schemas.KindInt32:
			b.i32 = b.i32[:0]
			for _, p := range pcs {
				b.i32 = gather(b.i32, p.bk.cols[fi].i32, p)
			}
			err = batch.Column(col).Append(b.i32)
		case schemas.KindInt64:
			b.i64 = b.i64[:0]
			for _, p := range pcs {
				b.i64 = gather(b.i64, p.bk.cols[fi].i64, p)
			}
			err = batch.Column(col).Append(b.i64)
		case schemas.KindFloat64:
			b.f64 = b.f64[:0]
			for _, p := range pcs {
				b.f64 = gather(b.f64, p.bk.cols[fi].f64, p)
			}
			err = batch.Column(col).Append(b.f64)
		case schemas.KindTime:
			// Whole seconds as int64, which the driver takes for a
			// DateTime as they are: cheaper than a time.Time per value.
			b.tsecs, b.ms = b.tsecs[:0], b.ms[:0]
			for _, p := range pcs {
				micros := p.bk.cols[fi].micros
				for _, ref := range p.rows {
					us := micros[ref.row]
					sec := floorDiv(us, 1e6)
					b.tsecs = append(b.tsecs, sec)
					b.ms = append(b.ms, uint16((us-sec*1e6)/1000))
				}
			}
			if err = batch.Column(col).Append(b.tsecs); err == nil {
				col++
				if err = batch.Column(col).Append(b.ms); err != nil {
					err = fmt.Errorf("column %s_ms: %w", f.Name, err)
				}
			}
		default:
			err = fmt.Errorf("kind %s", f.Kind)
		}
		if err != nil {
			return fmt.Errorf("column %s: %w", f.Name, err)
		}
		col++
	}
	return nil
}

// maxBuckets bounds the buckets kept from one block to the next: a key
// with more combinations than that is not low-cardinality, and keeping
// every bucket's buffers would hold memory for rows long sent.
const maxBuckets = 4096

// maxLowCard bounds the values a low-cardinality column's index keeps
// from one block to the next.
const maxLowCard = 1 << 16

// reset empties the block, keeping the buffers for the next one.
func (b *block) reset() {
	if len(b.buckets) > maxBuckets {
		b.buckets = nil
		clear(b.byIDs)
		for i := range b.keys {
			b.keys[i] = keyCol{index: map[string]uint32{}}
		}
	}
	for i, lc := range b.lowCard {
		if lc != nil && len(lc.names) > maxLowCard {
			// Not low-cardinality after all: do not carry the index on.
			b.lowCard[i] = &keyCol{index: map[string]uint32{}}
		}
	}
	for _, bk := range b.buckets {
		bk.rows = 0
		for i := range bk.cols {
			cb := &bk.cols[i]
			b.pages.release(cb)
			cb.strs = cb.strs[:0]
			cb.u16, cb.i32, cb.i64, cb.f64, cb.micros, cb.ids = cb.u16[:0], cb.i32[:0], cb.i64[:0], cb.f64[:0], cb.micros[:0], cb.ids[:0]
		}
	}
	b.rows = 0
}

// sortByTime orders a bucket's rows by the second of their time (the key's
// DateTime column holds seconds; rows within one second may stay in any
// order). A block spans a short stretch of time, so this is a stable
// counting sort by second, unless the rows are in order already (one
// file, no late events) or span too many seconds. It reports whether the
// rows were in order already, hence left as they were.
func (b *block) sortByTime(rows []rowRef, micros []int64) (kept bool) {
	b.secs = slices.Grow(b.secs[:0], len(rows))[:len(rows)]
	lo, hi := int64(1<<63-1), int64(-1<<63)
	sorted := true
	for i, ref := range rows {
		s := floorDiv(micros[ref.row], 1e6)
		b.secs[i] = s
		if i > 0 && s < b.secs[i-1] {
			sorted = false
		}
		lo, hi = min(lo, s), max(hi, s)
	}
	if sorted {
		return true
	}
	if span := hi - lo + 1; span <= int64(2*len(rows)+1024) {
		b.counts = slices.Grow(b.counts[:0], int(span)+1)[:span+1]
		clear(b.counts)
		for _, s := range b.secs {
			b.counts[s-lo+1]++
		}
		for i := 1; i < len(b.counts); i++ {
			b.counts[i] += b.counts[i-1]
		}
		b.tmp = slices.Grow(b.tmp[:0], len(rows))[:len(rows)]
		for i, s := range b.secs {
			b.tmp[b.counts[s-lo]] = rows[i]
			b.counts[s-lo]++
		}
		copy(rows, b.tmp)
		return false
	}
	idx := b.tmpIdx(len(rows))
	slices.SortStableFunc(idx, func(x, y int32) int { return cmp.Compare(b.secs[x], b.secs[y]) })
	b.tmp = slices.Grow(b.tmp[:0], len(rows))[:len(rows)]
	for i, x := range idx {
		b.tmp[i] = rows[x]
	}
	copy(rows, b.tmp)
	return false
}

func (b *block) tmpIdx(n int) []int32 {
	b.idx = slices.Grow(b.idx[:0], n)[:n]
	for i := range b.idx {
		b.idx[i] = int32(i)
	}
	return b.idx
}
