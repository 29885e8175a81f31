package schemas

import (
	"fmt"
	"strings"
	"time"
)

// msSuffix names the companion column that keeps the milliseconds of a time
// column in ClickHouse: DateTime has second precision and DateTime64 does
// not exist in ClickHouse 18.16, which the DDL must still run on.
const msSuffix = "_ms"

// DDLOptions tunes ClickHouseDDL.
type DDLOptions struct {
	// LowCardinality wraps low-cardinality string columns in
	// LowCardinality(String). ClickHouse 18.16 needs the session setting
	// allow_experimental_low_cardinality_type=1 for it, so it is off by
	// default.
	LowCardinality bool
	// IfNotExists adds IF NOT EXISTS.
	IfNotExists bool
	// TTLDays, when positive, drops rows older than that many days. Table
	// TTL needs ClickHouse 19.6 or later; leave it 0 for 18.16.
	TTLDays int
}

// ClickHouseColumns returns the ClickHouse column names in table order, for
// explicit INSERT column lists. Every time column T is followed by T_ms.
func (d *Dataset) ClickHouseColumns() []string {
	out := make([]string, len(d.chCols))
	copy(out, d.chCols)
	return out
}

// ClickHouseRow appends r's values to dst in ClickHouseColumns order, typed
// for clickhouse-go: strings as string, bytes as string, integers in their
// own width, a time column as time.Time (UTC, zero time as the Unix epoch)
// followed by its milliseconds as uint16. It returns an error for a record
// of another dataset.
func (d *Dataset) ClickHouseRow(dst []any, r Record) ([]any, error) {
	if r == nil || r.datasetIndex() != d.index {
		return dst, fmt.Errorf("schemas: %T is not a %s record", r, d.name)
	}
	for i := range d.fields {
		f := &d.fields[i]
		p := fieldPtr(r, f)
		switch f.Kind {
		case KindString:
			dst = append(dst, *(*string)(p))
		case KindBytes:
			dst = append(dst, string(*(*[]byte)(p)))
		case KindInt64:
			dst = append(dst, *(*int64)(p))
		case KindInt32:
			dst = append(dst, *(*int32)(p))
		case KindUint16:
			dst = append(dst, *(*uint16)(p))
		case KindFloat64:
			dst = append(dst, *(*float64)(p))
		case KindTime:
			t := *(*time.Time)(p)
			if t.IsZero() {
				t = time.Unix(0, 0)
			}
			t = t.UTC()
			dst = append(dst, t.Truncate(time.Second), uint16(t.Nanosecond()/int(time.Millisecond)))
		}
	}
	return dst, nil
}

// ClickHouseDDL returns the CREATE TABLE statement for the dataset in
// database.table. The statement runs on ClickHouse 18.16 and current
// releases alike: MergeTree with the custom partitioning syntax, one
// partition per day of timestamp, DateTime('UTC') plus a UInt16
// milliseconds column for every time, explicit column types, no
// DateTime64 and no Nullable.
func (d *Dataset) ClickHouseDDL(database, table string, opts DDLOptions) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE ")
	if opts.IfNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	if database != "" {
		b.WriteString(quoteIdent(database))
		b.WriteByte('.')
	}
	b.WriteString(quoteIdent(table))
	b.WriteString("\n(\n")
	for i, f := range d.fields {
		typ := f.ClickHouse
		if opts.LowCardinality && f.LowCardinality && f.Kind == KindString {
			typ = "LowCardinality(String)"
		}
		fmt.Fprintf(&b, "    %s %s", quoteIdent(f.Name), typ)
		if f.Kind == KindTime {
			fmt.Fprintf(&b, ",\n    %s UInt16", quoteIdent(f.Name+msSuffix))
		}
		if i < len(d.fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(")\nENGINE = MergeTree()\nPARTITION BY toYYYYMMDD(timestamp)\nORDER BY (")
	for i, c := range d.orderBy {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteString(")\n")
	if opts.TTLDays > 0 {
		fmt.Fprintf(&b, "TTL timestamp + INTERVAL %d DAY\n", opts.TTLDays)
	}
	b.WriteString("SETTINGS index_granularity = 8192")
	return b.String()
}

// ClickHouseAddColumn returns the ALTER TABLE statements that add column
// to an existing table (with its _ms companion for times), with the
// column's zero value as DEFAULT so old rows read as before. It is how a
// field added in a later Version reaches a table created by an earlier one.
func (d *Dataset) ClickHouseAddColumn(database, table, column string) ([]string, error) {
	f, ok := d.Field(column)
	if !ok {
		return nil, fmt.Errorf("schemas: dataset %s has no column %q", d.name, column)
	}
	name := quoteIdent(table)
	if database != "" {
		name = quoteIdent(database) + "." + name
	}
	def := "''"
	switch f.Kind {
	case KindInt64, KindInt32, KindUint16, KindFloat64:
		def = "0"
	case KindTime:
		def = "toDateTime(0, 'UTC')"
	}
	out := []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s DEFAULT %s", name, quoteIdent(f.Name), f.ClickHouse, def)}
	if f.Kind == KindTime {
		out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s UInt16 DEFAULT 0", name, quoteIdent(f.Name+msSuffix)))
	}
	return out, nil
}

// quoteIdent back-quotes a ClickHouse identifier.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}
