package chload

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/internal/chdb"
)

// PushDownStats describe a report run computed by ClickHouse.
type PushDownStats struct {
	// RowsRead counts the events of the report datasets in the interval.
	RowsRead int64
	// RowsWritten counts the report rows written.
	RowsWritten int64
}

// ComputeReports computes the nightly report set of [start, end) inside
// ClickHouse (batch.compute: clickhouse) from the event tables that
// load-events filled, with one INSERT ... SELECT per table into its staging
// partition, and then swaps every table's partition in, exactly as
// ReplaceReports does with rows computed in Go: a failure before the swaps
// leaves every previous result visible. On a cluster the SELECTs read the
// Distributed event tables (each shard aggregates its rows, the initiator
// merges) and the INSERTs go to the Distributed staging tables, so the
// report rows never pass through the batch machine.
//
// The events must be loaded for the interval first (the reports job
// depends on load-events; jobs.Order).
func (l *Loader) ComputeReports(ctx context.Context, start, end time.Time) (PushDownStats, error) {
	var st PushDownStats
	sels, err := reports.PushDown(EventTable, start, end)
	if err != nil {
		return st, fmt.Errorf("chload: %w", err)
	}
	part := partitionID(start)
	computed := l.now().UTC().Unix()
	for _, ts := range sels {
		t := ts.Table
		if err := l.dropStaging(ctx, t.Name, part); err != nil {
			return st, err
		}
		cols := reportColumns(t)
		// (p, keys as String, values as Int64) cast to the table's types.
		out := []string{fmt.Sprintf("toDateTime(%d, 'UTC')", start.Unix()), fmt.Sprintf("toDateTime(%d, 'UTC')", end.Unix()), "toDateTime(p, 'UTC')"}
		for i, c := range t.Keys {
			out = append(out, cast(c.Type, fmt.Sprintf("a%d", i)))
		}
		for i, c := range t.Values {
			out = append(out, cast(c.Type, fmt.Sprintf("b%d", i)))
		}
		out = append(out, fmt.Sprintf("toDateTime(%d, 'UTC')", computed))
		for _, sel := range ts.Selects {
			q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s)", chdb.QuoteIdent(t.Name+StagingSuffix), quoteAll(cols), strings.Join(out, ", "), sel)
			if err := l.exec(ctx, q); err != nil {
				return st, err
			}
		}
		var n uint64
		if err := l.db.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE toYYYYMMDD(interval_start) = %s", chdb.QuoteIdent(t.Name+StagingSuffix), part)).Scan(&n); err != nil {
			return st, fmt.Errorf("chload: count %s: %w", t.Name, err)
		}
		st.RowsWritten += int64(n)
	}
	for _, ds := range reports.ReportDatasets() {
		var n uint64
		if err := l.db.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE timestamp >= toDateTime(%d, 'UTC') AND timestamp < toDateTime(%d, 'UTC')",
			chdb.QuoteIdent(EventTable(ds)), start.Unix(), end.Unix())).Scan(&n); err != nil {
			return st, fmt.Errorf("chload: count %s: %w", EventTable(ds), err)
		}
		st.RowsRead += int64(n)
	}
	for _, ts := range sels {
		if err := l.swap(ctx, ts.Table.Name, part); err != nil {
			return st, err
		}
	}
	return st, nil
}

func cast(chType, col string) string {
	switch chType {
	case "String":
		return col
	case "UInt16":
		return "toUInt16(" + col + ")"
	case "Int32":
		return "toInt32(" + col + ")"
	case "Int64":
		return "toInt64(" + col + ")"
	case "UInt64":
		return "toUInt64(" + col + ")"
	}
	return col
}
