package schemas

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// BatchBuilder accumulates records of one dataset into an Arrow record
// batch with the dataset's ArrowSchema. It is not safe for concurrent use.
//
// It writes each column's Arrow buffers directly (values, offsets and, for
// times, the validity bitmap) rather than through Arrow's per-type
// builders, whose per-value bookkeeping (capacity checks, a validity bit
// per value, a growth step per doubling) was most of the consumer's cost
// of appending a record. Each batch reserves the previous batch's sizes up
// front, so a steady stream of equal batches never grows a buffer.
type BatchBuilder struct {
	ds   *Dataset
	mem  memory.Allocator
	n    int
	cols []column
	// RowSize: the fixed-width bytes of a row and the variable-length
	// fields (strings, bytes) whose lengths it adds.
	fixed   int64
	strs    []*Field
	byteses []*Field
	// started: the current batch's buffers exist (made at its first
	// Append, sized by the previous batch).
	started bool
}

// column is the buffers of one column of the batch being built.
type column struct {
	f *Field
	// vals: fixed-width values, or a string column's 32-bit offsets.
	vals colBuf
	// data: a string column's bytes.
	data colBuf
	// valid: a time column's validity bitmap (zero time is null).
	valid colBuf
	nulls int
	width int // bytes per entry of vals
}

// colBuf is an append-only buffer from the builder's allocator.
type colBuf struct {
	buf *memory.Buffer
	b   []byte // buf.Buf(): the whole capacity
	n   int    // bytes used
	// hint is the size the previous batch reached.
	hint int
}

func (c *colBuf) start(mem memory.Allocator) {
	c.buf = memory.NewResizableBuffer(mem)
	// An eighth more than the previous batch: batches of equal rows vary
	// a little in bytes, and one byte over the hint doubled the buffer
	// (an allocation and a copy of everything written).
	c.buf.Reserve(max(c.hint+c.hint/8, 64))
	c.b, c.n = c.buf.Buf(), 0
}

// grow makes room for extra more bytes.
func (c *colBuf) grow(extra int) {
	if c.n+extra > len(c.b) {
		c.buf.Reserve(max(2*len(c.b), c.n+extra))
		c.b = c.buf.Buf()
	}
}

// take hands the buffer, sized to what was written, to the caller.
func (c *colBuf) take() *memory.Buffer {
	c.buf.ResizeNoShrink(c.n)
	out := c.buf
	c.hint, c.buf, c.b, c.n = c.n, nil, nil, 0
	return out
}

func (c *colBuf) release() {
	if c.buf != nil {
		c.buf.Release()
		c.buf, c.b, c.n = nil, nil, 0
	}
}

// NewBatchBuilder returns a builder for ds. mem may be nil for the Go
// allocator. Release it when done.
func NewBatchBuilder(ds *Dataset, mem memory.Allocator) *BatchBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &BatchBuilder{ds: ds, mem: mem, cols: make([]column, len(ds.fields))}
	for i := range ds.fields {
		f := &ds.fields[i]
		b.fixed += plainWidth(f.Kind)
		c := &b.cols[i]
		c.f = f
		switch f.Kind {
		case KindString:
			b.strs = append(b.strs, f)
			c.width = 4
		case KindBytes:
			b.byteses = append(b.byteses, f)
			c.width = 4
		case KindInt64, KindFloat64, KindTime:
			c.width = 8
		case KindInt32:
			c.width = 4
		case KindUint16:
			c.width = 2
		}
	}
	return b
}

// Dataset is the dataset the builder accepts.
func (b *BatchBuilder) Dataset() *Dataset { return b.ds }

func (b *BatchBuilder) start() {
	for i := range b.cols {
		c := &b.cols[i]
		c.vals.start(b.mem)
		c.nulls = 0
		switch c.f.Kind {
		case KindString, KindBytes:
			c.data.start(b.mem)
			c.vals.b[0], c.vals.b[1], c.vals.b[2], c.vals.b[3] = 0, 0, 0, 0 // first offset
			c.vals.n = 4
		case KindTime:
			c.valid.start(b.mem)
		}
	}
	b.started = true
}

// plainWidth is what one value of kind k takes PLAIN-encoded in Parquet,
// besides a string's bytes: its 4-byte length, an INT32 for 16- and
// 32-bit integers, 8 bytes for the rest.
func plainWidth(k Kind) int64 {
	switch k {
	case KindString, KindBytes, KindInt32, KindUint16:
		return 4
	}
	return 8
}

// RowSize estimates the bytes r takes in a Parquet row group: its values
// PLAIN-encoded, nulls counted as values. Dictionary encoding and
// compression only shrink repeated values, so writers size row groups
// with it. r must belong to the builder's dataset (0 otherwise).
func (b *BatchBuilder) RowSize(r Record) int64 {
	if r == nil || r.datasetIndex() != b.ds.index {
		return 0
	}
	n := b.fixed
	for _, f := range b.strs {
		n += int64(len(*(*string)(fieldPtr(r, f))))
	}
	for _, f := range b.byteses {
		n += int64(len(*(*[]byte)(fieldPtr(r, f))))
	}
	return n
}

// Append adds one record. It returns an error, and adds nothing, when r
// belongs to another dataset or its strings would take a column past the
// 2 GiB a batch's 32-bit offsets can address.
func (b *BatchBuilder) Append(r Record) error {
	if r == nil || r.datasetIndex() != b.ds.index {
		return fmt.Errorf("schemas: append %T to %s batch", r, b.ds.name)
	}
	if !b.started {
		b.start()
	}
	for i := range b.cols {
		c := &b.cols[i]
		var l int
		switch c.f.Kind {
		case KindString:
			l = len(*(*string)(fieldPtr(r, c.f)))
		case KindBytes:
			l = len(*(*[]byte)(fieldPtr(r, c.f)))
		default:
			continue
		}
		if c.data.n+l > math.MaxInt32 {
			return fmt.Errorf("schemas: %s batch: column %s over 2 GiB", b.ds.name, c.f.Name)
		}
	}
	row := b.n
	for i := range b.cols {
		c := &b.cols[i]
		p := fieldPtr(r, c.f)
		c.vals.grow(c.width)
		v := c.vals.b[c.vals.n:]
		c.vals.n += c.width
		switch c.f.Kind {
		case KindString:
			s := *(*string)(p)
			c.data.grow(len(s))
			c.data.n += copy(c.data.b[c.data.n:], s)
			binary.LittleEndian.PutUint32(v, uint32(c.data.n))
		case KindBytes:
			s := *(*[]byte)(p)
			c.data.grow(len(s))
			c.data.n += copy(c.data.b[c.data.n:], s)
			binary.LittleEndian.PutUint32(v, uint32(c.data.n))
		case KindInt64:
			binary.LittleEndian.PutUint64(v, uint64(*(*int64)(p)))
		case KindInt32:
			binary.LittleEndian.PutUint32(v, uint32(*(*int32)(p)))
		case KindUint16:
			binary.LittleEndian.PutUint16(v, *(*uint16)(p))
		case KindFloat64:
			binary.LittleEndian.PutUint64(v, math.Float64bits(*(*float64)(p)))
		case KindTime:
			if row&7 == 0 {
				c.valid.grow(1)
				c.valid.b[c.valid.n] = 0
				c.valid.n++
			}
			t := (*time.Time)(p)
			if t.IsZero() {
				// Zero time (e.g. lineage not filled yet) is null.
				binary.LittleEndian.PutUint64(v, 0)
				c.nulls++
				continue
			}
			binary.LittleEndian.PutUint64(v, uint64(t.UnixMicro()))
			c.valid.b[row>>3] |= 1 << (row & 7)
		}
	}
	b.n++
	return nil
}

// Len is the number of records appended since the last NewRecordBatch.
func (b *BatchBuilder) Len() int { return b.n }

// NewRecordBatch returns the appended records as an Arrow record and resets
// the builder. The caller must Release the record.
func (b *BatchBuilder) NewRecordBatch() arrow.Record {
	if !b.started {
		b.start()
	}
	n := b.n
	arrs := make([]arrow.Array, len(b.cols))
	for i := range b.cols {
		c := &b.cols[i]
		var bufs []*memory.Buffer
		nulls := 0
		switch c.f.Kind {
		case KindString, KindBytes:
			bufs = []*memory.Buffer{nil, c.vals.take(), c.data.take()}
		case KindTime:
			valid := c.valid.take()
			if c.nulls == 0 {
				valid.Release()
				valid = nil
			}
			nulls = c.nulls
			bufs = []*memory.Buffer{valid, c.vals.take()}
		default:
			bufs = []*memory.Buffer{nil, c.vals.take()}
		}
		d := array.NewData(c.f.Arrow, n, bufs, nil, nulls, 0)
		arrs[i] = array.MakeFromData(d)
		d.Release()
		for _, buf := range bufs {
			if buf != nil {
				buf.Release() // the array data holds its own reference
			}
		}
	}
	rec := array.NewRecord(b.ds.schema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	b.n, b.started = 0, false
	return rec
}

// Release frees the builder's buffers.
func (b *BatchBuilder) Release() {
	for i := range b.cols {
		c := &b.cols[i]
		c.vals.release()
		c.data.release()
		c.valid.release()
	}
	b.n, b.started = 0, false
}

// ReadRows decodes every row of rec into a fresh record of ds and calls fn
// with it. Columns are matched by name, so files written by an older or
// newer schema version read fine: columns rec lacks keep their zero value,
// columns ds does not know are ignored. A column whose type does not match
// the field's is an error. Iteration stops at fn's first error.
func ReadRows(ds *Dataset, rec arrow.Record, fn func(Record) error) error {
	type col struct {
		f   *Field
		arr arrow.Array
	}
	sch := rec.Schema()
	var cols []col
	for i := range ds.fields {
		f := &ds.fields[i]
		idx := sch.FieldIndices(f.Name)
		if len(idx) == 0 {
			continue
		}
		arr := rec.Column(idx[0])
		if !typeCompatible(f, arr.DataType()) {
			return fmt.Errorf("schemas: %s.%s: column type %s, want %s", ds.name, f.Name, arr.DataType(), f.Arrow)
		}
		cols = append(cols, col{f, arr})
	}
	n := int(rec.NumRows())
	for row := 0; row < n; row++ {
		r := ds.New()
		for _, c := range cols {
			if c.arr.IsNull(row) {
				continue
			}
			p := fieldPtr(r, c.f)
			switch a := c.arr.(type) {
			case *array.String:
				// Value aliases the Arrow buffer, which the caller releases.
				*(*string)(p) = strings.Clone(a.Value(row))
			case *array.LargeString:
				*(*string)(p) = strings.Clone(a.Value(row))
			case *array.Binary:
				*(*[]byte)(p) = append([]byte(nil), a.Value(row)...)
			case *array.LargeBinary:
				*(*[]byte)(p) = append([]byte(nil), a.Value(row)...)
			case *array.Int64:
				*(*int64)(p) = a.Value(row)
			case *array.Int32:
				*(*int32)(p) = a.Value(row)
			case *array.Uint16:
				*(*uint16)(p) = a.Value(row)
			case *array.Float64:
				*(*float64)(p) = a.Value(row)
			case *array.Timestamp:
				unit := a.DataType().(*arrow.TimestampType).Unit
				*(*time.Time)(p) = a.Value(row).ToTime(unit).UTC()
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// typeCompatible accepts the field's own type and the variants a Parquet
// reader may hand back for it (large strings, other timestamp units).
func typeCompatible(f *Field, dt arrow.DataType) bool {
	switch f.Kind {
	case KindString:
		return dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING
	case KindBytes:
		return dt.ID() == arrow.BINARY || dt.ID() == arrow.LARGE_BINARY
	case KindTime:
		return dt.ID() == arrow.TIMESTAMP
	}
	return arrow.TypeEqual(dt, f.Arrow)
}
