package chload

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/internal/chdb"
)

// dumpReports returns every report table's rows of the interval starting
// at day, all columns but computed_at, sorted, by table.
func dumpReports(t testing.TB, db *chdb.DB, day time.Time) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tb := range reports.TableSchemas() {
		cols := reportColumns(tb)
		parts := make([]string, 0, len(cols))
		for _, c := range cols[:len(cols)-1] {
			parts = append(parts, "toString("+chdb.QuoteIdent(c)+")")
		}
		q := fmt.Sprintf("SELECT concat(%s) AS r FROM %s WHERE interval_start = toDateTime(%d, 'UTC') ORDER BY r",
			strings.Join(parts, ", '|', "), chdb.QuoteIdent(tb.Name), day.Unix())
		rows, err := db.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				t.Fatal(err)
			}
			out[tb.Name] = append(out[tb.Name], r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// compareReports fails unless got and want hold the same rows per table.
func compareReports(t testing.TB, what string, got, want map[string][]string) {
	t.Helper()
	for _, tb := range reports.TableSchemas() {
		g, w := got[tb.Name], want[tb.Name]
		if len(w) == 0 {
			t.Errorf("%s: %s: the reference has no rows", what, tb.Name)
		}
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			n := 0
			for n < len(g) && n < len(w) && g[n] == w[n] {
				n++
			}
			var gs, ws string
			if n < len(g) {
				gs = g[n]
			}
			if n < len(w) {
				ws = w[n]
			}
			t.Errorf("%s: %s: %d rows, want %d; first difference at row %d:\n got  %s\n want %s", what, tb.Name, len(g), len(w), n, gs, ws)
		}
	}
}

// TestPushDownEqualsGo computes one day's report set in Go (Arrow over
// Parquet) and in ClickHouse (INSERT ... SELECT over the loaded event
// tables) and checks every report table holds exactly the same rows; a
// second push-down run replaces its rows (no duplicates).
func TestPushDownEqualsGo(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, recs, src := fixture(t, 30000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	var events int
	for _, ds := range reports.ReportDatasets() {
		files, err := src.Files(ctx, ds, day, end)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.LoadEvents(ctx, fsys, ds, files, day, end, 2); err != nil {
			t.Fatal(err)
		}
		events += inside(recs, ds, day, end)
	}
	out, err := reports.Compute(ctx, src, fsys, day, end, reports.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	goRows, err := l.ReplaceReports(ctx, day, end, out.Tables)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpReports(t, db, day)
	// Empty the report tables, so what is compared below can only come
	// from the push-down.
	for _, tb := range reports.TableSchemas() {
		if err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", chdb.QuoteIdent(tb.Name), partitionID(day))); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db, "SELECT count() FROM report_auth_ip_hour"); n != 0 {
		t.Fatalf("%d rows left after DROP PARTITION", n)
	}

	for run := 1; run <= 2; run++ {
		st, err := l.ComputeReports(ctx, day, end)
		if err != nil {
			t.Fatal(err)
		}
		if st.RowsWritten != goRows || st.RowsRead != int64(events) {
			t.Errorf("run %d: push-down wrote %d rows from %d events, Go wrote %d from %d", run, st.RowsWritten, st.RowsRead, goRows, events)
		}
		compareReports(t, fmt.Sprintf("push-down run %d", run), dumpReports(t, db, day), want)
	}
}
