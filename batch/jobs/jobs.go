// Package jobs wires lambdalog's batch jobs: load-events (hourly: copy a
// dataset's events of an interval into ClickHouse) and reports (daily: the
// nightly report set computed from Parquet and loaded into report tables),
// plus the run and backfill drivers the CLI uses.
package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// Job names.
const (
	LoadEvents = "load-events"
	Reports    = "reports"
)

// Order is every job in dependency order: events are loaded before the
// day's reports (which analysts join with them) are replaced.
var order = []string{LoadEvents, Reports}

// Order returns every job name in dependency order.
func Order() []string { return append([]string(nil), order...) }

// Deps are what the jobs read and write.
type Deps struct {
	// FS is the master dataset.
	FS storage.FS
	// Source lists its committed files.
	Source source.Source
	// Loader writes ClickHouse.
	Loader *chload.Loader
	// Workers is the scan parallelism (0: every core).
	Workers int
	// Logger receives job logs.
	Logger *slog.Logger
	// Compute is where the reports job aggregates: ComputeGo (default) or
	// ComputeClickHouse (batch.compute).
	Compute string
	// AggregationMemory bounds the Go reports' aggregation state in bytes
	// (batch.aggregation_memory_mib); past it the state spills to
	// SpillDir (os.TempDir when empty). 0: unbounded.
	AggregationMemory int64
	SpillDir          string
	// Spilled, when set, is told the bytes each reports run spilled (the
	// batch schedule's metric).
	Spilled func(bytes int64)
}

// Compute modes of the reports job.
const (
	// ComputeGo reads the Parquet files with Arrow on the batch machine.
	ComputeGo = "go"
	// ComputeClickHouse runs INSERT ... SELECT over the event tables that
	// load-events filled (on a cluster, over the Distributed tables).
	ComputeClickHouse = "clickhouse"
)

// New returns the jobs by name.
func New(d Deps) map[string]scheduler.Job {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return map[string]scheduler.Job{
		LoadEvents: &loadEvents{d: d},
		Reports:    &reportsJob{d: d},
	}
}

// Resolve returns the named jobs in dependency order; an empty list means
// every job.
func Resolve(all map[string]scheduler.Job, names ...string) ([]scheduler.Job, error) {
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := all[n]; !ok {
			return nil, fmt.Errorf("jobs: unknown job %q (have %v)", n, order)
		}
		want[n] = true
	}
	var out []scheduler.Job
	for _, n := range order {
		if len(want) == 0 || want[n] {
			out = append(out, all[n])
		}
	}
	return out, nil
}

type loadEvents struct{ d Deps }

func (j *loadEvents) Name() string                       { return LoadEvents }
func (j *loadEvents) Granularity() scheduler.Granularity { return scheduler.Hourly }

// Run loads every dataset's events of iv.
func (j *loadEvents) Run(ctx context.Context, iv scheduler.Interval) (scheduler.Result, error) {
	var res scheduler.Result
	for _, ds := range chload.EventDatasets() {
		files, err := j.d.Source.Files(ctx, ds, iv.Start, iv.End)
		if err != nil {
			return res, fmt.Errorf("load-events: %w", err)
		}
		st, err := j.d.Loader.LoadEvents(ctx, j.d.FS, ds, files, iv.Start, iv.End, j.d.Workers)
		if err != nil {
			return res, fmt.Errorf("load-events %s: %w", ds, err)
		}
		res.RowsRead += st.RowsRead
		res.RowsWritten += st.RowsWritten
	}
	return res, nil
}

type reportsJob struct{ d Deps }

func (j *reportsJob) Name() string                       { return Reports }
func (j *reportsJob) Granularity() scheduler.Granularity { return scheduler.Daily }

// Run computes the nightly report set for iv and replaces its rows.
func (j *reportsJob) Run(ctx context.Context, iv scheduler.Interval) (scheduler.Result, error) {
	if j.d.Compute == ComputeClickHouse {
		// The reports read the event tables: every hour of iv must have
		// been loaded, or the day would be computed from a partial load
		// (the scheduler runs load-events hourly and may still be
		// retrying one). A failed run is retried with backoff.
		done, err := chload.NewHistory(j.d.Loader.DB()).Succeeded(ctx, LoadEvents, iv.Start, iv.End)
		if err != nil {
			return scheduler.Result{}, fmt.Errorf("reports (clickhouse): %w", err)
		}
		if !scheduler.Covered(iv, done) {
			return scheduler.Result{}, fmt.Errorf("reports (clickhouse): %s has not succeeded for all of %s; the reports are computed from the loaded events", LoadEvents, iv)
		}
		st, err := j.d.Loader.ComputeReports(ctx, iv.Start, iv.End)
		if err != nil {
			return scheduler.Result{RowsRead: st.RowsRead}, fmt.Errorf("reports (clickhouse): %w", err)
		}
		return scheduler.Result{RowsRead: st.RowsRead, RowsWritten: st.RowsWritten}, nil
	}
	// The rows stream into the staging tables as the engine finishes them
	// (a flush block at a time) and are swapped in once all are staged: a
	// run that fails on the way leaves the previous result visible.
	t0 := time.Now()
	w, err := j.d.Loader.NewReportWriter(ctx, iv.Start, iv.End, reports.TableSchemas())
	if err != nil {
		return scheduler.Result{}, fmt.Errorf("reports: %w", err)
	}
	st, err := reports.ComputeTo(ctx, j.d.Source, j.d.FS, iv.Start, iv.End,
		reports.Options{Workers: j.d.Workers, MemoryBudget: j.d.AggregationMemory, SpillDir: j.d.SpillDir}, w)
	if err != nil {
		return scheduler.Result{RowsRead: st.RowsRead}, fmt.Errorf("reports: %w", err)
	}
	// The spill volume says whether the budget is too small for the day
	// (a spilled day is slower, not failed).
	j.d.Logger.Info("reports computed", "interval", iv.String(), "rows_read", st.RowsRead, "rows", st.RowsOut, "duration", time.Since(t0).Round(time.Millisecond).String(),
		"aggregation_memory_bytes", j.d.AggregationMemory, "spill_files", st.SpillFiles, "spill_bytes", st.SpillBytes)
	if j.d.Spilled != nil {
		j.d.Spilled(st.SpillBytes)
	}
	if len(st.StaleSpillDirs) > 0 {
		j.d.Logger.Info("removed spill directories of dead runs", "dirs", st.StaleSpillDirs)
	}
	if st.StaleSpillErr != nil {
		j.d.Logger.Warn("spill directories of dead runs left in place", "err", st.StaleSpillErr)
	}
	n, err := w.Commit(ctx)
	if err != nil {
		return scheduler.Result{RowsRead: st.RowsRead}, fmt.Errorf("reports: %w", err)
	}
	return scheduler.Result{RowsRead: st.RowsRead, RowsWritten: n}, nil
}

// Plan is the (job, interval) pairs of a run or backfill, in execution
// order: interval by interval, jobs in dependency order within one.
type Plan []Step

// Step is one job run for one interval.
type Step struct {
	Job      scheduler.Job
	Interval scheduler.Interval
}

// PlanDays plans jobs over the calendar days [from, to] in loc (inclusive
// dates), one step per job and day: an hourly job loads the whole day at
// once (its history row covers the day's hours, so the scheduler does not
// repeat them). With hour >= 0 only that local hour of hourly jobs is
// planned, and daily jobs are refused.
func PlanDays(jobs []scheduler.Job, loc *time.Location, from, to string, hour int) (Plan, error) {
	first, err := scheduler.Day(from, loc)
	if err != nil {
		return nil, err
	}
	last, err := scheduler.Day(to, loc)
	if err != nil {
		return nil, err
	}
	if last.Start.Before(first.Start) {
		return nil, fmt.Errorf("jobs: %s is before %s", to, from)
	}
	var plan Plan
	for day := first; !day.Start.After(last.Start); day = scheduler.Next(scheduler.Daily, loc, day) {
		var steps Plan
		for _, j := range jobs {
			switch {
			case hour >= 0 && j.Granularity() == scheduler.Daily:
				return nil, fmt.Errorf("jobs: %s runs per day; --hour applies to hourly jobs (%s)", j.Name(), LoadEvents)
			case hour >= 0:
				found := false
				for _, iv := range scheduler.Split(scheduler.Hourly, loc, day) {
					if iv.Start.In(loc).Hour() == hour {
						steps = append(steps, Step{j, iv})
						found = true
					}
				}
				if !found {
					return nil, fmt.Errorf("jobs: %s has no hour %02d in %s", day.Start.In(loc).Format("2006-01-02"), hour, loc)
				}
			default:
				steps = append(steps, Step{j, day})
			}
		}
		// Within a day: by interval end (hours before the day they make
		// up), then dependency order.
		rank := map[string]int{}
		for i, n := range order {
			rank[n] = i
		}
		sort.SliceStable(steps, func(a, b int) bool {
			if !steps[a].Interval.End.Equal(steps[b].Interval.End) {
				return steps[a].Interval.End.Before(steps[b].Interval.End)
			}
			return rank[steps[a].Job.Name()] < rank[steps[b].Job.Name()]
		})
		plan = append(plan, steps...)
	}
	return plan, nil
}

// ExecOptions tune Execute.
type ExecOptions struct {
	// Force re-runs intervals that already succeeded (run always forces;
	// backfill skips them unless --force).
	Force bool
	// Progress, when set, receives one line per step: done/total, rows/s
	// and the ETA.
	Progress io.Writer
	// Now is the clock for rates (time.Now when nil).
	Now func() time.Time
}

// Summary is the outcome of Execute.
type Summary struct {
	Done, Skipped, Failed int
	RowsRead              int64
	Failures              []scheduler.Run
}

// Execute runs the plan through ex. A failed step is reported and the
// following steps of other intervals still run (they are independent); the
// steps of the same interval that depend on it are skipped. It returns an
// error when any step failed.
func Execute(ctx context.Context, ex *scheduler.Executor, plan Plan, o ExecOptions) (Summary, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var sum Summary
	start := now()
	failedIv := map[int64]bool{}
	for i, s := range plan {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		if failedIv[s.Interval.End.Unix()] {
			sum.Skipped++
			continue
		}
		var (
			run scheduler.Run
			ran = true
			err error
		)
		if o.Force {
			run, err = ex.Execute(ctx, s.Job, s.Interval)
		} else {
			run, ran, err = ex.ExecuteIfNeeded(ctx, s.Job, s.Interval)
		}
		switch {
		case err != nil:
			sum.Failed++
			sum.Failures = append(sum.Failures, run)
			failedIv[s.Interval.End.Unix()] = true
		case !ran:
			sum.Skipped++
		default:
			sum.Done++
			sum.RowsRead += run.RowsRead
		}
		if o.Progress != nil {
			el := now().Sub(start)
			rate := 0.0
			if el > 0 {
				rate = float64(sum.RowsRead) / el.Seconds()
			}
			eta := time.Duration(0)
			if done := i + 1; done < len(plan) {
				eta = time.Duration(float64(el) / float64(done) * float64(len(plan)-done)).Round(time.Second)
			}
			status := "done"
			switch {
			case err != nil:
				status = "FAILED: " + err.Error()
			case !ran:
				status = "skipped (already succeeded; --force re-runs)"
			}
			fmt.Fprintf(o.Progress, "[%d/%d] %s %s: %s | %.0f rows/s | ETA %s\n", i+1, len(plan), s.Job.Name(), s.Interval, status, rate, eta)
		}
	}
	if sum.Failed > 0 {
		return sum, fmt.Errorf("jobs: %d of %d runs failed", sum.Failed, len(plan))
	}
	return sum, nil
}
