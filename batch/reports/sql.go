package reports

import (
	"fmt"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// SQL renders q as a ClickHouse query over an event table (columns as in
// schemas' DDL) for [from, to). It returns period_start (as UInt32 Unix
// seconds), the keys (as String) and the measures (as Int64) in the order
// of Row, so the two engines' results compare directly. The columns are
// named p, k0.. and m0.., so PushDown can select from it. The SQL runs on
// ClickHouse 18.16 and current releases.
func SQL(q Query, table string, from, to time.Time) (string, error) {
	if err := q.Validate(); err != nil {
		return "", err
	}
	ds, _ := schemas.Lookup(q.Dataset)
	period := fmt.Sprintf("toUInt32(%d)", from.Unix())
	if w := int64(q.Window / time.Second); w > 0 {
		period = fmt.Sprintf("toUInt32(intDiv(toUInt32(timestamp), %d) * %d)", w, w)
	}
	sel := []string{period + " AS p"}
	group := []string{"p"}
	for i, k := range q.Keys {
		sel = append(sel, fmt.Sprintf("toString(%s) AS k%d", quote(k), i))
		group = append(group, fmt.Sprintf("k%d", i))
	}
	for i, m := range q.Measures {
		cond, err := conds(ds, m.Where)
		if err != nil {
			return "", err
		}
		if cond == "" {
			cond = "1"
		}
		switch m.Kind {
		case CountRows:
			sel = append(sel, fmt.Sprintf("toInt64(countIf(%s)) AS m%d", cond, i))
		case SumColumn:
			sel = append(sel, fmt.Sprintf("toInt64(sumIf(%s, %s)) AS m%d", quote(m.Column), cond, i))
		case DistinctColumn:
			sel = append(sel, fmt.Sprintf("toInt64(uniqExactIf(%s, %s)) AS m%d", quote(m.Column), cond, i))
		}
	}
	where := fmt.Sprintf("timestamp >= toDateTime(%d, 'UTC') AND timestamp < toDateTime(%d, 'UTC')", from.Unix(), to.Unix())
	if c, err := conds(ds, q.Filter); err != nil {
		return "", err
	} else if c != "" {
		where += " AND " + c
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s GROUP BY %s", strings.Join(sel, ", "), table, where, strings.Join(group, ", ")), nil
}

func quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "\\`") + "`" }

func literal(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func conds(ds *schemas.Dataset, ps []metrics.Predicate) (string, error) {
	var out []string
	for _, p := range ps {
		f, ok := ds.Field(p.Column)
		if !ok {
			return "", fmt.Errorf("reports: no column %s", p.Column)
		}
		col := quote(p.Column)
		val := literal
		if f.Kind != schemas.KindString {
			// Compare integers as integers; the strings are decimal.
			val = func(s string) string { return fmt.Sprintf("toInt64(%s)", literal(s)) }
		}
		switch p.Op {
		case metrics.OpEq:
			out = append(out, fmt.Sprintf("%s = %s", col, val(p.Strings[0])))
		case metrics.OpNe:
			out = append(out, fmt.Sprintf("%s != %s", col, val(p.Strings[0])))
		case metrics.OpIn:
			vs := make([]string, len(p.Strings))
			for i, s := range p.Strings {
				vs[i] = val(s)
			}
			out = append(out, fmt.Sprintf("%s IN (%s)", col, strings.Join(vs, ", ")))
		case metrics.OpGte:
			out = append(out, fmt.Sprintf("%s >= %d", col, p.Int))
		case metrics.OpLte:
			out = append(out, fmt.Sprintf("%s <= %d", col, p.Int))
		default:
			return "", fmt.Errorf("reports: operator %q", p.Op)
		}
	}
	return strings.Join(out, " AND "), nil
}
