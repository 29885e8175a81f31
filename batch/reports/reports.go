package reports

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// Column is one column of a report table, typed for ClickHouse.
type Column struct {
	Name string
	// Type is the ClickHouse type: String, UInt16, Int64 or UInt64.
	Type string
}

// Table is one computed report for one interval. Every table also has
// interval_start, interval_end and period_start columns (added by the
// loader) before Keys; Values follow.
type Table struct {
	Name   string
	Doc    string
	Keys   []Column
	Values []Column
	Rows   []Row
}

// TopN is the length of the top lists and the security summary.
const TopN = 20

// Risk weights of the daily security summary (docs/batch.md): a source's
// risk is the weighted sum of what it did across the datasets in the day.
const (
	RiskAuthFailure      = 1  // per failed login
	RiskAuthDistinctUser = 5  // per distinct user tried (spraying)
	RiskFirewallBlocked  = 1  // per denied/dropped packet
	RiskFirewallPort     = 5  // per distinct port probed (scanning)
	RiskIDSSeverity1     = 30 // per severity-1 alert
	RiskIDSSeverity2     = 20 // per severity-2 alert
	RiskIDSOther         = 10 // per other alert
	RiskWeb4xx           = 1  // per 4xx response
)

func eq(col, v string) metrics.Predicate {
	return metrics.Predicate{Column: col, Op: metrics.OpEq, Strings: []string{v}}
}
func ne(col, v string) metrics.Predicate {
	return metrics.Predicate{Column: col, Op: metrics.OpNe, Strings: []string{v}}
}
func in(col string, v ...string) metrics.Predicate {
	return metrics.Predicate{Column: col, Op: metrics.OpIn, Strings: v}
}
func between(col string, lo, hi int64) []metrics.Predicate {
	return []metrics.Predicate{{Column: col, Op: metrics.OpGte, Int: lo}, {Column: col, Op: metrics.OpLte, Int: hi}}
}

// mustMetric returns a shared metric; the names are constants of the
// metrics package, so a miss is a programming error caught by any test.
func mustMetric(name string) *metrics.Metric {
	m, ok := metrics.Lookup(name)
	if !ok {
		panic("reports: unknown shared metric " + name)
	}
	return m
}

// DatasetQueries returns the queries of the nightly report set over one
// dataset: the report tables proper, the inputs of the derived top lists
// and summary, and the shared metrics of that dataset.
func DatasetQueries(dataset string) []Query {
	var qs []Query
	switch dataset {
	case schemas.DatasetAuth:
		failed := mustMetric(metrics.SSHFailedLoginsPerSourceHour)
		attempt := in("event_outcome", schemas.OutcomeFailure, schemas.OutcomeSuccess)
		byIP := []Measure{
			// Failures are the shared metric's filter, so this column and
			// the metric (and the speed layer) agree by construction.
			{Name: "failures", Kind: CountRows, Where: failed.Filter},
			{Name: "successes", Kind: CountRows, Where: []metrics.Predicate{eq("event_outcome", schemas.OutcomeSuccess)}},
			{Name: "invalid_user", Kind: CountRows, Where: []metrics.Predicate{in("event_action", "invalid_user", "invalid_user_request", "user_unknown")}},
			{Name: "distinct_users", Kind: DistinctColumn, Column: "user_name", Where: []metrics.Predicate{attempt, ne("user_name", "")}},
		}
		byUser := []Measure{byIP[0], byIP[1], byIP[2],
			{Name: "distinct_ips", Kind: DistinctColumn, Column: "source_ip", Where: []metrics.Predicate{attempt, ne("source_ip", "")}}}
		qs = []Query{
			{Name: "auth_ip_hour", Dataset: dataset, Filter: []metrics.Predicate{ne("source_ip", "")}, Keys: []string{"source_ip"}, Window: time.Hour, Measures: byIP},
			{Name: "auth_user_hour", Dataset: dataset, Filter: []metrics.Predicate{ne("user_name", "")}, Keys: []string{"user_name"}, Window: time.Hour, Measures: byUser},
			{Name: "auth_ip_day", Dataset: dataset, Filter: []metrics.Predicate{ne("source_ip", "")}, Keys: []string{"source_ip"}, Measures: byIP},
			{Name: "auth_user_day", Dataset: dataset, Filter: []metrics.Predicate{ne("user_name", "")}, Keys: []string{"user_name"}, Measures: byUser},
		}
	case schemas.DatasetFirewall:
		blocked := []metrics.Predicate{in("event_action", "deny", "drop")}
		qs = []Query{
			{Name: "firewall_ip_port_hour", Dataset: dataset, Filter: blocked, Keys: []string{"source_ip", "destination_port"}, Window: time.Hour, Measures: []Measure{
				{Name: "denied", Kind: CountRows, Where: []metrics.Predicate{eq("event_action", "deny")}},
				{Name: "dropped", Kind: CountRows, Where: []metrics.Predicate{eq("event_action", "drop")}},
			}},
			{Name: "firewall_scan_day", Dataset: dataset, Filter: blocked, Keys: []string{"source_ip"}, Measures: []Measure{
				{Name: "blocked", Kind: CountRows},
				{Name: "distinct_ports", Kind: DistinctColumn, Column: "destination_port"},
			}},
			{Name: "firewall_port_day", Dataset: dataset, Filter: blocked, Keys: []string{"destination_port"}, Measures: []Measure{
				{Name: "blocked", Kind: CountRows},
				{Name: "distinct_sources", Kind: DistinctColumn, Column: "source_ip"},
			}},
		}
	case schemas.DatasetIDS:
		qs = []Query{
			{Name: "ids_alerts_hour", Dataset: dataset, Keys: []string{"rule_id", "rule_name", "rule_category", "event_severity", "source_ip"}, Window: time.Hour,
				Measures: []Measure{{Name: "alerts", Kind: CountRows}}},
			{Name: "ids_ip_day", Dataset: dataset, Keys: []string{"source_ip"}, Measures: []Measure{
				{Name: "alerts", Kind: CountRows},
				{Name: "severity1", Kind: CountRows, Where: []metrics.Predicate{eq("event_severity", "1")}},
				{Name: "severity2", Kind: CountRows, Where: []metrics.Predicate{eq("event_severity", "2")}},
				{Name: "distinct_signatures", Kind: DistinctColumn, Column: "rule_id"},
			}},
		}
	case schemas.DatasetWeb:
		c4 := mustMetric(metrics.Web4xxPerClientHour)
		client := []Measure{
			{Name: "requests", Kind: CountRows},
			{Name: "status_4xx", Kind: CountRows, Where: c4.Filter},
			{Name: "status_5xx", Kind: CountRows, Where: between("http_response_status_code", 500, 599)},
			{Name: "bytes", Kind: SumColumn, Column: "http_response_body_bytes"},
		}
		qs = []Query{
			{Name: "web_status_hour", Dataset: dataset, Window: time.Hour, Measures: []Measure{
				{Name: "requests", Kind: CountRows},
				{Name: "status_1xx", Kind: CountRows, Where: between("http_response_status_code", 100, 199)},
				{Name: "status_2xx", Kind: CountRows, Where: between("http_response_status_code", 200, 299)},
				{Name: "status_3xx", Kind: CountRows, Where: between("http_response_status_code", 300, 399)},
				{Name: "status_4xx", Kind: CountRows, Where: between("http_response_status_code", 400, 499)},
				{Name: "status_5xx", Kind: CountRows, Where: between("http_response_status_code", 500, 599)},
				{Name: "bytes", Kind: SumColumn, Column: "http_response_body_bytes"},
			}},
			{Name: "web_client_hour", Dataset: dataset, Keys: []string{"source_ip"}, Window: time.Hour, Measures: client},
			{Name: "web_client_day", Dataset: dataset, Keys: []string{"source_ip"}, Measures: client},
			{Name: "web_path_day", Dataset: dataset, Keys: []string{"url_path"}, Measures: client[:3]},
		}
	}
	for _, m := range metrics.All() {
		if m.Dataset == dataset {
			q := FromMetric(m)
			q.Name = "metric:" + m.Name
			qs = append(qs, q)
		}
	}
	return qs
}

// ReportDatasets are the datasets the nightly reports read, in order.
var reportDatasets = []string{schemas.DatasetAuth, schemas.DatasetFirewall, schemas.DatasetIDS, schemas.DatasetWeb}

// ReportDatasets returns the datasets the nightly reports read.
func ReportDatasets() []string { return append([]string(nil), reportDatasets...) }

// Output is the nightly report set of one interval.
type Output struct {
	Interval [2]time.Time
	Tables   []Table
	// Results holds every query result by query name (including the
	// metric:<name> results).
	Results map[string]Result
	// RowsRead counts the events read inside the interval.
	RowsRead int64
	// Bytes counts the Parquet bytes opened.
	Bytes int64
	// SpillFiles and SpillBytes count the aggregation state written to
	// disk because it exceeded Options.MemoryBudget (zero under it).
	SpillFiles int
	SpillBytes int64
	// StaleSpillDirs are spill directories of dead runs (kill -9)
	// removed from Options.SpillDir at the start; StaleSpillErr says
	// what could not be.
	StaleSpillDirs []string
	StaleSpillErr  error
}

// Table returns the table named name.
func (o *Output) Table(name string) (*Table, bool) {
	for i := range o.Tables {
		if o.Tables[i].Name == name {
			return &o.Tables[i], true
		}
	}
	return nil, false
}

// Compute runs the nightly report set for [from, to): one parallel scan per
// dataset, then the top lists, the shared-metric table and the security
// summary derived from the scans' results.
//
// It returns every table's rows, so the whole result is in memory at once
// (Options.MemoryBudget bounds the scans' state, not the result): it is
// for tests, benchmarks and small intervals. The report jobs use
// ComputeTo, which streams the rows out and keeps only the ranked tables'
// candidates and the summary's bounded join.
func Compute(ctx context.Context, src source.Source, fsys storage.FS, from, to time.Time, o Options) (*Output, error) {
	out := &Output{Interval: [2]time.Time{from, to}, Results: map[string]Result{}}
	for _, ds := range reportDatasets {
		files, err := src.Files(ctx, ds, from, to)
		if err != nil {
			return nil, fmt.Errorf("reports: files of %s: %w", ds, err)
		}
		res, st, err := Run(ctx, fsys, files, from, to, DatasetQueries(ds), o)
		if err != nil {
			return nil, fmt.Errorf("reports: %s: %w", ds, err)
		}
		out.RowsRead += st.RowsRead
		out.Bytes += st.Scan.Bytes
		out.SpillFiles += st.SpillFiles
		out.SpillBytes += st.SpillBytes
		out.StaleSpillDirs = append(out.StaleSpillDirs, st.StaleSpillDirs...)
		out.StaleSpillErr = errors.Join(out.StaleSpillErr, st.StaleSpillErr)
		for _, r := range res {
			out.Results[r.Query.Name] = r
		}
	}
	out.build()
	return out, nil
}

// keyColumns types a query's key columns from the event model.
func keyColumns(q Query) []Column {
	ds, _ := schemas.Lookup(q.Dataset)
	out := make([]Column, len(q.Keys))
	for i, k := range q.Keys {
		f, _ := ds.Field(k)
		out[i] = Column{Name: k, Type: f.ClickHouse}
	}
	return out
}

func valueColumns(q Query) []Column {
	out := make([]Column, len(q.Measures))
	for i, m := range q.Measures {
		t := "UInt64"
		if m.Kind == SumColumn {
			t = "Int64"
		}
		out[i] = Column{Name: m.Name, Type: t}
	}
	return out
}

// tableOf turns a query result into a table.
func tableOf(name, doc string, r Result) Table {
	return Table{Name: name, Doc: doc, Keys: keyColumns(r.Query), Values: valueColumns(r.Query), Rows: r.Rows}
}

// top ranks a day-level result by measure m (descending, ties by key) and
// keeps the first n rows, prefixing a rank key.
func top(name, doc string, r Result, m, n int) Table {
	rows := append([]Row(nil), r.Rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rankLess(&rows[i], &rows[j], m) })
	if len(rows) > n {
		rows = rows[:n]
	}
	t := Table{Name: name, Doc: doc, Keys: append([]Column{{Name: "rank", Type: "UInt16"}}, keyColumns(r.Query)...), Values: valueColumns(r.Query)}
	t.Rows = rankRows(rows)
	return t
}

func (o *Output) build() {
	R := o.Results
	for _, sp := range tableSpecs() {
		switch sp.kind {
		case specPlain:
			o.Tables = append(o.Tables, tableOf(sp.name, sp.doc, R[sp.query]))
		case specTop:
			o.Tables = append(o.Tables, top(sp.name, sp.doc, R[sp.query], sp.measure, TopN))
		case specMetrics:
			o.Tables = append(o.Tables, o.metricsTable(sp.name, sp.doc))
		case specSummary:
			o.Tables = append(o.Tables, o.summary(sp.name, sp.doc))
		}
	}
}

// metricsTable holds every shared metric's batch values.
func (o *Output) metricsTable(name, doc string) Table {
	t := Table{Name: name, Doc: doc,
		Keys: []Column{{Name: "metric", Type: "String"}, {Name: "key", Type: "String"}}, Values: []Column{{Name: "value", Type: "Int64"}}}
	for _, m := range metrics.All() {
		r, ok := o.Results["metric:"+m.Name]
		if !ok {
			continue
		}
		for _, row := range r.Rows {
			t.Rows = append(t.Rows, Row{Period: row.Period, Keys: []string{m.Name, row.Keys[0]}, Values: row.Values})
		}
	}
	return t
}

// SummaryRow is one source IP of the daily security summary.
type SummaryRow struct {
	SourceIP                        string
	Risk                            int64
	AuthFailures, AuthDistinctUsers int64
	FirewallBlocked, FirewallPorts  int64
	IDSAlerts, IDSSev1, IDSSev2     int64
	WebRequests, Web4xx, Web5xx     int64
}

// Score is the documented risk score.
func (s *SummaryRow) Score() int64 {
	return s.AuthFailures*RiskAuthFailure + s.AuthDistinctUsers*RiskAuthDistinctUser +
		s.FirewallBlocked*RiskFirewallBlocked + s.FirewallPorts*RiskFirewallPort +
		s.IDSSev1*RiskIDSSeverity1 + s.IDSSev2*RiskIDSSeverity2 + (s.IDSAlerts-s.IDSSev1-s.IDSSev2)*RiskIDSOther +
		s.Web4xx*RiskWeb4xx
}

// summaryQueries are the per-source-IP day results the summary joins.
var summaryQueries = []string{"auth_ip_day", "firewall_scan_day", "ids_ip_day", "web_client_day"}

// summaryIndex returns query's index in summaryQueries, or -1.
func summaryIndex(query string) int {
	for i, q := range summaryQueries {
		if q == query {
			return i
		}
	}
	return -1
}

func summaryInput(query string) bool { return summaryIndex(query) >= 0 }

// setInput sets the fields of input qi (an index into summaryQueries)
// from one of its rows' values.
func (s *SummaryRow) setInput(qi int, v []int64) {
	switch qi {
	case 0:
		s.AuthFailures, s.AuthDistinctUsers = v[0], v[3]
	case 1:
		s.FirewallBlocked, s.FirewallPorts = v[0], v[1]
	case 2:
		s.IDSAlerts, s.IDSSev1, s.IDSSev2 = v[0], v[1], v[2]
	case 3:
		s.WebRequests, s.Web4xx, s.Web5xx = v[0], v[1], v[2]
	}
}

// copyInput copies the fields of input qi from src.
func (s *SummaryRow) copyInput(qi int, src *SummaryRow) {
	switch qi {
	case 0:
		s.AuthFailures, s.AuthDistinctUsers = src.AuthFailures, src.AuthDistinctUsers
	case 1:
		s.FirewallBlocked, s.FirewallPorts = src.FirewallBlocked, src.FirewallPorts
	case 2:
		s.IDSAlerts, s.IDSSev1, s.IDSSev2 = src.IDSAlerts, src.IDSSev1, src.IDSSev2
	case 3:
		s.WebRequests, s.Web4xx, s.Web5xx = src.WebRequests, src.Web4xx, src.Web5xx
	}
}

// summaryEntry is one source's joined row and which inputs set it: a
// spilled entry carries the mask so that the join at the end applies
// exactly the fields its inputs set, in the order they came.
type summaryEntry struct {
	row SummaryRow
	set uint8 // bit qi: input qi set its fields
}

// summaryAcc joins the summary's inputs by source IP. With limit > 0 the
// in-memory map is bounded and spills past it (summary_spill.go).
type summaryAcc struct {
	by map[string]*summaryEntry
	// limit is what the map may hold in estimated bytes (0: unbounded);
	// sp owns the spill directory and files the entries written past it.
	limit int64
	sp    *spiller
	files []spillFile
	bytes int64 // written to files
	peak  int64 // the map's largest estimated size
}

func newSummaryAcc() *summaryAcc { return &summaryAcc{by: map[string]*summaryEntry{}} }

// add joins rows of query (one of summaryQueries). Under a limit, a
// new source that would take the map past it spills the map first.
func (a *summaryAcc) add(query string, rows []Row) error {
	qi := summaryIndex(query)
	for _, r := range rows {
		e := a.by[r.Keys[0]]
		if e == nil {
			if a.limit > 0 && a.size()+bytesPerSummaryEntry > a.limit && len(a.by) > 0 {
				if err := a.spill(); err != nil {
					return err
				}
			}
			e = &summaryEntry{row: SummaryRow{SourceIP: r.Keys[0]}}
			a.by[r.Keys[0]] = e
			a.peak = max(a.peak, a.size())
		}
		e.row.setInput(qi, r.Values)
		e.set |= 1 << qi
	}
	return nil
}

// ranked keeps the rows with a positive risk and a source IP, scored,
// and sorts them riskiest first, ties by IP (a total order: one row per
// IP).
func ranked(rows []SummaryRow) []SummaryRow {
	out := rows[:0]
	for _, s := range rows {
		if s.Risk = s.Score(); s.Risk > 0 && s.SourceIP != "" {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Risk != out[j].Risk {
			return out[i].Risk > out[j].Risk
		}
		return out[i].SourceIP < out[j].SourceIP
	})
	return out
}

// rows returns every source of the in-memory map with a positive risk,
// riskiest first (ties by IP).
func (a *summaryAcc) rows() []SummaryRow {
	out := make([]SummaryRow, 0, len(a.by))
	for _, e := range a.by {
		out = append(out, e.row)
	}
	return ranked(out)
}

// Summary joins the per-source-IP day results of the four datasets and
// returns every source with a positive risk, riskiest first (ties by IP).
func (o *Output) Summary() []SummaryRow {
	a := newSummaryAcc()
	for _, q := range summaryQueries {
		// Unbounded (no limit): add never spills, so it cannot fail.
		_ = a.add(q, o.Results[q].Rows)
	}
	return a.rows()
}

// summaryColumns are the security summary's key and value columns.
func summaryColumns() (keys, values []Column) {
	return []Column{{Name: "rank", Type: "UInt16"}, {Name: "source_ip", Type: "String"}},
		[]Column{{Name: "risk", Type: "Int64"}, {Name: "auth_failures", Type: "UInt64"}, {Name: "auth_distinct_users", Type: "UInt64"},
			{Name: "firewall_blocked", Type: "UInt64"}, {Name: "firewall_distinct_ports", Type: "UInt64"},
			{Name: "ids_alerts", Type: "UInt64"}, {Name: "ids_severity1", Type: "UInt64"}, {Name: "ids_severity2", Type: "UInt64"},
			{Name: "web_requests", Type: "UInt64"}, {Name: "web_4xx", Type: "UInt64"}, {Name: "web_5xx", Type: "UInt64"}}
}

// summaryRows is the summary table's rows: the first TopN sources.
func summaryRows(period time.Time, rows []SummaryRow) []Row {
	if len(rows) > TopN {
		rows = rows[:TopN]
	}
	out := make([]Row, len(rows))
	for i, s := range rows {
		out[i] = Row{Period: period, Keys: []string{strconv.Itoa(i + 1), s.SourceIP},
			Values: []int64{s.Risk, s.AuthFailures, s.AuthDistinctUsers, s.FirewallBlocked, s.FirewallPorts,
				s.IDSAlerts, s.IDSSev1, s.IDSSev2, s.WebRequests, s.Web4xx, s.Web5xx}}
	}
	return out
}

func (o *Output) summary(name, doc string) Table {
	t := Table{Name: name, Doc: doc}
	t.Keys, t.Values = summaryColumns()
	t.Rows = summaryRows(o.Interval[0], o.Summary())
	return t
}

// TableSchemas returns the (empty) tables of the nightly set, for DDL.
func TableSchemas() []Table {
	o := &Output{Results: map[string]Result{}}
	for _, ds := range reportDatasets {
		for _, q := range DatasetQueries(ds) {
			o.Results[q.Name] = Result{Query: q}
		}
	}
	o.build()
	for i := range o.Tables {
		o.Tables[i].Rows = nil
	}
	return o.Tables
}
