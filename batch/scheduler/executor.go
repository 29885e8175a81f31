package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Job is one batch job: it (re)computes everything it owns for one data
// interval, replacing what an earlier run of the same interval produced.
type Job interface {
	// Name identifies the job in schedules and the history.
	Name() string
	// Granularity is the length of the job's data intervals.
	Granularity() Granularity
	// Run processes iv. It must be idempotent.
	Run(ctx context.Context, iv Interval) (Result, error)
}

// Result is what a run reports for the history.
type Result struct {
	RowsRead    int64
	RowsWritten int64
}

// Readiness reports how far the master dataset is complete: every
// partition's committed event-time watermark is at least the returned time.
type Readiness interface {
	Watermark(ctx context.Context) (time.Time, error)
}

// NotReadyPolicy says what a run does when the dataset is not complete for
// its interval.
type NotReadyPolicy string

// Not-ready policies.
const (
	// NotReadyWait polls the watermark until the interval is complete.
	NotReadyWait NotReadyPolicy = "wait"
	// NotReadyReport records a not_ready run and returns; the scheduler
	// tries the interval again at the job's next fire.
	NotReadyReport NotReadyPolicy = "report"
)

// ErrNotReady is returned (wrapped) by Execute when the dataset is not
// complete for the interval under NotReadyReport.
var ErrNotReady = errors.New("master dataset not complete for the interval")

// ExecOptions configure an Executor.
type ExecOptions struct {
	// Clock drives backoff and polling waits (RealClock when nil).
	Clock Clock
	// History records every attempt (required).
	History History
	// Ready gates runs on the dataset watermark; nil means always ready.
	Ready Readiness
	// AllowedLateness is added to an interval's end before it counts as
	// complete.
	AllowedLateness time.Duration
	// NotReady is the not-ready policy (default NotReadyReport).
	NotReady NotReadyPolicy
	// PollInterval is the watermark poll period under NotReadyWait
	// (default 1m).
	PollInterval time.Duration
	// Attempts is the number of tries of a failing run (default 1).
	Attempts int
	// Backoff is the wait before the second attempt, doubled after each
	// failure up to MaxBackoff (defaults 30s and 10m).
	Backoff, MaxBackoff time.Duration
	// Logger receives run logs (discarded when nil).
	Logger *slog.Logger
}

// Executor runs one job for one interval with the safety the scheduler and
// the run/backfill commands share: one run per job at a time, readiness
// gate, panic recovery, retries with backoff, and a history record per
// attempt.
type Executor struct {
	o     ExecOptions
	mu    sync.Mutex
	locks map[string]chan struct{}
}

// NewExecutor returns an Executor.
func NewExecutor(o ExecOptions) (*Executor, error) {
	if o.History == nil {
		return nil, errors.New("scheduler: executor needs a History")
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.NotReady == "" {
		o.NotReady = NotReadyReport
	}
	if o.NotReady != NotReadyWait && o.NotReady != NotReadyReport {
		return nil, fmt.Errorf("scheduler: not-ready policy %q: want wait or report", o.NotReady)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Minute
	}
	if o.Attempts < 1 {
		o.Attempts = 1
	}
	if o.Backoff <= 0 {
		o.Backoff = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{o: o, locks: map[string]chan struct{}{}}, nil
}

// History is the executor's history.
func (e *Executor) History() History { return e.o.History }

// lock takes the job's run lock, waiting for a running run of the same job
// to end, so runs of one job never overlap.
func (e *Executor) lock(ctx context.Context, job string) (func(), error) {
	e.mu.Lock()
	ch, ok := e.locks[job]
	if !ok {
		ch = make(chan struct{}, 1)
		e.locks[job] = ch
	}
	e.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Execute runs job for iv, retrying failures, and returns the last attempt.
// The error is nil only when that attempt succeeded.
func (e *Executor) Execute(ctx context.Context, job Job, iv Interval) (Run, error) {
	run, _, err := e.execute(ctx, job, iv, false)
	return run, err
}

// ExecuteIfNeeded is Execute unless the history already has a succeeded
// run of job for iv (checked after taking the job's lock, so a run that
// finished while this one waited is not repeated); ran reports which.
func (e *Executor) ExecuteIfNeeded(ctx context.Context, job Job, iv Interval) (run Run, ran bool, err error) {
	return e.execute(ctx, job, iv, true)
}

func (e *Executor) execute(ctx context.Context, job Job, iv Interval, skipDone bool) (Run, bool, error) {
	unlock, err := e.lock(ctx, job.Name())
	if err != nil {
		return Run{}, false, fmt.Errorf("scheduler: %s %s: %w", job.Name(), iv, err)
	}
	defer unlock()
	if skipDone {
		done, err := e.o.History.Succeeded(ctx, job.Name(), iv.Start, iv.End)
		if err != nil {
			return Run{}, false, fmt.Errorf("scheduler: history of %s: %w", job.Name(), err)
		}
		if Covered(iv, done) {
			return Run{Job: job.Name(), Interval: iv, Status: StatusSucceeded}, false, nil
		}
	}
	run, err := e.attempts(ctx, job, iv)
	return run, true, err
}

func (e *Executor) attempts(ctx context.Context, job Job, iv Interval) (Run, error) {
	log := e.o.Logger.With("job", job.Name(), "interval", iv.String())

	if err := e.waitReady(ctx, iv, log); err != nil {
		run := Run{Job: job.Name(), Interval: iv, Attempt: 0, Status: StatusNotReady,
			Started: e.o.Clock.Now(), Finished: e.o.Clock.Now(), Error: err.Error()}
		if errors.Is(err, ErrNotReady) {
			if rerr := e.o.History.Record(ctx, run); rerr != nil {
				return run, fmt.Errorf("scheduler: record %s: %w", job.Name(), rerr)
			}
		}
		return run, err
	}

	backoff := e.o.Backoff
	var run Run
	for attempt := 1; attempt <= e.o.Attempts; attempt++ {
		run = Run{Job: job.Name(), Interval: iv, Attempt: attempt, Started: e.o.Clock.Now()}
		res, err := e.safeRun(ctx, job, iv)
		run.Finished = e.o.Clock.Now()
		run.RowsRead, run.RowsWritten = res.RowsRead, res.RowsWritten
		if err == nil {
			run.Status = StatusSucceeded
		} else {
			run.Status = StatusFailed
			run.Error = err.Error()
		}
		// Record with a context that outlives a cancelled run, so a
		// shutdown still leaves the failed attempt in the history.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		rerr := e.o.History.Record(rctx, run)
		cancel()
		if rerr != nil {
			log.Error("recording run failed", "attempt", attempt, "err", rerr)
		}
		if err == nil {
			log.Info("run succeeded", "attempt", attempt, "rows_read", res.RowsRead, "rows_written", res.RowsWritten,
				"took", run.Finished.Sub(run.Started).String())
			if rerr != nil {
				return run, fmt.Errorf("scheduler: record %s: %w", job.Name(), rerr)
			}
			return run, nil
		}
		log.Warn("run failed", "attempt", attempt, "of", e.o.Attempts, "err", err)
		if ctx.Err() != nil || attempt == e.o.Attempts {
			return run, fmt.Errorf("scheduler: %s %s attempt %d: %w", job.Name(), iv, attempt, err)
		}
		select {
		case <-e.o.Clock.After(backoff):
		case <-ctx.Done():
			return run, fmt.Errorf("scheduler: %s %s: %w", job.Name(), iv, ctx.Err())
		}
		if backoff *= 2; backoff > e.o.MaxBackoff {
			backoff = e.o.MaxBackoff
		}
	}
	return run, fmt.Errorf("scheduler: %s %s: %s", job.Name(), iv, run.Error)
}

// safeRun calls job.Run, turning a panic into an error.
func (e *Executor) safeRun(ctx context.Context, job Job, iv Interval) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.o.Logger.Error("job panicked", "job", job.Name(), "interval", iv.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return job.Run(ctx, iv)
}

// waitReady returns nil when the dataset is complete for iv, ErrNotReady
// (under NotReadyReport) when it is not, or the context's error.
func (e *Executor) waitReady(ctx context.Context, iv Interval, log *slog.Logger) error {
	if e.o.Ready == nil {
		return nil
	}
	need := iv.End.Add(e.o.AllowedLateness)
	for {
		wm, err := e.o.Ready.Watermark(ctx)
		if err != nil {
			err = fmt.Errorf("%w: watermark: %v", ErrNotReady, err)
		} else if !wm.Before(need) {
			return nil
		} else {
			err = fmt.Errorf("%w: watermark %s < interval end %s + allowed lateness %s", ErrNotReady,
				wm.UTC().Format(time.RFC3339), iv.End.UTC().Format(time.RFC3339), e.o.AllowedLateness)
		}
		if e.o.NotReady == NotReadyReport {
			return err
		}
		log.Info("waiting for the dataset", "reason", err.Error(), "poll", e.o.PollInterval.String())
		select {
		case <-e.o.Clock.After(e.o.PollInterval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
