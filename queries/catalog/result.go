package catalog

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Result is a report's output. Cells are string, int64, uint64, float64 or
// nil (NULL).
type Result struct {
	Report string `json:"report"`
	// Params are the parameter values used, defaults resolved.
	Params  map[string]string `json:"params"`
	Columns []string          `json:"columns"`
	Rows    [][]any           `json:"rows"`
}

// scan reads every row, normalising cells to plain Go values.
func scan(rows driver.Rows, maxRows int) (*Result, error) {
	types := rows.ColumnTypes()
	res := &Result{Columns: rows.Columns(), Rows: [][]any{}}
	dest := make([]any, len(types))
	for i, t := range types {
		dest[i] = reflect.New(t.ScanType()).Interface()
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) >= maxRows {
			return nil, fmt.Errorf("%w: more than %d; narrow the date range or lower limit", ErrTooManyRows, maxRows)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = normalize(reflect.ValueOf(d).Elem(), types[i].DatabaseTypeName())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

func normalize(v reflect.Value, dbType string) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if t, ok := v.Interface().(time.Time); ok {
		if strings.HasPrefix(dbType, "Date") && !strings.HasPrefix(dbType, "DateTime") {
			return t.UTC().Format(time.DateOnly)
		}
		return t.UTC().Format(time.DateTime)
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Bool:
		return v.Bool()
	}
	return fmt.Sprint(v.Interface())
}

// Cell formats one cell as text (CSV and table output).
func Cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// Formats are the output formats of Write.
var Formats = []string{"table", "csv", "json"}

// Write writes the result as "table" (aligned columns for a terminal),
// "csv" (RFC 4180, header row first) or "json" (the Result object).
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case "csv":
		return r.WriteCSV(w)
	case "json":
		return r.WriteJSON(w)
	case "table":
		return r.WriteTable(w)
	}
	return fmt.Errorf("catalog: unknown format %q (want table, csv or json)", format)
}

// WriteCSV writes a header row and one record per row. Cells starting with
// =, +, - or @ that are not numbers are prefixed with ' so spreadsheets do
// not run them as formulas (log fields are attacker-controlled).
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.Columns); err != nil {
		return fmt.Errorf("catalog: csv: %w", err)
	}
	rec := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for i, c := range row {
			rec[i] = Cell(c)
			if s, ok := c.(string); ok {
				rec[i] = defuseFormula(s)
			}
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("catalog: csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("catalog: csv: %w", err)
	}
	return nil
}

func defuseFormula(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

// WriteJSON writes the Result as one JSON object. Non-finite floats (a
// ratio over zero rows) are written as null.
func (r *Result) WriteJSON(w io.Writer) error {
	out := *r
	out.Rows = make([][]any, len(r.Rows))
	for i, row := range r.Rows {
		cp := make([]any, len(row))
		for j, c := range row {
			if f, ok := c.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				c = nil
			}
			cp[j] = c
		}
		out.Rows[i] = cp
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("catalog: json: %w", err)
	}
	return nil
}

// WriteTable writes aligned columns with a header, for terminals.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.Columns, "\t"))
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = strings.Map(func(r rune) rune {
				if r == '\t' || r == '\n' || r == '\r' {
					return ' '
				}
				return r
			}, Cell(c))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("catalog: table: %w", err)
	}
	fmt.Fprintf(w, "(%d rows)\n", len(r.Rows))
	return nil
}
