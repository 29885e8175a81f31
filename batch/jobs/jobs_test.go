package jobs

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

type env struct {
	db   *chdb.DB
	hist *chload.History
	deps Deps
	recs []schemas.Record
	all  map[string]scheduler.Job
}

func setup(t *testing.T, fsys storage.FS, n int) *env {
	t.Helper()
	srv := chtest.Shared(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := chload.New(db, nil)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	g := batchtest.NewGen(11, 150)
	// Two busy hours a day (few files keep the fixture quick), one of
	// them the last hour of the day.
	var recs []schemas.Record
	for d := 0; d < 3; d++ {
		day := time.Date(2026, 5, 1+d, 0, 0, 0, 0, time.UTC)
		recs = append(recs, g.Events(n/6, day.Add(9*time.Hour), day.Add(10*time.Hour), [4]int{4, 3, 1, 3})...)
		recs = append(recs, g.Events(n/6, day.Add(23*time.Hour), day.Add(24*time.Hour), [4]int{4, 3, 1, 3})...)
	}
	if _, err := batchtest.WriteLayout(ctx, fsys, recs, batchtest.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	d := Deps{FS: fsys, Source: &source.Layout{FS: fsys, Datasets: chload.EventDatasets()}, Loader: l, Workers: 2}
	return &env{db: db, hist: chload.NewHistory(db), deps: d, recs: recs, all: New(d)}
}

func (e *env) count(t *testing.T, q string) int {
	t.Helper()
	var n uint64
	if err := e.db.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return int(n)
}

func localFS(t *testing.T) storage.FS {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func TestBackfillThreeDays(t *testing.T) {
	for _, backend := range []string{"local", "hdfs"} {
		t.Run(backend, func(t *testing.T) {
			fsys := localFS(t)
			if backend == "hdfs" {
				srv := hdfstest.Start(t)
				var err error
				if fsys, err = storage.Open(context.Background(), srv.URL()+"data", storage.Options{}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { fsys.Close() })
			}
			testBackfill(t, setup(t, fsys, 6000))
		})
	}
}

func testBackfill(t *testing.T, e *env) {
	ctx := context.Background()
	ex, err := scheduler.NewExecutor(scheduler.ExecOptions{History: e.hist, Attempts: 2, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := Resolve(e.all)
	plan, err := PlanDays(jobs, time.UTC, "2026-05-01", "2026-05-03", -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 6 {
		t.Fatalf("plan has %d steps, want 6", len(plan))
	}
	var progress bytes.Buffer
	sum, err := Execute(ctx, ex, plan, ExecOptions{Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if sum.Done != 6 || sum.RowsRead == 0 {
		t.Fatalf("summary %+v", sum)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[5], "[6/6] reports 2026-05-03T00:00:00Z/2026-05-04T00:00:00Z: done |") || !strings.Contains(lines[0], "rows/s | ETA") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	// Every event is in ClickHouse exactly once.
	for _, ds := range reports.ReportDatasets() {
		want := 0
		for _, r := range e.recs {
			if r.Dataset() == ds {
				want++
			}
		}
		if got := e.count(t, "SELECT count() FROM "+chload.EventTable(ds)); got != want {
			t.Fatalf("%s: %d rows, want %d", ds, got, want)
		}
	}
	// Reports for each day; the summary's top 20 per day.
	if got := e.count(t, "SELECT count() FROM report_security_summary"); got != 3*reports.TopN {
		t.Fatalf("summary rows %d", got)
	}
	var authFailures int
	for _, r := range e.recs {
		if a, ok := r.(*schemas.Auth); ok && a.Outcome == "failure" && a.SourceIP != "" {
			authFailures++
		}
	}
	if got := e.count(t, "SELECT toUInt64(sum(failures)) FROM report_auth_ip_hour"); got != authFailures {
		t.Fatalf("report failures %d, want %d", got, authFailures)
	}
	// Resumable: a second backfill skips what succeeded; --force re-runs
	// without duplicating.
	progress.Reset()
	sum, err = Execute(ctx, ex, plan, ExecOptions{Progress: &progress})
	if err != nil || sum.Skipped != 6 || sum.Done != 0 {
		t.Fatalf("resume: %+v %v", sum, err)
	}
	day3 := plan[len(plan)-2:]
	if sum, err = Execute(ctx, ex, day3, ExecOptions{Force: true}); err != nil || sum.Done != 2 {
		t.Fatalf("force: %+v %v", sum, err)
	}
	if got := e.count(t, "SELECT toUInt64(sum(failures)) FROM report_auth_ip_hour"); got != authFailures {
		t.Fatalf("after forced re-run: failures %d, want %d", got, authFailures)
	}
	if got := e.count(t, "SELECT count() FROM report_security_summary"); got != 3*reports.TopN {
		t.Fatalf("after forced re-run: summary rows %d", got)
	}
	runs, err := e.hist.List(ctx, scheduler.Query{Job: Reports})
	if err != nil || len(runs) != 4 || runs[0].Status != scheduler.StatusSucceeded || runs[0].RowsRead == 0 || runs[0].RowsWritten == 0 {
		t.Fatalf("history %+v %v", runs, err)
	}
}

// TestScheduledRunAndCatchUp drives the scheduler (fake clock) with the
// real jobs and the ClickHouse history: after "downtime" it catches up the
// missed days in order and records them; the next fire runs the next day.
func TestScheduledRunAndCatchUp(t *testing.T) {
	e := setup(t, localFS(t), 3000)
	ctx := context.Background()
	clk := scheduler.NewFakeClock(time.Date(2026, 5, 3, 0, 20, 0, 0, time.UTC))
	ex, err := scheduler.NewExecutor(scheduler.ExecOptions{Clock: clk, History: e.hist,
		Ready: source.Static{At: time.Date(2026, 5, 4, 0, 10, 0, 0, time.UTC)}, AllowedLateness: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := config.CronParser.Parse("15 0 * * *")
	entry := scheduler.Entry{Spec: "15 0 * * *", Schedule: spec, Location: time.UTC, Jobs: []scheduler.Job{e.all[Reports]}}
	s, err := scheduler.New([]scheduler.Entry{entry}, scheduler.Options{Executor: ex, Clock: clk, CatchUpHorizon: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pass(ctx, entry); err != nil {
		t.Fatal(err)
	}
	runs, _ := e.hist.List(ctx, scheduler.Query{Job: Reports})
	if len(runs) != 2 || runs[1].Interval.Start.Day() != 1 || runs[0].Interval.Start.Day() != 2 {
		t.Fatalf("catch-up runs %+v, want 05-01 then 05-02", runs)
	}
	clk.Set(time.Date(2026, 5, 4, 0, 15, 0, 0, time.UTC))
	if err := s.Pass(ctx, entry); err != nil {
		t.Fatal(err)
	}
	runs, _ = e.hist.List(ctx, scheduler.Query{Job: Reports})
	if len(runs) != 3 || runs[0].Interval.Start.Day() != 3 || runs[0].Status != scheduler.StatusSucceeded {
		t.Fatalf("after the fire: %+v", runs)
	}
	if got := e.count(t, "SELECT count(DISTINCT interval_start) FROM report_auth_ip_day"); got != 3 {
		t.Fatalf("report days %d", got)
	}
	// Not ready: the watermark stops short of 05-04 + lateness.
	clk.Set(time.Date(2026, 5, 5, 0, 15, 0, 0, time.UTC))
	if err := s.Pass(ctx, entry); err != nil {
		t.Fatal(err)
	}
	runs, _ = e.hist.List(ctx, scheduler.Query{Job: Reports, Limit: 1})
	if runs[0].Status != scheduler.StatusNotReady || !strings.Contains(runs[0].Error, "watermark") {
		t.Fatalf("expected not_ready, got %+v", runs[0])
	}
}

func TestPlanDays(t *testing.T) {
	all := New(Deps{})
	jobs, _ := Resolve(all)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	plan, err := PlanDays(jobs, berlin, "2026-03-29", "2026-03-29", -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || plan[0].Job.Name() != LoadEvents || plan[1].Job.Name() != Reports || plan[0].Interval.End.Sub(plan[0].Interval.Start) != 23*time.Hour {
		t.Fatalf("29 Mar in Berlin: %d steps", len(plan))
	}
	lj, _ := Resolve(all, LoadEvents)
	plan, err = PlanDays(lj, berlin, "2026-10-25", "2026-10-25", 2)
	if err != nil || len(plan) != 2 {
		t.Fatalf("hour 02 on 25 Oct: %d steps, %v (the repeated hour is two)", len(plan), err)
	}
	if _, err := PlanDays(jobs, berlin, "2026-10-25", "2026-10-25", 2); err == nil {
		t.Fatal("--hour with the daily job accepted")
	}
	if _, err := Resolve(all, "nope"); err == nil {
		t.Fatal("unknown job accepted")
	}
	if _, err := PlanDays(jobs, berlin, "2026-10-26", "2026-10-25", -1); err == nil {
		t.Fatal("reversed range accepted")
	}
}
