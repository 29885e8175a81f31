package reports

import (
	"fmt"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// TableSelect is one report table of the nightly set computed by
// ClickHouse: each of Selects returns rows of the table as p (UInt32
// period start), a0.. (the keys as String) and b0.. (the values as Int64)
// in the table's column order; the loader casts them and inserts with
// INSERT ... SELECT.
type TableSelect struct {
	// Table is the table's schema (no rows).
	Table   Table
	Selects []string
}

// PushDown renders the nightly report set of [from, to) as ClickHouse
// queries over the event tables (eventTable names a dataset's table; on a
// cluster the Distributed one). It mirrors Compute table for table: the
// plain tables are the dataset queries (SQL), the top lists rank a day
// query in ClickHouse with Go's order (value descending, ties by the keys
// as fmt.Sprint prints them, byte order), the metric table unions the
// shared metrics, and the security summary joins the per-source day
// queries with the same risk weights. A test proves both engines give the
// same tables.
func PushDown(eventTable func(dataset string) string, from, to time.Time) ([]TableSelect, error) {
	queries := map[string]Query{}
	sqls := map[string]string{}
	for _, ds := range reportDatasets {
		for _, q := range DatasetQueries(ds) {
			s, err := SQL(q, eventTable(ds), from, to)
			if err != nil {
				return nil, fmt.Errorf("reports: push-down %s: %w", q.Name, err)
			}
			queries[q.Name], sqls[q.Name] = q, s
		}
	}
	// as renames a query's k0.. and m0.. columns to the output names,
	// keys shifted by off (after a rank).
	as := func(nk, nm, off int) string {
		var cols []string
		for i := 0; i < nk; i++ {
			cols = append(cols, fmt.Sprintf("k%d AS a%d", i, i+off))
		}
		for i := 0; i < nm; i++ {
			cols = append(cols, fmt.Sprintf("m%d AS b%d", i, i))
		}
		return strings.Join(cols, ", ")
	}
	plain := func(name string) []string {
		q := queries[name]
		return []string{fmt.Sprintf("SELECT p, %s FROM (%s)", as(len(q.Keys), len(q.Measures), 0), sqls[name])}
	}
	top := func(name string, m int) []string {
		q := queries[name]
		ks := make([]string, len(q.Keys))
		for i := range ks {
			ks[i] = fmt.Sprintf("k%d", i)
		}
		// fmt.Sprint of the key slice: "[a b]".
		tie := "concat('[', " + strings.Join(ks, ", ' ', ") + ", ']')"
		inner := fmt.Sprintf("SELECT * FROM (%s) ORDER BY m%d DESC, %s LIMIT %d", sqls[name], m, tie, TopN)
		// The rank is the row's position in the sorted subquery's single
		// output stream.
		return []string{fmt.Sprintf("SELECT p, toString(rowNumberInAllBlocks() + 1) AS a0, %s FROM (%s)", as(len(q.Keys), len(q.Measures), 1), inner)}
	}
	var metricSelects []string
	for _, m := range metrics.All() {
		if _, ok := queries["metric:"+m.Name]; !ok {
			continue
		}
		metricSelects = append(metricSelects, fmt.Sprintf("SELECT p, %s AS a0, k0 AS a1, m0 AS b0 FROM (%s)", literal(m.Name), sqls["metric:"+m.Name]))
	}
	// Every part names its ten columns (c1..c10): the counts a source has
	// in that dataset, zero for the others.
	part := func(query string, cols map[int]string) string {
		sel := []string{"k0 AS ip"}
		for i := 1; i <= 10; i++ {
			v, ok := cols[i]
			if !ok {
				v = "toInt64(0)"
			}
			sel = append(sel, fmt.Sprintf("%s AS c%d", v, i))
		}
		return fmt.Sprintf("SELECT %s FROM (%s)", strings.Join(sel, ", "), sqls[query])
	}
	parts := []string{
		part("auth_ip_day", map[int]string{1: "m0", 2: "m3"}),
		part("firewall_scan_day", map[int]string{3: "m0", 4: "m1"}),
		part("ids_ip_day", map[int]string{5: "m0", 6: "m1", 7: "m2"}),
		part("web_client_day", map[int]string{8: "m0", 9: "m1", 10: "m2"}),
	}
	risk := fmt.Sprintf("s1 * %d + s2 * %d + s3 * %d + s4 * %d + s6 * %d + s7 * %d + (s5 - s6 - s7) * %d + s9 * %d",
		RiskAuthFailure, RiskAuthDistinctUser, RiskFirewallBlocked, RiskFirewallPort, RiskIDSSeverity1, RiskIDSSeverity2, RiskIDSOther, RiskWeb4xx)
	var sums []string
	for i := 1; i <= 10; i++ {
		sums = append(sums, fmt.Sprintf("sum(c%d) AS s%d", i, i))
	}
	summary := fmt.Sprintf("SELECT ip, %s FROM (%s) GROUP BY ip", strings.Join(sums, ", "), strings.Join(parts, " UNION ALL "))
	ranked := fmt.Sprintf("SELECT ip, toInt64(%s) AS risk, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 FROM (%s) WHERE ip != '' AND risk > 0 ORDER BY risk DESC, ip LIMIT %d", risk, summary, TopN)
	summarySelect := fmt.Sprintf("SELECT toUInt32(%d) AS p, toString(rowNumberInAllBlocks() + 1) AS a0, ip AS a1, risk AS b0, s1 AS b1, s2 AS b2, s3 AS b3, s4 AS b4, s5 AS b5, s6 AS b6, s7 AS b7, s8 AS b8, s9 AS b9, s10 AS b10 FROM (%s)", from.Unix(), ranked)

	byTable := map[string][]string{
		"report_auth_ip_hour":          plain("auth_ip_hour"),
		"report_auth_user_hour":        plain("auth_user_hour"),
		"report_auth_ip_day":           plain("auth_ip_day"),
		"report_auth_user_day":         plain("auth_user_day"),
		"report_auth_top_sources":      top("auth_ip_day", 0),
		"report_firewall_ip_port_hour": plain("firewall_ip_port_hour"),
		"report_firewall_scan_day":     plain("firewall_scan_day"),
		"report_firewall_top_ports":    top("firewall_port_day", 0),
		"report_ids_alerts_hour":       plain("ids_alerts_hour"),
		"report_ids_ip_day":            plain("ids_ip_day"),
		"report_web_status_hour":       plain("web_status_hour"),
		"report_web_client_hour":       plain("web_client_hour"),
		"report_web_top_clients":       top("web_client_day", 0),
		"report_web_top_paths":         top("web_path_day", 0),
		"report_metrics":               metricSelects,
		"report_security_summary":      {summarySelect},
	}
	var out []TableSelect
	for _, t := range TableSchemas() {
		sel, ok := byTable[t.Name]
		if !ok {
			return nil, fmt.Errorf("reports: push-down has no query for %s", t.Name)
		}
		out = append(out, TableSelect{Table: t, Selects: sel})
	}
	if len(out) != len(byTable) {
		return nil, fmt.Errorf("reports: push-down renders %d tables, the nightly set has %d", len(byTable), len(out))
	}
	return out, nil
}
