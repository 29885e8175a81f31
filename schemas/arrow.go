package schemas

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// BatchBuilder accumulates records of one dataset into an Arrow record
// batch with the dataset's ArrowSchema. It is not safe for concurrent use.
type BatchBuilder struct {
	ds  *Dataset
	rb  *array.RecordBuilder
	n   int
	app []func(Record)
	// RowSize: the fixed-width bytes of a row and the variable-length
	// fields (strings, bytes) whose lengths it adds.
	fixed   int64
	strs    []*Field
	byteses []*Field
	// The previous batch's rows and string bytes per column: the next
	// batch reserves as much up front instead of growing its buffers by
	// doubling (a copy and a zeroing each time).
	bins     []*array.BinaryBuilder
	hintRows int
	hintData []int
}

// NewBatchBuilder returns a builder for ds. mem may be nil for the Go
// allocator. Release it when done.
func NewBatchBuilder(ds *Dataset, mem memory.Allocator) *BatchBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &BatchBuilder{ds: ds, rb: array.NewRecordBuilder(mem, ds.schema)}
	b.app = make([]func(Record), len(ds.fields))
	for i := range ds.fields {
		f := &ds.fields[i]
		b.fixed += plainWidth(f.Kind)
		switch f.Kind {
		case KindString:
			b.strs = append(b.strs, f)
			fb := b.rb.Field(i).(*array.StringBuilder)
			b.bins = append(b.bins, fb.BinaryBuilder)
			b.app[i] = func(r Record) { fb.Append(*(*string)(fieldPtr(r, f))) }
		case KindBytes:
			b.byteses = append(b.byteses, f)
			fb := b.rb.Field(i).(*array.BinaryBuilder)
			b.bins = append(b.bins, fb)
			b.app[i] = func(r Record) { fb.Append(*(*[]byte)(fieldPtr(r, f))) }
		case KindInt64:
			fb := b.rb.Field(i).(*array.Int64Builder)
			b.app[i] = func(r Record) { fb.Append(*(*int64)(fieldPtr(r, f))) }
		case KindInt32:
			fb := b.rb.Field(i).(*array.Int32Builder)
			b.app[i] = func(r Record) { fb.Append(*(*int32)(fieldPtr(r, f))) }
		case KindUint16:
			fb := b.rb.Field(i).(*array.Uint16Builder)
			b.app[i] = func(r Record) { fb.Append(*(*uint16)(fieldPtr(r, f))) }
		case KindFloat64:
			fb := b.rb.Field(i).(*array.Float64Builder)
			b.app[i] = func(r Record) { fb.Append(*(*float64)(fieldPtr(r, f))) }
		case KindTime:
			fb := b.rb.Field(i).(*array.TimestampBuilder)
			b.app[i] = func(r Record) {
				t := *(*time.Time)(fieldPtr(r, f))
				if t.IsZero() {
					fb.AppendNull() // zero time (e.g. lineage not filled yet) is null
					return
				}
				fb.Append(arrow.Timestamp(t.UnixMicro()))
			}
		}
	}
	return b
}

// Dataset is the dataset the builder accepts.
func (b *BatchBuilder) Dataset() *Dataset { return b.ds }

// Append adds one record. It returns an error, and adds nothing, when r
// belongs to another dataset.
func (b *BatchBuilder) Append(r Record) error {
	if r == nil || r.datasetIndex() != b.ds.index {
		return fmt.Errorf("schemas: append %T to %s batch", r, b.ds.name)
	}
	if b.n == 0 && b.hintRows > 0 {
		b.rb.Reserve(b.hintRows)
		for i, fb := range b.bins {
			fb.ReserveData(b.hintData[i])
		}
	}
	for _, fn := range b.app {
		fn(r)
	}
	b.n++
	return nil
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

// Len is the number of records appended since the last NewRecordBatch.
func (b *BatchBuilder) Len() int { return b.n }

// NewRecordBatch returns the appended records as an Arrow record and resets
// the builder. The caller must Release the record.
func (b *BatchBuilder) NewRecordBatch() arrow.Record {
	b.hintRows = b.n
	b.hintData = b.hintData[:0]
	for _, fb := range b.bins {
		b.hintData = append(b.hintData, fb.DataLen())
	}
	b.n = 0
	return b.rb.NewRecord()
}

// Release frees the builder's buffers.
func (b *BatchBuilder) Release() { b.rb.Release() }

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
