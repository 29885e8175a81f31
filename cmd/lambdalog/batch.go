package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/jobs"
	"github.com/lambdalog/lambdalog/batch/lease"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/internal/storage"
)

func batchCommand() *command {
	var (
		job, date, from, to, tz, worker string
		hour, limit                     int
		force, ignoreWatermark, split   bool
	)
	return &command{
		name:    "batch",
		summary: "schedule, run, backfill and list batch jobs",
		usage: `lambdalog batch schedule
       lambdalog batch run [--job J] --date YYYY-MM-DD [--hour HH]
       lambdalog batch run|backfill --split [--worker ID] ... (several workers share the plan)
       lambdalog batch backfill [--job J] --from YYYY-MM-DD --to YYYY-MM-DD [--force]
       lambdalog batch history [--job J] [--limit N]`,
		long: `Batch jobs recompute history from the master dataset (Parquet) into
ClickHouse. Jobs: load-events (hourly: each dataset's events of the interval
into events_<dataset>) and reports (daily: the nightly report set into
report_* tables). Re-running a job for an interval replaces exactly that
interval's rows (docs/batch.md).

schedule  runs the jobs on batch.schedules (cron, per-schedule timezone)
          until SIGTERM: missed intervals within batch.catch_up_horizon are
          caught up first, failed runs retried batch.retries times, and a
          run waits until the dataset is complete for its interval
          (batch.not_ready). Serves /metrics, /healthz, /readyz on batch.http.
run       runs jobs (all, in dependency order, without --job) for one day in
          --timezone (default batch.timezone), or one hour with --hour.
          Always re-runs.
backfill  runs jobs day by day from --from to --to (inclusive) with a
          progress line; days that already succeeded are skipped unless
          --force, so an interrupted backfill resumes where it stopped.
history   lists recorded runs, newest first.

--split   (run, backfill) share the plan with other workers started with the
          same arguments: each takes the next (job, interval) nobody holds,
          by a lease in the dataset (_batch/leases, batch.lease_ttl), skips
          what already succeeded, waits for its dependencies, takes over the
          units of workers that died once their leases expire, and exits
          when every unit has succeeded or failed (docs/operations.md).

ClickHouse DDL migrations are applied idempotently before any job runs.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&job, "job", "", "`JOB` to run (load-events or reports); all when empty")
			fs.StringVar(&date, "date", "", "day to run, `YYYY-MM-DD` (or today, yesterday)")
			fs.IntVar(&hour, "hour", -1, "with --date: only this local hour `HH` (hourly jobs)")
			fs.StringVar(&from, "from", "", "first day of a backfill, `YYYY-MM-DD` (or today, yesterday)")
			fs.StringVar(&to, "to", "", "last day of a backfill, `YYYY-MM-DD` (inclusive; or today, yesterday)")
			fs.StringVar(&tz, "timezone", "", "`TZ` the dates are in (default batch.timezone)")
			fs.BoolVar(&force, "force", false, "backfill: re-run days that already succeeded")
			fs.BoolVar(&ignoreWatermark, "ignore-watermark", false, "run/backfill: do not wait for the dataset to be complete")
			fs.IntVar(&limit, "limit", 20, "history: show at most `N` runs (0: all)")
			fs.BoolVar(&split, "split", false, "run/backfill: share the work with other workers through leases")
			fs.StringVar(&worker, "worker", "", "with --split: this worker's `ID` (default HOSTNAME-PID)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("want one of schedule, run, backfill, history")
			}
			action := args[0]
			if tz == "" {
				tz = e.cfg.Batch.Timezone
			}
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return usagef("--timezone: unknown timezone %q", tz)
			}
			if hour > 23 || hour < -1 {
				return usagef("--hour must be 0..23")
			}
			var names []string
			if job != "" {
				names = []string{job}
			}
			switch action {
			case "schedule", "history":
			case "run":
				if date == "" {
					return usagef("run needs --date YYYY-MM-DD")
				}
			case "backfill":
				if from == "" || to == "" {
					return usagef("backfill needs --from and --to (YYYY-MM-DD)")
				}
			default:
				return usagef("unknown batch action %q: want schedule, run, backfill or history", action)
			}
			b, err := openBatch(ctx, e)
			if err != nil {
				return err
			}
			defer b.close()
			all := jobs.New(b.deps)
			selected, err := jobs.Resolve(all, names...)
			if err != nil {
				return usagef("%v", err)
			}
			switch action {
			case "history":
				return batchHistory(ctx, e, b.history, job, limit)
			case "schedule":
				return batchSchedule(ctx, e, b, all)
			}
			// Relative days, for CronJobs whose command line is fixed.
			date, from, to = relativeDay(date, loc), relativeDay(from, loc), relativeDay(to, loc)
			var plan jobs.Plan
			if action == "run" {
				plan, err = jobs.PlanDays(selected, loc, date, date, hour)
			} else {
				if hour >= 0 {
					return usagef("--hour applies to run, not backfill")
				}
				plan, err = jobs.PlanDays(selected, loc, from, to, -1)
			}
			if err != nil {
				return usagef("%v", err)
			}
			ex, err := b.executor(e, nil, ignoreWatermark, scheduler.NotReadyReport)
			if err != nil {
				return err
			}
			if split {
				return batchSplit(ctx, e, b, ex, plan, worker, action)
			}
			sum, err := jobs.Execute(ctx, ex, plan, jobs.ExecOptions{Force: action == "run" || force, Progress: e.stdout})
			fmt.Fprintf(e.stdout, "%s: %d done, %d skipped, %d failed, %d rows read\n", action, sum.Done, sum.Skipped, sum.Failed, sum.RowsRead)
			return err
		},
	}
}

// batchEnv is what the batch subcommands share.
type batchEnv struct {
	fs      storage.FS
	db      *chdb.DB
	history *chload.History
	deps    jobs.Deps
	// spilled counts the reports' spilled aggregation state (exposed by
	// batch schedule; batch run logs it per run).
	spilled prometheus.Counter
}

func (b *batchEnv) close() {
	b.db.Close()
	b.fs.Close()
}

// batchStorageOptions maps the dataset.hdfs keys to storage options.
func batchStorageOptions(e *env) storage.Options {
	h := e.cfg.Dataset.HDFS
	o := storage.Options{Logger: e.log, User: h.User, ConnectTimeout: h.ConnectTimeout.D(), IOTimeout: h.OperationTimeout.D()}
	if h.KerberosKeytab != "" || h.KerberosCCache != "" {
		principal := h.KerberosUser
		if principal != "" && h.KerberosRealm != "" && !strings.Contains(principal, "@") {
			principal += "@" + h.KerberosRealm
		}
		o.Kerberos = &storage.KerberosOptions{Principal: principal, Keytab: h.KerberosKeytab, CCache: h.KerberosCCache,
			Krb5Conf: h.KerberosConfig, ServicePrincipal: h.KerberosSPN}
	}
	return o
}

func openBatch(ctx context.Context, e *env) (*batchEnv, error) {
	setBatchGC(e)
	dsLoc, err := time.LoadLocation(e.cfg.Dataset.Timezone)
	if err != nil {
		return nil, fmt.Errorf("batch: dataset.timezone: %w", err)
	}
	url := e.cfg.Dataset.URL
	if !strings.Contains(url, "://") {
		abs, err := filepath.Abs(url)
		if err != nil {
			return nil, fmt.Errorf("batch: dataset.url: %w", err)
		}
		url = "file://" + filepath.ToSlash(abs)
	}
	fsys, err := storage.Open(ctx, url, batchStorageOptions(e))
	if err != nil {
		return nil, fmt.Errorf("batch: open dataset: %w", err)
	}
	ch := e.cfg.ClickHouse
	topo := chload.Topology{Cluster: ch.Cluster, Replicated: ch.Replicated, ZooKeeperPath: ch.ZooKeeperPath, DSN: ch.DSN.Reveal()}
	db, err := chdb.Open(ctx, ch.DSN.Reveal(), chdb.WithSettings(topo.Settings()))
	if err != nil {
		fsys.Close()
		return nil, fmt.Errorf("batch: clickhouse %s: %w", ch.DSN, err)
	}
	loader := chload.New(db, e.log)
	if err := loader.SetTopology(topo); err != nil {
		db.Close()
		fsys.Close()
		return nil, usagef("clickhouse.cluster: %v", err)
	}
	n, err := loader.Migrate(ctx)
	if err != nil {
		db.Close()
		fsys.Close()
		return nil, err
	}
	if n > 0 {
		e.log.Info("applied ClickHouse migrations", "count", n, "database", db.Database(), "server", db.Version().String())
	}
	// Loads into one event table from two processes at once deadlock on
	// 18.16 (chload.SetStagingLock); every batch process takes a lease in
	// the dataset around them.
	leases, err := lease.New(fsys, lease.Options{TTL: e.cfg.Batch.LeaseTTL.D()})
	if err != nil {
		db.Close()
		fsys.Close()
		return nil, usagef("batch.lease_ttl: %v", err)
	}
	host, _ := os.Hostname()
	loader.SetStagingLock(jobs.StagingLock(leases, fmt.Sprintf("load-%s-%d", host, os.Getpid()), 0))
	// The consumer's commit log is the manifest and the watermark; a
	// dataset without one (copied in by hand) is read by its layout.
	src := &source.Committed{FS: fsys, Location: dsLoc,
		Fallback: &source.Layout{FS: fsys, Location: dsLoc, Datasets: chload.EventDatasets()}}
	if d := e.cfg.Batch.SpillDir; d != "" {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			db.Close()
			fsys.Close()
			return nil, usagef("batch.spill_dir: %s is not a directory: create it or set batch.spill_dir to one (empty: the system temp directory)", d)
		}
	}
	spilled := prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_batch_spill_bytes_total",
		Help: "Aggregation state the reports job wrote to disk because it exceeded batch.aggregation_memory_mib."})
	return &batchEnv{fs: fsys, db: db, history: chload.NewHistory(db), spilled: spilled,
		deps: jobs.Deps{FS: fsys, Source: src, Loader: loader, Workers: e.cfg.Batch.Workers, Logger: e.log, Compute: e.cfg.Batch.Compute,
			AggregationMemory: int64(e.cfg.Batch.AggregationMiB) << 20, SpillDir: e.cfg.Batch.SpillDir,
			Spilled: func(n int64) { spilled.Add(float64(n)) }}}, nil
}

func (b *batchEnv) executor(e *env, hist scheduler.History, ignoreWatermark bool, policy scheduler.NotReadyPolicy) (*scheduler.Executor, error) {
	if hist == nil {
		hist = b.history
	}
	o := scheduler.ExecOptions{History: hist, AllowedLateness: e.cfg.Batch.AllowedLateness.D(), NotReady: policy,
		PollInterval: e.cfg.Batch.PollInterval.D(), Attempts: 1 + e.cfg.Batch.Retries, Backoff: e.cfg.Batch.RetryBackoff.D(), Logger: e.log}
	if !ignoreWatermark {
		o.Ready = b.deps.Source
	}
	return scheduler.NewExecutor(o)
}

// relativeDay turns "today" and "yesterday" into dates in loc; other
// values are returned as given.
func relativeDay(s string, loc *time.Location) string {
	now := time.Now().In(loc)
	switch s {
	case "today":
		return now.Format("2006-01-02")
	case "yesterday":
		return now.AddDate(0, 0, -1).Format("2006-01-02")
	}
	return s
}

// batchSplit runs this worker's share of plan. A split run never forces:
// units that already succeeded are what lets the workers divide the plan,
// so re-running a day means clearing nothing and running without --split.
func batchSplit(ctx context.Context, e *env, b *batchEnv, ex *scheduler.Executor, plan jobs.Plan, worker, action string) error {
	if worker == "" {
		host, _ := os.Hostname()
		worker = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	leases, err := lease.New(b.fs, lease.Options{TTL: e.cfg.Batch.LeaseTTL.D()})
	if err != nil {
		return usagef("batch.lease_ttl: %v", err)
	}
	sum, err := jobs.ExecuteSplit(ctx, ex, plan, jobs.SplitOptions{Worker: worker, Leases: leases, Progress: e.stdout})
	fmt.Fprintf(e.stdout, "%s --split (worker %s): %d done, %d skipped, %d failed, %d rows read\n", action, worker, sum.Done, sum.Skipped, sum.Failed, sum.RowsRead)
	return err
}

func batchHistory(ctx context.Context, e *env, h scheduler.History, job string, limit int) error {
	runs, err := h.List(ctx, scheduler.Query{Job: job, Limit: limit})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tINTERVAL\tATTEMPT\tSTATUS\tSTARTED\tTOOK\tROWS READ\tROWS WRITTEN\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Job, r.Interval, r.Attempt, r.Status,
			r.Started.UTC().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Millisecond), r.RowsRead, r.RowsWritten, r.Error)
	}
	return tw.Flush()
}

// metricsHistory records job-run metrics as runs are recorded.
type metricsHistory struct {
	scheduler.History
	runs        *prometheus.CounterVec
	rows        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

func (m *metricsHistory) Record(ctx context.Context, r scheduler.Run) error {
	m.runs.WithLabelValues(r.Job, string(r.Status)).Inc()
	if r.Status == scheduler.StatusSucceeded {
		m.rows.WithLabelValues(r.Job, "read").Add(float64(r.RowsRead))
		m.rows.WithLabelValues(r.Job, "written").Add(float64(r.RowsWritten))
		m.lastSuccess.WithLabelValues(r.Job).Set(float64(r.Interval.End.Unix()))
	}
	return m.History.Record(ctx, r)
}

func batchSchedule(ctx context.Context, e *env, b *batchEnv, all map[string]scheduler.Job) error {
	if len(e.cfg.Batch.Schedules) == 0 {
		return usagef("batch.schedules is empty: nothing to schedule")
	}
	reg := obs.NewRegistry()
	mh := &metricsHistory{History: b.history,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_batch_runs_total", Help: "Batch job attempts by job and status."}, []string{"job", "status"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_batch_rows_total", Help: "Rows read and written by succeeded batch runs."}, []string{"job", "direction"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lambdalog_batch_last_success_interval_end_seconds",
			Help: "End of the newest data interval a job succeeded for (alert when it falls behind)."}, []string{"job"}),
	}
	reg.MustRegister(mh.runs, mh.rows, mh.lastSuccess, b.spilled)
	policy := scheduler.NotReadyPolicy(e.cfg.Batch.NotReady)
	ex, err := b.executor(e, mh, false, policy)
	if err != nil {
		return usagef("batch.not_ready: %v", err)
	}
	// The scheduler takes the same leases as `batch run --split` workers,
	// so both can run against one installation without ever processing
	// the same partitions at once.
	leases, err := lease.New(b.fs, lease.Options{TTL: e.cfg.Batch.LeaseTTL.D()})
	if err != nil {
		return usagef("batch.lease_ttl: %v", err)
	}
	host, _ := os.Hostname()
	leased := map[string]scheduler.Job{}
	for name, j := range all {
		leased[name] = jobs.Leased(j, jobs.SplitOptions{Worker: fmt.Sprintf("schedule-%s-%d", host, os.Getpid()), Leases: leases})
	}
	all = leased
	var entries []scheduler.Entry
	for i, s := range e.cfg.Batch.Schedules {
		spec, err := config.CronParser.Parse(s.Cron)
		if err != nil {
			return usagef("batch.schedules[%d].cron: %v", i, err)
		}
		tz := s.Timezone
		if tz == "" {
			tz = e.cfg.Batch.Timezone
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return usagef("batch.schedules[%d].timezone: unknown timezone %q", i, tz)
		}
		js, err := jobs.Resolve(all, s.Job)
		if err != nil {
			return usagef("batch.schedules[%d].job: %v", i, err)
		}
		entries = append(entries, scheduler.Entry{Spec: s.Cron, Schedule: spec, Location: loc, Jobs: js})
	}
	s, err := scheduler.New(entries, scheduler.Options{Executor: ex, CatchUpHorizon: e.cfg.Batch.CatchUpHorizon.D(), Logger: e.log})
	if err != nil {
		return err
	}
	wait, err := observe(ctx, e, e.cfg.Batch.HTTP, reg, map[string]obs.Check{
		"clickhouse": func(ctx context.Context) error { return b.db.Ping(ctx) },
	})
	if err != nil {
		return err
	}
	e.log.Info("batch scheduler started", "schedules", len(entries), "catch_up_horizon", e.cfg.Batch.CatchUpHorizon.String(), "not_ready", string(policy))
	err = s.Run(ctx)
	werr := wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, werr)
}

// setBatchGC applies batch.memory_limit_mib as the Go runtime's soft
// memory limit unless GOMEMLIMIT is set, and batch.gc_percent as GOGC
// unless GOGC is set. A batch run's live heap is its aggregation state and
// insert blocks; without a limit the default GOGC lets the heap grow to
// about twice that before collecting, which is what drove its peak RSS
// over the deployment's memory request in the soak. Under the limit a
// higher GOGC collects less often: GOGC 200 took load-events' client CPU
// per row down 4-6% (docs/benchmarks.md, "load-events").
func setBatchGC(e *env) {
	if os.Getenv("GOMEMLIMIT") == "" && e.cfg.Batch.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(e.cfg.Batch.MemoryLimitMiB) << 20)
	}
	if os.Getenv("GOGC") == "" && e.cfg.Batch.GCPercent > 0 {
		debug.SetGCPercent(e.cfg.Batch.GCPercent)
	}
}
