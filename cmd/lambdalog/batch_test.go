package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// batchFixture writes events for two days and the current hour into a
// local dataset and returns its URL and a ClickHouse DSN.
func batchFixture(t *testing.T) (dataset, dsn string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	fsys, err := storage.Open(ctx, "file://"+dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	g := batchtest.NewGen(3, 50)
	recs := g.Events(1500, time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), [4]int{1, 1, 1, 1})
	recs = append(recs, g.Events(1500, time.Date(2026, 6, 2, 10, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 11, 0, 0, 0, time.UTC), [4]int{1, 1, 1, 1})...)
	// The previous and the current hour, for the scheduler's catch-up.
	now := time.Now().UTC().Truncate(time.Hour)
	recs = append(recs, g.Events(300, now.Add(-time.Hour), now.Add(time.Minute), [4]int{1, 0, 0, 0})...)
	if _, err := batchtest.WriteLayout(ctx, fsys, recs, batchtest.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := chtest.Start(t)
	return "file://" + dir, srv.DSN("lambdalog_batch")
}

func TestBatchCommands(t *testing.T) {
	dataset, dsn := batchFixture(t)
	common := []string{"--dataset", dataset, "--clickhouse", dsn, "--log-level", "warn"}

	code, out, errOut := runInProcess(t, append([]string{"batch", "run", "--date", "2026-06-01", "--ignore-watermark"}, common...)...)
	if code != 0 || !strings.Contains(out, "[1/2] load-events 2026-06-01T00:00:00Z/2026-06-02T00:00:00Z: done") ||
		!strings.Contains(out, "[2/2] reports") || !strings.Contains(out, "run: 2 done, 0 skipped, 0 failed, 3000 rows read") {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
	}
	// Backfill both days: 06-01 of load-events was already run by
	// "run" ... but run and backfill share the history, so both of the
	// first day's jobs are skipped.
	code, out, errOut = runInProcess(t, append([]string{"batch", "backfill", "--from", "2026-06-01", "--to", "2026-06-02", "--ignore-watermark"}, common...)...)
	if code != 0 || !strings.Contains(out, "backfill: 2 done, 2 skipped, 0 failed") || !strings.Contains(out, "ETA") {
		t.Fatalf("backfill: exit %d\n%s\n%s", code, out, errOut)
	}
	// Without --ignore-watermark a day after the data is not ready.
	code, out, _ = runInProcess(t, append([]string{"batch", "run", "--job", "reports", "--date", "2030-01-01"}, common...)...)
	if code != 1 || !strings.Contains(out, "not complete") {
		t.Fatalf("run past the watermark: exit %d\n%s", code, out)
	}
	code, out, errOut = runInProcess(t, append([]string{"batch", "history", "--job", "reports", "--limit", "10"}, common...)...)
	if code != 0 {
		t.Fatalf("history: exit %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "JOB") || !strings.Contains(lines[1], "not_ready") ||
		!strings.Contains(lines[2], "2026-06-02T00:00:00Z/2026-06-03T00:00:00Z  1        succeeded") {
		t.Fatalf("history:\n%s", out)
	}

	ctx := context.Background()
	db, err := chdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n uint64
	if err := db.QueryRow(ctx, "SELECT count() FROM events_auth WHERE timestamp < toDateTime('2026-06-03 00:00:00', 'UTC')").Scan(&n); err != nil || n == 0 {
		t.Fatalf("events_auth: %d %v", n, err)
	}
	var want uint64
	db.QueryRow(ctx, "SELECT toUInt64(countIf(event_outcome = 'failure' AND source_ip != '')) FROM events_auth WHERE timestamp < toDateTime('2026-06-03 00:00:00', 'UTC')").Scan(&want)
	if err := db.QueryRow(ctx, "SELECT toUInt64(sum(failures)) FROM report_auth_ip_day").Scan(&n); err != nil || n != want || n == 0 {
		t.Fatalf("report failures %d, events say %d (%v)", n, want, err)
	}

	// Usage errors exit 2.
	for _, args := range [][]string{{"batch"}, {"batch", "run"}, {"batch", "run", "--date", "2026-06-01", "--job", "nope"}, {"batch", "frobnicate"}} {
		if code, _, _ := runInProcess(t, append(args, common...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestBatchSchedule starts the scheduler with a one-second cron: at start it
// catches up the previous hour (the current hour's partition makes it
// complete), records the run, and serves metrics until cancelled.
func TestBatchSchedule(t *testing.T) {
	dataset, dsn := batchFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(t.TempDir(), "lambdalog.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`dataset: {url: %q}
clickhouse: {dsn: %q}
batch:
  schedules: [{job: load-events, cron: "* * * * * *"}]
  catch_up_horizon: 1h
  allowed_lateness: 0s
  not_ready: report
  http: %s
log: {level: warn}
`, dataset, dsn, httpAddr)), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"batch", "schedule", "--config", cfg}, strings.NewReader(""), &out, &errOut, nil)
	}()
	deadline := time.Now().Add(60 * time.Second)
	var history string
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		var o, e bytes.Buffer
		run(context.Background(), []string{"batch", "history", "--config", cfg}, strings.NewReader(""), &o, &e, nil)
		if history = o.String(); strings.Contains(history, "succeeded") {
			break
		}
	}
	time.Sleep(2 * time.Second) // let a few one-second fires pass
	// The run and spill metrics are exposed (the spill counter stays 0:
	// only load-events is scheduled here).
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`lambdalog_batch_runs_total{job="load-events",status="succeeded"} 1`, "lambdalog_batch_spill_bytes_total 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("schedule exit %d\n%s", code, errOut.String())
	}
	prev := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	want := fmt.Sprintf("load-events  %s/%s  1        succeeded", prev.Format(time.RFC3339), prev.Add(time.Hour).Format(time.RFC3339))
	if !strings.Contains(history, want) || strings.Count(history, "succeeded") != 1 {
		t.Fatalf("history after scheduling:\n%s\nwant a line with %q", history, want)
	}
	if !strings.Contains(errOut.String(), "metrics on http://") {
		t.Fatalf("no metrics server: %s", errOut.String())
	}
	// Later fires found nothing due: still one run.
	var o bytes.Buffer
	run(context.Background(), []string{"batch", "history", "--config", cfg}, strings.NewReader(""), &o, &bytes.Buffer{}, nil)
	if strings.Count(o.String(), "load-events") != 1 {
		t.Fatalf("repeated runs:\n%s", o.String())
	}
}

// TestBatchRunSpillsWithinBudget runs the reports job of one day twice:
// with the default budget (in memory) and with batch.aggregation_memory_mib
// at 1 (spilling). Every report table holds the same rows, the log reports
// the spill, and the spill directory is empty afterwards.
func TestBatchRunSpillsWithinBudget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fsys, err := storage.Open(ctx, "file://"+dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := batchtest.WriteGenerated(ctx, fsys, batchtest.NewGen(5, 2000), 40_000, day, day.Add(24*time.Hour), [4]int{4, 3, 1, 3}, batchtest.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := chtest.Start(t)
	dsn := srv.DSN("lambdalog_spill")
	spill := t.TempDir()
	config := func(budget string) string {
		p := filepath.Join(t.TempDir(), "lambdalog.yaml")
		os.WriteFile(p, []byte(fmt.Sprintf("dataset: {url: %q}\nclickhouse: {dsn: %q}\nbatch: {spill_dir: %q%s}\nlog: {level: info}\n", "file://"+dir, dsn, spill, budget)), 0o600)
		return p
	}
	db, err := chdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// fingerprint hashes every row of every report table (computed_at
	// aside).
	fingerprint := func() map[string]string {
		out := map[string]string{}
		for _, tb := range reports.TableSchemas() {
			cols := []string{"interval_start", "interval_end", "period_start"}
			for _, c := range append(append([]reports.Column{}, tb.Keys...), tb.Values...) {
				cols = append(cols, c.Name)
			}
			var n, h uint64
			q := fmt.Sprintf("SELECT count(), sum(cityHash64(%s)) FROM %s", strings.Join(cols, ", "), tb.Name)
			if err := db.QueryRow(ctx, q).Scan(&n, &h); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out[tb.Name] = fmt.Sprint(n, " rows, hash ", h)
		}
		return out
	}
	runReports := func(budget string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"batch", "run", "--job", "reports", "--date", "2026-06-01", "--ignore-watermark", "--config", config(budget)}, strings.NewReader(""), &out, &errOut, nil)
		if code != 0 {
			t.Fatalf("batch run (budget %q): exit %d\n%s\n%s", budget, code, out.String(), errOut.String())
		}
		return errOut.String()
	}
	logMem := runReports("")
	want := fingerprint()
	if !strings.Contains(logMem, "spill_bytes=0") {
		t.Errorf("in-memory run's log does not report spill_bytes=0:\n%s", logMem)
	}
	logSpill := runReports(", aggregation_memory_mib: 1")
	got := fingerprint()
	if strings.Contains(logSpill, "spill_bytes=0") || !strings.Contains(logSpill, "spill_bytes=") {
		t.Errorf("1 MiB run's log does not report a spill:\n%s", logSpill)
	}
	for name, w := range want {
		if strings.HasPrefix(w, "0 rows") {
			t.Errorf("%s: no rows; the comparison proves nothing", name)
		}
		if got[name] != w {
			t.Errorf("%s: %s with a 1 MiB budget, %s in memory", name, got[name], w)
		}
	}
	if ents, _ := os.ReadDir(spill); len(ents) != 0 {
		t.Errorf("spill dir holds %d entries after the run", len(ents))
	}
}
