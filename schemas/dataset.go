// Package schemas is lambdalog's event model: one Go struct per dataset
// whose struct tags are the single definition of its columns. Everything
// else (the Arrow schema for Parquet, the ClickHouse DDL, the JSON encoding,
// the field accessors) is derived from those tags once, when the package is
// initialised, into immutable Dataset descriptors.
//
// Struct tags: col is the column name (ECS name flattened with '_'), ecs the
// Elastic Common Schema field it maps to ("-" when none), doc a one-line
// description, lowcard:"true" marks low-cardinality strings that may become
// LowCardinality(String) in ClickHouse.
package schemas

import (
	"fmt"
	"reflect"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
)

// Version is the version of the event model. It is written to every
// record's parse_version column. Bump it when a column is added or a
// parser's mapping changes; see docs/schemas.md for the compatibility rules.
const Version uint16 = 1

// Kind is the storage kind of a column; it fixes the Go, Arrow and
// ClickHouse types.
type Kind uint8

// Column kinds.
const (
	KindString  Kind = iota + 1 // Go string, Arrow utf8, ClickHouse String
	KindBytes                   // Go []byte, Arrow binary, ClickHouse String
	KindInt64                   // Go int64, Arrow int64, ClickHouse Int64
	KindInt32                   // Go int32, Arrow int32, ClickHouse Int32
	KindUint16                  // Go uint16, Arrow uint16, ClickHouse UInt16
	KindFloat64                 // Go float64, Arrow float64, ClickHouse Float64
	KindTime                    // Go time.Time, Arrow timestamp[us, UTC], ClickHouse DateTime('UTC') + <col>_ms UInt16
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindBytes:
		return "bytes"
	case KindInt64:
		return "int64"
	case KindInt32:
		return "int32"
	case KindUint16:
		return "uint16"
	case KindFloat64:
		return "float64"
	case KindTime:
		return "time"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Field describes one column of a dataset.
type Field struct {
	// Name is the column name in Parquet, ClickHouse and JSON.
	Name string
	// GoName is the struct field path, e.g. "Base.Timestamp".
	GoName string
	// Kind is the storage kind.
	Kind Kind
	// Arrow is the Arrow (and so Parquet) type.
	Arrow arrow.DataType
	// ClickHouse is the ClickHouse column type (without LowCardinality).
	ClickHouse string
	// ECS is the Elastic Common Schema field, "" when there is none.
	ECS string
	// Doc says what the column holds.
	Doc string
	// LowCardinality marks string columns with few distinct values.
	LowCardinality bool
	// Common is true for the fields every dataset shares.
	Common bool

	offset uintptr
}

// Dataset is the immutable descriptor of one dataset.
type Dataset struct {
	name    string
	doc     string
	index   int
	typ     reflect.Type
	fields  []Field
	byName  map[string]int
	schema  *arrow.Schema
	chCols  []string
	orderBy []string
	newFn   func() Record
}

// Name is the dataset name, e.g. "auth".
func (d *Dataset) Name() string { return d.name }

// Doc describes the dataset.
func (d *Dataset) Doc() string { return d.doc }

// Fields returns the columns in order (common fields first). The slice is a
// copy; the descriptor cannot be changed through it.
func (d *Dataset) Fields() []Field {
	out := make([]Field, len(d.fields))
	copy(out, d.fields)
	return out
}

// NumFields is the number of columns.
func (d *Dataset) NumFields() int { return len(d.fields) }

// Field returns the column named name.
func (d *Dataset) Field(name string) (Field, bool) {
	i, ok := d.byName[name]
	if !ok {
		return Field{}, false
	}
	return d.fields[i], true
}

// OrderBy returns the columns of the event table's ORDER BY key, in
// order (a copy).
func (d *Dataset) OrderBy() []string { return append([]string(nil), d.orderBy...) }

// New returns a new zero record of the dataset.
func (d *Dataset) New() Record { return d.newFn() }

// ArrowSchema is the Arrow schema used for Parquet files; column order is
// Fields() order. The schema is shared and must not be modified.
func (d *Dataset) ArrowSchema() *arrow.Schema { return d.schema }

// registry is built once in init and never modified afterwards.
var registry = buildRegistry()

func buildRegistry() []*Dataset {
	defs := []struct {
		name    string
		doc     string
		proto   Record
		newFn   func() Record
		orderBy []string
	}{
		{DatasetAuth, "authentication events: sshd, PAM, login", &Auth{}, func() Record { return &Auth{} },
			[]string{"event_action", "host_name", "timestamp"}},
		{DatasetFirewall, "packet filter decisions: netfilter, ufw, nftables; EVE flows", &Firewall{}, func() Record { return &Firewall{} },
			[]string{"event_action", "host_name", "timestamp"}},
		{DatasetIDS, "intrusion detection alerts: Suricata EVE", &IDS{}, func() Record { return &IDS{} },
			[]string{"rule_category", "host_name", "timestamp"}},
		{DatasetWeb, "HTTP requests: Apache/Nginx access logs, EVE http", &Web{}, func() Record { return &Web{} },
			[]string{"host_name", "timestamp"}},
		{DatasetSyslog, "valid syslog lines that are not security relevant", &Syslog{}, func() Record { return &Syslog{} },
			[]string{"host_name", "process_name", "timestamp"}},
		{DatasetQuarantine, "lines no parser accepted, byte for byte, with the reason", &Quarantine{}, func() Record { return &Quarantine{} },
			[]string{"source_format", "error_reason", "timestamp"}},
	}
	out := make([]*Dataset, len(defs))
	for i, def := range defs {
		if def.proto.datasetIndex() != i || def.proto.Dataset() != def.name {
			panic(fmt.Sprintf("schemas: dataset %s registered at %d", def.name, i))
		}
		d := &Dataset{
			name:    def.name,
			doc:     def.doc,
			index:   i,
			typ:     reflect.TypeOf(def.proto).Elem(),
			byName:  map[string]int{},
			newFn:   def.newFn,
			orderBy: def.orderBy,
		}
		collectFields(d, d.typ, 0, "", false)
		for _, c := range d.orderBy {
			if _, ok := d.byName[c]; !ok {
				panic(fmt.Sprintf("schemas: %s: ORDER BY column %s unknown", d.name, c))
			}
		}
		afs := make([]arrow.Field, len(d.fields))
		for j, f := range d.fields {
			// Only a time can be null (the zero time); every other value
			// is never null in Go. Non-null columns are REQUIRED in
			// Parquet, which spares the writer a definition level per
			// value (8% of the consumer's Parquet CPU). Readers match
			// columns by name and type, so older files, whose columns
			// are all OPTIONAL, read the same.
			afs[j] = arrow.Field{Name: f.Name, Type: f.Arrow, Nullable: f.Kind == KindTime}
			d.chCols = append(d.chCols, f.Name)
			if f.Kind == KindTime {
				d.chCols = append(d.chCols, f.Name+msSuffix)
			}
		}
		d.schema = arrow.NewSchema(afs, nil)
		out[i] = d
	}
	return out
}

var timeType = reflect.TypeOf(time.Time{})

// collectFields walks the struct, descending into the Common block, and
// derives every Field from its tags. A malformed tag is a programming error
// caught by any test run, so it panics at init.
func collectFields(d *Dataset, t reflect.Type, base uintptr, prefix string, common bool) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Type == reflect.TypeOf(Common{}) {
			collectFields(d, sf.Type, base+sf.Offset, prefix+sf.Name+".", true)
			continue
		}
		col := sf.Tag.Get("col")
		if col == "" {
			panic(fmt.Sprintf("schemas: %s.%s has no col tag", t.Name(), sf.Name))
		}
		if _, dup := d.byName[col]; dup {
			panic(fmt.Sprintf("schemas: %s: duplicate column %s", d.name, col))
		}
		f := Field{
			Name:           col,
			GoName:         prefix + sf.Name,
			Doc:            sf.Tag.Get("doc"),
			ECS:            sf.Tag.Get("ecs"),
			LowCardinality: sf.Tag.Get("lowcard") == "true",
			Common:         common,
			offset:         base + sf.Offset,
		}
		if f.ECS == "-" {
			f.ECS = ""
		}
		switch {
		case sf.Type == timeType:
			f.Kind, f.Arrow, f.ClickHouse = KindTime, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "DateTime('UTC')"
		case sf.Type.Kind() == reflect.String:
			f.Kind, f.Arrow, f.ClickHouse = KindString, arrow.BinaryTypes.String, "String"
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Uint8:
			f.Kind, f.Arrow, f.ClickHouse = KindBytes, arrow.BinaryTypes.Binary, "String"
		case sf.Type.Kind() == reflect.Int64:
			f.Kind, f.Arrow, f.ClickHouse = KindInt64, arrow.PrimitiveTypes.Int64, "Int64"
		case sf.Type.Kind() == reflect.Int32:
			f.Kind, f.Arrow, f.ClickHouse = KindInt32, arrow.PrimitiveTypes.Int32, "Int32"
		case sf.Type.Kind() == reflect.Uint16:
			f.Kind, f.Arrow, f.ClickHouse = KindUint16, arrow.PrimitiveTypes.Uint16, "UInt16"
		case sf.Type.Kind() == reflect.Float64:
			f.Kind, f.Arrow, f.ClickHouse = KindFloat64, arrow.PrimitiveTypes.Float64, "Float64"
		default:
			panic(fmt.Sprintf("schemas: %s.%s: unsupported type %s", t.Name(), sf.Name, sf.Type))
		}
		d.byName[col] = len(d.fields)
		d.fields = append(d.fields, f)
	}
}

// Lookup returns the dataset named name.
func Lookup(name string) (*Dataset, bool) {
	for _, d := range registry {
		if d.name == name {
			return d, true
		}
	}
	return nil, false
}

// Datasets returns every dataset, in a fixed order.
func Datasets() []*Dataset {
	out := make([]*Dataset, len(registry))
	copy(out, registry)
	return out
}

// Of returns the descriptor of r's dataset.
func Of(r Record) *Dataset { return registry[r.datasetIndex()] }

// fieldPtr is the address of field f inside record r. Callers have checked
// that r belongs to the field's dataset.
func fieldPtr(r Record, f *Field) unsafe.Pointer { return unsafe.Add(r.ptr(), f.offset) }
