package service

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/lambdalog/lambdalog/schemas"
)

// A repartition record's value is the parsed record in a compact binary
// form, not the raw line: the consuming instance then neither parses the
// line a second time nor allocates the five headers per record the first
// version carried (profiling BenchmarkServiceEndToEnd showed the second
// parse, the header allocations of the fetch path and the larger values
// through produce, broker and fetch as most of repartitioning's cost).
//
//	byte    rpMagic (version 1; a first-version record has headers instead)
//	byte    flags (rpWithOriginal: event_original is included)
//	uvarint n, n bytes   dataset name
//	4 bytes  fingerprint of the dataset's columns (names, kinds), little endian
//	uvarint n, n bytes   origin topic
//	varint  origin partition
//	varint  origin offset
//	every column of the dataset in schema order, event_original only with
//	rpWithOriginal: strings and bytes as uvarint length + bytes, integers
//	as varints, floats as 8 bytes little endian, times as 0 (zero time) or
//	1 + varint Unix nanoseconds.
//
// The fingerprint makes an instance refuse (count as parse failures, with a
// warning) records written by a build with another column layout instead
// of misreading them; see docs/realtime.md, "Repartitioning".
const (
	rpMagic        = 0xB1
	rpWithOriginal = 1
)

// rpCol is one column of a record struct: its kind and byte offset.
type rpCol struct {
	kind     schemas.Kind
	off      uintptr
	original bool // event_original, the raw line: only when a rule reads it
}

// rpSchema encodes and decodes the records of one dataset.
type rpSchema struct {
	ds   *schemas.Dataset
	name string
	fp   uint32
	cols []rpCol
}

var rpSchemas = sync.OnceValues(buildRPSchemas)

// buildRPSchemas resolves every column of every dataset to its offset in
// the record struct with reflect, once, and checks that the Go type is
// the one its kind says.
func buildRPSchemas() (map[string]*rpSchema, error) {
	out := map[string]*rpSchema{}
	timeType := reflect.TypeFor[time.Time]()
	for _, ds := range schemas.Datasets() {
		sc := &rpSchema{ds: ds, name: ds.Name()}
		h := fnv.New32a()
		t := reflect.TypeOf(ds.New())
		if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("realtime/service: dataset %s: record type %v is not a pointer to a struct", ds.Name(), t)
		}
		for _, f := range ds.Fields() {
			ft := t.Elem()
			var off uintptr
			for _, name := range strings.Split(f.GoName, ".") {
				sf, ok := ft.FieldByName(name)
				if ft.Kind() != reflect.Struct || !ok || len(sf.Index) != 1 {
					return nil, fmt.Errorf("realtime/service: dataset %s: column %s: no struct field %s", ds.Name(), f.Name, f.GoName)
				}
				off += sf.Offset
				ft = sf.Type
			}
			var want reflect.Kind
			switch f.Kind {
			case schemas.KindString:
				want = reflect.String
			case schemas.KindBytes:
				want = reflect.Slice
			case schemas.KindInt64:
				want = reflect.Int64
			case schemas.KindInt32:
				want = reflect.Int32
			case schemas.KindUint16:
				want = reflect.Uint16
			case schemas.KindFloat64:
				want = reflect.Float64
			case schemas.KindTime:
				want = reflect.Struct
			}
			if ft.Kind() != want || (f.Kind == schemas.KindTime && ft != timeType) ||
				(f.Kind == schemas.KindBytes && ft.Elem().Kind() != reflect.Uint8) {
				return nil, fmt.Errorf("realtime/service: dataset %s: column %s of kind %v is a Go %v", ds.Name(), f.Name, f.Kind, ft)
			}
			sc.cols = append(sc.cols, rpCol{kind: f.Kind, off: off, original: f.Name == "event_original"})
			fmt.Fprintf(h, "%s:%d;", f.Name, f.Kind)
		}
		sc.fp = h.Sum32()
		out[sc.name] = sc
	}
	return out, nil
}

// recordPtr is the address of the struct rec points to.
func recordPtr(rec schemas.Record) unsafe.Pointer { return reflect.ValueOf(rec).UnsafePointer() }

// appendForward appends the encoding of rec, a record of sc's dataset
// (the caller checks), read from topic/partition at offset, to dst;
// withOriginal includes the raw line.
func (sc *rpSchema) appendForward(dst []byte, rec schemas.Record, topic string, partition int32, offset int64, withOriginal bool) []byte {
	flags := byte(0)
	if withOriginal {
		flags |= rpWithOriginal
	}
	dst = append(dst, rpMagic, flags)
	dst = appendString(dst, sc.name)
	dst = binary.LittleEndian.AppendUint32(dst, sc.fp)
	dst = appendString(dst, topic)
	dst = binary.AppendVarint(dst, int64(partition))
	dst = binary.AppendVarint(dst, offset)
	p := recordPtr(rec)
	for _, c := range sc.cols {
		if c.original && !withOriginal {
			continue
		}
		fp := unsafe.Add(p, c.off)
		switch c.kind {
		case schemas.KindString:
			dst = appendString(dst, *(*string)(fp))
		case schemas.KindBytes:
			b := *(*[]byte)(fp)
			dst = binary.AppendUvarint(dst, uint64(len(b)))
			dst = append(dst, b...)
		case schemas.KindInt64:
			dst = binary.AppendVarint(dst, *(*int64)(fp))
		case schemas.KindInt32:
			dst = binary.AppendVarint(dst, int64(*(*int32)(fp)))
		case schemas.KindUint16:
			dst = binary.AppendUvarint(dst, uint64(*(*uint16)(fp)))
		case schemas.KindFloat64:
			dst = binary.LittleEndian.AppendUint64(dst, *(*uint64)(fp))
		case schemas.KindTime:
			t := *(*time.Time)(fp)
			if t.IsZero() {
				dst = append(dst, 0)
			} else {
				dst = append(dst, 1)
				dst = binary.AppendVarint(dst, t.UnixNano())
			}
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// forwarded is a decoded repartition record: the record and where it was
// first read.
type forwarded struct {
	rec       schemas.Record
	topic     []byte // a view of the value: look it up, do not keep it
	partition int32
	offset    int64
}

var errRPTruncated = errors.New("truncated or malformed repartition record")

// decodeForward decodes a value written by appendForward. Its strings are
// views of one string copied from v, so the record does not pin v.
func decodeForward(scs map[string]*rpSchema, v []byte) (forwarded, error) {
	if len(v) < 2 || v[0] != rpMagic {
		return forwarded{}, errors.New("not a repartition record (unknown version)")
	}
	withOriginal := v[1]&rpWithOriginal != 0
	d := rpDecoder{v: v, i: 2}
	lo, hi := d.span()
	name := v[lo:hi]
	if len(v) < d.i+4 {
		return forwarded{}, errRPTruncated
	}
	fp := binary.LittleEndian.Uint32(v[d.i:])
	d.i += 4
	lo, hi = d.span()
	topic := v[lo:hi]
	part := d.varint()
	off := d.varint()
	if d.bad {
		return forwarded{}, errRPTruncated
	}
	sc := scs[string(name)]
	if sc == nil {
		return forwarded{}, fmt.Errorf("repartition record of unknown dataset %q", name)
	}
	if fp != sc.fp {
		return forwarded{}, fmt.Errorf("repartition record of dataset %s written with another column layout (fingerprint %08x, here %08x): by another build", name, fp, sc.fp)
	}
	// One copy of the columns; every string column is a substring of it,
	// so the record does not pin the fetch buffer.
	base := d.i
	s := string(v[base:])
	rec := sc.ds.New()
	p := recordPtr(rec)
	for _, c := range sc.cols {
		if c.original && !withOriginal {
			continue
		}
		fp := unsafe.Add(p, c.off)
		switch c.kind {
		case schemas.KindString:
			if lo, hi := d.span(); hi > lo {
				*(*string)(fp) = s[lo-base : hi-base]
			}
		case schemas.KindBytes:
			if lo, hi := d.span(); hi > lo {
				*(*[]byte)(fp) = []byte(s[lo-base : hi-base])
			}
		case schemas.KindInt64:
			*(*int64)(fp) = d.varint()
		case schemas.KindInt32:
			*(*int32)(fp) = int32(d.varint())
		case schemas.KindUint16:
			*(*uint16)(fp) = uint16(d.uvarint())
		case schemas.KindFloat64:
			if len(v) < d.i+8 {
				d.bad = true
				break
			}
			*(*uint64)(fp) = binary.LittleEndian.Uint64(v[d.i:])
			d.i += 8
		case schemas.KindTime:
			switch d.byte() {
			case 0:
			case 1:
				*(*time.Time)(fp) = time.Unix(0, d.varint()).UTC()
			default:
				d.bad = true
			}
		}
		if d.bad {
			return forwarded{}, errRPTruncated
		}
	}
	if d.i != len(v) {
		return forwarded{}, errRPTruncated
	}
	return forwarded{rec: rec, topic: topic, partition: int32(part), offset: off}, nil
}

// rpDecoder reads the fields of an encoded value; bad is set by the first
// read past its end or of a malformed varint, after which reads return
// zero values.
type rpDecoder struct {
	v   []byte
	i   int
	bad bool
}

func (d *rpDecoder) byte() byte {
	if d.bad || d.i >= len(d.v) {
		d.bad = true
		return 0
	}
	d.i++
	return d.v[d.i-1]
}

func (d *rpDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	x, n := binary.Uvarint(d.v[d.i:])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.i += n
	return x
}

func (d *rpDecoder) varint() int64 {
	if d.bad {
		return 0
	}
	x, n := binary.Varint(d.v[d.i:])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.i += n
	return x
}

// span reads a length-prefixed string and returns its bounds in v
// (empty bounds after an error).
func (d *rpDecoder) span() (lo, hi int) {
	n := d.uvarint()
	if d.bad || uint64(len(d.v)-d.i) < n {
		d.bad = true
		return d.i, d.i
	}
	lo = d.i
	d.i += int(n)
	return lo, d.i
}
