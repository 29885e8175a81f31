package rules

import (
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"github.com/lambdalog/lambdalog/schemas"
)

// col reads one column of one dataset's records. Rules evaluate a few
// columns per event and rule, and schemas.Accessor, which is general
// (every kind, any record, copied by value with its whole Field), was a
// sizeable share of the engine's time. So string and integer columns are
// read straight from the record struct, at an offset found once with
// reflect and checked against the accessor on a probe record; other kinds
// (times, bytes) and any column that fails the check go through the
// accessor.
type col struct {
	acc    schemas.Accessor
	kind   schemas.Kind
	direct bool
	slot   int8    // recordSlot of the dataset's record type
	off    uintptr // field offset in the record struct
}

// recordSlot numbers the record types a column can read directly, and
// returns the record's address. It is a type switch, so it needs nothing
// from the interface's layout.
func recordSlot(rec schemas.Record) (int8, unsafe.Pointer) {
	switch r := rec.(type) {
	case *schemas.Auth:
		if r != nil {
			return 0, unsafe.Pointer(r)
		}
	case *schemas.Firewall:
		if r != nil {
			return 1, unsafe.Pointer(r)
		}
	case *schemas.Web:
		if r != nil {
			return 2, unsafe.Pointer(r)
		}
	case *schemas.IDS:
		if r != nil {
			return 3, unsafe.Pointer(r)
		}
	case *schemas.Syslog:
		if r != nil {
			return 4, unsafe.Pointer(r)
		}
	}
	return -1, nil
}

// newCol resolves acc, a column of dataset d.
func newCol(d *schemas.Dataset, acc schemas.Accessor) col {
	c := col{acc: acc, kind: acc.Kind(), slot: -1}
	proto := d.New()
	slot, p := recordSlot(proto)
	if slot < 0 {
		return c
	}
	v := reflect.ValueOf(proto).Elem()
	var off uintptr
	for _, name := range strings.Split(acc.Field().GoName, ".") {
		if v.Kind() != reflect.Struct {
			return c
		}
		f, ok := v.Type().FieldByName(name)
		if !ok || len(f.Index) != 1 {
			return c
		}
		off += f.Offset
		v = v.Field(f.Index[0])
	}
	// Write a probe value through reflect and require the accessor to read
	// it back the same way as the direct read.
	var want string
	switch {
	case c.kind == schemas.KindString && v.Kind() == reflect.String:
		v.SetString("probe\x1fvalue")
		want = "probe\x1fvalue"
	case c.kind == schemas.KindInt64 && v.Kind() == reflect.Int64,
		c.kind == schemas.KindInt32 && v.Kind() == reflect.Int32:
		v.SetInt(-1234567)
		want = "-1234567"
	case c.kind == schemas.KindUint16 && v.Kind() == reflect.Uint16:
		v.SetUint(54321)
		want = "54321"
	default:
		return c
	}
	c.slot, c.off, c.direct = slot, off, true
	got := ""
	if c.kind == schemas.KindString {
		got = c.str(proto)
	} else if n, ok := c.int64(proto); ok {
		got = strconv.FormatInt(n, 10)
	}
	if got != want || acc.String(proto) != want || unsafe.Pointer(v.Addr().Pointer()) != unsafe.Add(p, off) {
		return col{acc: acc, kind: acc.Kind(), slot: -1}
	}
	return c
}

// ptr is the column's address in rec, nil for a record of another
// dataset.
func (c *col) ptr(rec schemas.Record) unsafe.Pointer {
	slot, p := recordSlot(rec)
	if slot != c.slot {
		return nil
	}
	return unsafe.Add(p, c.off)
}

// str is Accessor.String for string columns.
func (c *col) str(rec schemas.Record) string {
	if !c.direct || c.kind != schemas.KindString {
		return c.acc.String(rec)
	}
	if p := c.ptr(rec); p != nil {
		return *(*string)(p)
	}
	return ""
}

// int64 is Accessor.Int64 for integer columns.
func (c *col) int64(rec schemas.Record) (int64, bool) {
	if !c.direct || c.kind == schemas.KindString {
		return c.acc.Int64(rec)
	}
	p := c.ptr(rec)
	if p == nil {
		return 0, false
	}
	switch c.kind {
	case schemas.KindInt64:
		return *(*int64)(p), true
	case schemas.KindInt32:
		return int64(*(*int32)(p)), true
	case schemas.KindUint16:
		return int64(*(*uint16)(p)), true
	}
	return c.acc.Int64(rec)
}

// float64 is Accessor.Float64.
func (c *col) float64(rec schemas.Record) (float64, bool) {
	if !c.direct || c.kind == schemas.KindString {
		return c.acc.Float64(rec)
	}
	n, ok := c.int64(rec)
	return float64(n), ok
}

// appendString is Accessor.AppendString.
func (c *col) appendString(dst []byte, rec schemas.Record) []byte {
	if c.direct && c.kind == schemas.KindString {
		return append(dst, c.str(rec)...)
	}
	return c.acc.AppendString(dst, rec)
}
