// Package chload is the batch layer's ClickHouse side: versioned DDL
// (event tables generated from schemas/, report tables from
// batch/reports, the job-run history), column-wise loading of Parquet
// chunks, and atomic per-partition replacement through staging tables, so
// re-running a job for an interval replaces exactly that interval's rows.
//
// Every statement runs on ClickHouse 18.16 and current releases:
// DateTime plus _ms columns (no DateTime64), named INSERT columns, and
// ALTER TABLE ... REPLACE PARTITION ... FROM (checked on 18.16.1).
package chload

import (
	"fmt"
	"strings"

	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/schemas"
)

// MigrationsTable records the applied batch migrations.
const MigrationsTable = "batch_schema_migrations"

// HistoryTable holds one row per job attempt.
const HistoryTable = "batch_job_runs"

// StagingSuffix names the staging twin of a table: rows of a run are
// inserted there and swapped in with REPLACE PARTITION.
const StagingSuffix = "__staging"

// EventDatasets are the datasets load-events copies into ClickHouse.
func EventDatasets() []string {
	return []string{schemas.DatasetAuth, schemas.DatasetFirewall, schemas.DatasetIDS, schemas.DatasetWeb, schemas.DatasetSyslog, schemas.DatasetQuarantine}
}

// EventTable is the ClickHouse table of a dataset's events.
func EventTable(dataset string) string { return "events_" + dataset }

// Migrations returns the batch layer's single-server DDL in version order
// (MigrationsFor the zero Topology).
func Migrations() []chdb.Migration {
	m, _ := MigrationsFor(Topology{})
	return m
}

// MigrationsFor returns the batch layer's DDL for topo in version order.
// Versions are history: a change to a released statement is a new
// migration (for event columns, (*schemas.Dataset).ClickHouseAddColumn),
// never an edit, and chdb.Migrate refuses an edited one. The cluster
// variant renders the same statements through Topology.Create, so the two
// cannot drift apart.
func MigrationsFor(topo Topology) ([]chdb.Migration, error) {
	var events, reportsDDL strings.Builder
	add := func(b *strings.Builder, stmt string, key ShardingKey) error {
		stmts, err := topo.Create(stmt, key)
		if err != nil {
			return err
		}
		for _, s := range stmts {
			b.WriteString(s + ";\n")
		}
		return nil
	}
	for _, name := range EventDatasets() {
		ds, _ := schemas.Lookup(name)
		key := ShardRandom
		if _, ok := ds.Field("source_ip"); ok {
			key = ShardBySourceIP
		}
		if err := add(&events, ds.ClickHouseDDL("", EventTable(name), schemas.DDLOptions{IfNotExists: true}), key); err != nil {
			return nil, err
		}
		if topo.Clustered() {
			// The staging twin needs its own engine (and ZooKeeper path)
			// on a cluster; CREATE ... AS would share the original's.
			if err := add(&events, ds.ClickHouseDDL("", EventTable(name)+StagingSuffix, schemas.DDLOptions{IfNotExists: true}), key); err != nil {
				return nil, err
			}
		} else {
			events.WriteString(stagingDDL(EventTable(name)) + ";\n")
		}
	}
	for _, t := range reports.TableSchemas() {
		if err := add(&reportsDDL, ReportDDL(t), ShardRandom); err != nil {
			return nil, err
		}
		if topo.Clustered() {
			st := t
			st.Name += StagingSuffix
			if err := add(&reportsDDL, ReportDDL(st), ShardRandom); err != nil {
				return nil, err
			}
		} else {
			reportsDDL.WriteString(stagingDDL(t.Name) + ";\n")
		}
	}
	var history strings.Builder
	if err := add(&history, historyDDL, ShardingKey("cityHash64(job)")); err != nil {
		return nil, err
	}
	hist := strings.TrimSuffix(history.String(), ";\n")
	return []chdb.Migration{
		{Version: 1, Name: "job run history", SQL: hist},
		{Version: 2, Name: fmt.Sprintf("event tables, schemas version %d", schemas.Version), SQL: events.String()},
		{Version: 3, Name: "report tables", SQL: reportsDDL.String()},
	}, nil
}

const historyDDL = `CREATE TABLE IF NOT EXISTS ` + HistoryTable + ` (
    job String,
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    attempt UInt16,
    status String,
    started DateTime('UTC'),
    started_ms UInt16,
    finished DateTime('UTC'),
    finished_ms UInt16,
    rows_read UInt64,
    rows_written UInt64,
    error String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(interval_start)
ORDER BY (job, interval_start, started)`

// stagingDDL creates the staging twin with the same structure.
func stagingDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + chdb.QuoteIdent(table+StagingSuffix) + " AS " + chdb.QuoteIdent(table)
}

// ReportDDL is the CREATE TABLE of a report table: interval columns, the
// period, keys and values, partitioned by the interval's start day so one
// run owns exactly one partition.
func ReportDDL(t reports.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", chdb.QuoteIdent(t.Name))
	b.WriteString("    interval_start DateTime('UTC'),\n    interval_end DateTime('UTC'),\n    period_start DateTime('UTC'),\n")
	order := []string{"period_start"}
	for _, c := range t.Keys {
		fmt.Fprintf(&b, "    %s %s,\n", chdb.QuoteIdent(c.Name), c.Type)
		order = append(order, chdb.QuoteIdent(c.Name))
	}
	for _, c := range t.Values {
		fmt.Fprintf(&b, "    %s %s,\n", chdb.QuoteIdent(c.Name), c.Type)
	}
	b.WriteString("    computed_at DateTime('UTC')\n) ENGINE = MergeTree()\nPARTITION BY toYYYYMMDD(interval_start)\nORDER BY (")
	b.WriteString(strings.Join(order, ", "))
	b.WriteString(")")
	return b.String()
}

// reportColumns are a report table's INSERT columns in order.
func reportColumns(t reports.Table) []string {
	cols := []string{"interval_start", "interval_end", "period_start"}
	for _, c := range t.Keys {
		cols = append(cols, c.Name)
	}
	for _, c := range t.Values {
		cols = append(cols, c.Name)
	}
	return append(cols, "computed_at")
}

func quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = chdb.QuoteIdent(c)
	}
	return strings.Join(q, ", ")
}
