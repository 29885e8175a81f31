package schemas

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// Accessor reads one column of a dataset's records. It is compiled once
// (Dataset.Accessor) and then reads by a precomputed field offset, with no
// reflection and no allocation per call (except String on non-string
// columns, which formats the value). An Accessor is immutable and safe for
// concurrent use.
type Accessor struct {
	ds    int
	field Field
}

// Accessor compiles a reader for column.
func (d *Dataset) Accessor(column string) (Accessor, error) {
	i, ok := d.byName[column]
	if !ok {
		return Accessor{}, fmt.Errorf("schemas: dataset %s has no column %q", d.name, column)
	}
	return Accessor{ds: d.index, field: d.fields[i]}, nil
}

// Field is the column the accessor reads.
func (a Accessor) Field() Field { return a.field }

// Kind is the column's kind.
func (a Accessor) Kind() Kind { return a.field.Kind }

func (a Accessor) p(r Record) unsafe.Pointer {
	if r == nil || r.datasetIndex() != a.ds || a.field.Kind == 0 {
		return nil
	}
	return fieldPtr(r, &a.field)
}

// String returns the column as text: strings and bytes as they are,
// numbers in decimal, times as RFC 3339 with nanoseconds in UTC ("" for the
// zero time). It returns "" for a record of another dataset.
func (a Accessor) String(r Record) string {
	p := a.p(r)
	if p == nil {
		return ""
	}
	switch a.field.Kind {
	case KindString:
		return *(*string)(p)
	case KindBytes:
		return string(*(*[]byte)(p))
	case KindTime:
		t := *(*time.Time)(p)
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	case KindFloat64:
		return strconv.FormatFloat(*(*float64)(p), 'g', -1, 64)
	}
	v, _ := a.Int64(r)
	return strconv.FormatInt(v, 10)
}

// AppendString appends String(r) to dst without an intermediate string.
func (a Accessor) AppendString(dst []byte, r Record) []byte {
	p := a.p(r)
	if p == nil {
		return dst
	}
	switch a.field.Kind {
	case KindString:
		return append(dst, *(*string)(p)...)
	case KindBytes:
		return append(dst, *(*[]byte)(p)...)
	case KindTime:
		t := *(*time.Time)(p)
		if t.IsZero() {
			return dst
		}
		return t.UTC().AppendFormat(dst, time.RFC3339Nano)
	case KindFloat64:
		return strconv.AppendFloat(dst, *(*float64)(p), 'g', -1, 64)
	}
	v, _ := a.Int64(r)
	return strconv.AppendInt(dst, v, 10)
}

// Int64 returns a numeric column as int64 (times as Unix milliseconds,
// floats truncated). ok is false for string and bytes columns that do not
// hold a decimal integer, and for records of another dataset.
func (a Accessor) Int64(r Record) (v int64, ok bool) {
	p := a.p(r)
	if p == nil {
		return 0, false
	}
	switch a.field.Kind {
	case KindInt64:
		return *(*int64)(p), true
	case KindInt32:
		return int64(*(*int32)(p)), true
	case KindUint16:
		return int64(*(*uint16)(p)), true
	case KindFloat64:
		return int64(*(*float64)(p)), true
	case KindTime:
		t := *(*time.Time)(p)
		if t.IsZero() {
			return 0, false
		}
		return t.UnixMilli(), true
	case KindString:
		n, err := strconv.ParseInt(*(*string)(p), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Float64 returns a numeric column as float64 (times as Unix seconds with
// fraction). ok is false as for Int64.
func (a Accessor) Float64(r Record) (v float64, ok bool) {
	p := a.p(r)
	if p == nil {
		return 0, false
	}
	switch a.field.Kind {
	case KindFloat64:
		return *(*float64)(p), true
	case KindTime:
		t := *(*time.Time)(p)
		if t.IsZero() {
			return 0, false
		}
		return float64(t.UnixNano()) / 1e9, true
	case KindString:
		f, err := strconv.ParseFloat(*(*string)(p), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	n, ok := a.Int64(r)
	return float64(n), ok
}

// Time returns a time column; ok is false for other kinds.
func (a Accessor) Time(r Record) (time.Time, bool) {
	p := a.p(r)
	if p == nil || a.field.Kind != KindTime {
		return time.Time{}, false
	}
	return *(*time.Time)(p), true
}
