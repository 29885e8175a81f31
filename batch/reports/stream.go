package reports

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// Sink receives a run's finished report rows (ComputeTo): t names the
// table and carries its columns (t.Rows is empty); rows are complete rows
// of it, in no particular order, and a table's rows may come in many
// calls interleaved with other tables'. The rows are the sink's to keep;
// calls are serialized. An error stops the run.
type Sink interface {
	Rows(ctx context.Context, t *Table, rows []Row) error
}

// ComputeStats describe a ComputeTo run.
type ComputeStats struct {
	// RowsRead counts the events read inside the interval.
	RowsRead int64
	// Bytes counts the Parquet bytes opened.
	Bytes int64
	// SpillFiles and SpillBytes count the aggregation state and the
	// security summary's join entries written to disk because they
	// exceeded Options.MemoryBudget; SummarySpillBytes is the summary's
	// part.
	SpillFiles        int
	SpillBytes        int64
	SummarySpillBytes int64
	// SummaryPeakBytes is the largest estimated size of the summary's
	// in-memory join (bytesPerSummaryEntry per source IP): under a
	// budget it stays within the summary's share (summaryLimit).
	SummaryPeakBytes int64
	// StaleSpillDirs are spill directories of dead runs (kill -9)
	// removed from Options.SpillDir at the start; StaleSpillErr says
	// what could not be.
	StaleSpillDirs []string
	StaleSpillErr  error
	// RowsOut counts the rows handed to the sink.
	RowsOut int64
}

// ComputeTo computes what Compute does, table for table and row for row,
// and hands the rows to sink as they are finished instead of returning
// them: every table except the ranked ones (the top lists and the
// security summary, TopN rows each) goes out while the scans merge, a
// query's rows at most emitRows at a time, or one spill bucket's when the
// state spilled. What stays in memory for the whole run is the ranked
// tables' candidates (TopN rows each) and the summary's join of the
// per-source-IP day results (one entry per source IP with any activity;
// under Options.MemoryBudget it gets 1/summaryBudgetShare of the budget
// and spills past it, the scans get the rest: summary_spill.go). The
// ranked tables are handed over last.
func ComputeTo(ctx context.Context, src source.Source, fsys storage.FS, from, to time.Time, o Options, sink Sink) (ComputeStats, error) {
	var st ComputeStats
	sum := newSummaryAcc()
	if o.MemoryBudget > 0 {
		// The summary's map lives across every scan, so its share comes
		// out of the scans' budget.
		sum.limit = summaryLimit(o.MemoryBudget)
		o.MemoryBudget = max(o.MemoryBudget-sum.limit, 1)
		sum.sp = &spiller{parent: spillParent(o.SpillDir)}
		defer sum.close()
	}
	specs := tableSpecs()
	schemas := TableSchemas()
	byName := map[string]*Table{}
	for i := range schemas {
		byName[schemas[i].Name] = &schemas[i]
	}
	send := func(ctx context.Context, name string, rows []Row) error {
		if len(rows) == 0 {
			return nil
		}
		st.RowsOut += int64(len(rows))
		return sink.Rows(ctx, byName[name], rows)
	}
	tops := map[string]*topAcc{}
	for _, ds := range reportDatasets {
		files, err := src.Files(ctx, ds, from, to)
		if err != nil {
			return st, fmt.Errorf("reports: files of %s: %w", ds, err)
		}
		qs := DatasetQueries(ds)
		// What each query's rows feed.
		type use struct {
			plain []string // tables holding the rows as they are
			top   []*topAcc
			sum   bool
		}
		uses := make([]use, len(qs))
		for qi, q := range qs {
			for _, sp := range specs {
				if sp.query != q.Name {
					continue
				}
				switch sp.kind {
				case specPlain:
					uses[qi].plain = append(uses[qi].plain, sp.name)
				case specTop:
					a := &topAcc{measure: sp.measure}
					tops[sp.name] = a
					uses[qi].top = append(uses[qi].top, a)
				}
			}
			uses[qi].sum = summaryInput(q.Name)
		}
		rs, err := RunTo(ctx, fsys, files, from, to, qs, o, func(ctx context.Context, qi int, rows []Row) error {
			q := &qs[qi]
			u := uses[qi]
			for _, a := range u.top {
				a.add(rows)
			}
			if u.sum {
				if err := sum.add(q.Name, rows); err != nil {
					return err
				}
			}
			if name, ok := strings.CutPrefix(q.Name, "metric:"); ok {
				mrows := make([]Row, len(rows))
				for i, r := range rows {
					mrows[i] = Row{Period: r.Period, Keys: []string{name, r.Keys[0]}, Values: r.Values}
				}
				if err := send(ctx, metricsTableName, mrows); err != nil {
					return err
				}
			}
			for _, name := range u.plain {
				if err := send(ctx, name, rows); err != nil {
					return err
				}
			}
			return nil
		})
		st.RowsRead += rs.RowsRead
		st.Bytes += rs.Scan.Bytes
		st.SpillFiles += rs.SpillFiles
		st.SpillBytes += rs.SpillBytes
		st.StaleSpillDirs = append(st.StaleSpillDirs, rs.StaleSpillDirs...)
		st.StaleSpillErr = errors.Join(st.StaleSpillErr, rs.StaleSpillErr)
		if err != nil {
			return st, fmt.Errorf("reports: %s: %w", ds, err)
		}
	}
	for _, sp := range specs {
		switch sp.kind {
		case specTop:
			if err := send(ctx, sp.name, rankRows(tops[sp.name].result())); err != nil {
				return st, err
			}
		case specSummary:
			rows, err := sum.top(ctx, TopN)
			st.SpillFiles += len(sum.files)
			st.SpillBytes += sum.bytes
			st.SummarySpillBytes, st.SummaryPeakBytes = sum.bytes, sum.peak
			if err != nil {
				return st, err
			}
			if err := send(ctx, sp.name, summaryRows(from, rows)); err != nil {
				return st, err
			}
		}
	}
	if err := sum.close(); err != nil {
		return st, err
	}
	return st, nil
}

const metricsTableName = "report_metrics"

// Kinds of report table: a query's rows as they are, a top list of a
// day-level query, the shared metrics, the security summary.
const (
	specPlain = iota
	specTop
	specMetrics
	specSummary
)

// tableSpec is one report table: its name, its documentation and how it is
// made from the query results.
type tableSpec struct {
	name, doc string
	kind      int
	query     string // specPlain, specTop
	measure   int    // specTop: the ranking measure
}

// tableSpecs lists the nightly report tables in their order.
func tableSpecs() []tableSpec {
	plain := func(name, doc, q string) tableSpec { return tableSpec{name: name, doc: doc, kind: specPlain, query: q} }
	top := func(name, doc, q string, m int) tableSpec {
		return tableSpec{name: name, doc: doc, kind: specTop, query: q, measure: m}
	}
	return []tableSpec{
		plain("report_auth_ip_hour", "auth attempts per source IP and hour", "auth_ip_hour"),
		plain("report_auth_user_hour", "auth attempts per user and hour", "auth_user_hour"),
		plain("report_auth_ip_day", "auth attempts per source IP and day, distinct users tried (spraying)", "auth_ip_day"),
		plain("report_auth_user_day", "auth attempts per user and day, distinct source IPs (distributed brute force)", "auth_user_day"),
		top("report_auth_top_sources", "top attacking source IPs by failed logins", "auth_ip_day", 0),
		plain("report_firewall_ip_port_hour", "denied and dropped packets per source IP, destination port and hour", "firewall_ip_port_hour"),
		plain("report_firewall_scan_day", "scan summary: blocked packets and distinct ports per source IP and day", "firewall_scan_day"),
		top("report_firewall_top_ports", "top scanned destination ports by blocked packets", "firewall_port_day", 0),
		plain("report_ids_alerts_hour", "IDS alerts per signature, category, severity, source IP and hour", "ids_alerts_hour"),
		plain("report_ids_ip_day", "IDS alerts per source IP and day", "ids_ip_day"),
		plain("report_web_status_hour", "HTTP requests by status class and bytes served per hour", "web_status_hour"),
		plain("report_web_client_hour", "HTTP requests, 4xx, 5xx and bytes per client and hour", "web_client_hour"),
		top("report_web_top_clients", "top web clients by requests", "web_client_day", 0),
		top("report_web_top_paths", "top requested paths", "web_path_day", 0),
		{name: metricsTableName, doc: "shared metrics (schemas/metrics) computed by the batch layer", kind: specMetrics},
		{name: "report_security_summary", doc: "daily top riskiest source IPs across all datasets", kind: specSummary},
	}
}

// rankLess is the top lists' order: measure m descending, ties by key.
func rankLess(a, b *Row, m int) bool {
	if a.Values[m] != b.Values[m] {
		return a.Values[m] > b.Values[m]
	}
	return fmt.Sprint(a.Keys) < fmt.Sprint(b.Keys)
}

// topAcc keeps the TopN candidates of a day-level result seen so far.
// The order is total (a day-level result has one row per key), so the
// TopN of the candidates kept is the TopN of all rows.
type topAcc struct {
	measure int
	rows    []Row
}

func (a *topAcc) add(rows []Row) {
	for _, r := range rows {
		// Own copy: the rows' values share the merge's arrays.
		a.rows = append(a.rows, Row{Period: r.Period, Keys: append([]string(nil), r.Keys...), Values: append([]int64(nil), r.Values...)})
		if len(a.rows) >= 8*TopN {
			a.trim()
		}
	}
}

func (a *topAcc) trim() {
	sort.SliceStable(a.rows, func(i, j int) bool { return rankLess(&a.rows[i], &a.rows[j], a.measure) })
	if len(a.rows) > TopN {
		a.rows = a.rows[:TopN:TopN]
		a.rows = append([]Row(nil), a.rows...)
	}
}

func (a *topAcc) result() []Row {
	if a == nil {
		return nil
	}
	a.trim()
	return a.rows
}

// rankRows prefixes ranked rows with their rank key.
func rankRows(rows []Row) []Row {
	out := make([]Row, len(rows))
	for i, row := range rows {
		out[i] = Row{Period: row.Period, Keys: append([]string{strconv.Itoa(i + 1)}, row.Keys...), Values: row.Values}
	}
	return out
}
