package jobs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/lease"
	"github.com/lambdalog/lambdalog/batch/scheduler"
)

// SplitOptions tune ExecuteSplit.
type SplitOptions struct {
	// Worker identifies this worker in leases (unique per running
	// worker: pod name, host:pid).
	Worker string
	// Leases hands out the claims (required).
	Leases *lease.Store
	// Poll is the wait between passes while other workers hold the
	// remaining units (default TTL/10, at most 30s).
	Poll time.Duration
	// Progress, when set, receives one line per unit this worker ran.
	Progress io.Writer
}

// LeaseNames are the leases a step must hold: one per (job, UTC day
// partition) its interval touches. A job writes whole UTC-day partitions
// (staged and swapped, chload), so two intervals that touch the same
// partition (two local days in a zone off UTC, or an hour and its day)
// must not run at once; keying the lease by partition instead of by
// interval makes that impossible.
func LeaseNames(s Step) []string {
	var out []string
	for d := s.Interval.Start.UTC().Truncate(24 * time.Hour); d.Before(s.Interval.End); d = d.Add(24 * time.Hour) {
		out = append(out, s.Job.Name()+"/"+d.Format("20060102"))
	}
	return out
}

// ExecuteSplit runs the units of plan that no other worker runs: several
// workers given the same plan (`lambdalog batch run --split`) share it
// without overlap. Each pass walks the plan in order and, for every unit
// that has not succeeded (per the history), whose earlier jobs of the same
// interval have succeeded (dependency order), and whose leases it can take,
// runs it while renewing the leases every TTL/3; a unit whose lease is lost
// (this worker stalled past the TTL and another took over) has its run
// cancelled. Units held by live workers are waited for, and taken over
// once their leases expire (a worker that died). It returns when every unit
// has succeeded or failed here; a unit that failed here is released so
// another worker may try it, and is not tried again by this one.
//
// Exactly-once: a worker checks the history after taking the leases
// (ExecuteIfNeeded), and the history row of a success is written before
// the worker lets go of the unit, so a unit that succeeded is not run
// again. A double run is still possible when a worker is paused past its
// lease (GC, a frozen VM) and resumes mid-run; the jobs are idempotent
// (partition replace), so it costs time, not correctness.
func ExecuteSplit(ctx context.Context, ex *scheduler.Executor, plan Plan, o SplitOptions) (Summary, error) {
	if o.Leases == nil || o.Worker == "" {
		return Summary{}, fmt.Errorf("jobs: split run needs a lease store and a worker id")
	}
	if o.Poll <= 0 {
		o.Poll = min(o.Leases.TTL()/10, 30*time.Second)
	}
	var sum Summary
	failed := map[int]bool{}
	succeeded := map[int]bool{}
	isDone := func(i int) (bool, error) {
		if succeeded[i] {
			return true, nil
		}
		s := plan[i]
		ivs, err := ex.History().Succeeded(ctx, s.Job.Name(), s.Interval.Start, s.Interval.End)
		if err != nil {
			return false, fmt.Errorf("jobs: history of %s: %w", s.Job.Name(), err)
		}
		if scheduler.Covered(s.Interval, ivs) {
			succeeded[i] = true
		}
		return succeeded[i], nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		waiting, progressed := false, false
		for i, s := range plan {
			if failed[i] {
				continue
			}
			done, err := isDone(i)
			if err != nil {
				return sum, err
			}
			if done {
				continue
			}
			ready, blocked, err := depsDone(plan, i, failed, isDone)
			if err != nil {
				return sum, err
			}
			if blocked {
				// An earlier job of this interval failed here: this one
				// would run on incomplete input.
				failed[i] = true
				sum.Skipped++
				continue
			}
			if !ready {
				waiting = true
				continue
			}
			names := LeaseNames(s)
			got, err := acquireAll(ctx, o.Leases, names, o.Worker)
			if err != nil {
				return sum, err
			}
			if !got {
				waiting = true
				continue
			}
			progressed = true
			run, ran, err := runLeased(ctx, ex, s, o, names)
			switch {
			case err != nil:
				failed[i] = true
				sum.Failed++
				sum.Failures = append(sum.Failures, run)
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				for _, n := range names {
					_ = o.Leases.Release(rctx, n, o.Worker)
				}
				cancel()
			case ran:
				succeeded[i] = true
				sum.Done++
				sum.RowsRead += run.RowsRead
			default:
				succeeded[i] = true
				sum.Skipped++
			}
			if o.Progress != nil {
				status := "done"
				switch {
				case err != nil:
					status = "FAILED: " + err.Error()
				case !ran:
					status = "skipped (already succeeded)"
				}
				fmt.Fprintf(o.Progress, "[%s] %s %s: %s\n", o.Worker, s.Job.Name(), s.Interval, status)
			}
		}
		if !waiting {
			break
		}
		if !progressed {
			select {
			case <-time.After(o.Poll):
			case <-ctx.Done():
				return sum, ctx.Err()
			}
		}
	}
	if sum.Failed > 0 {
		return sum, fmt.Errorf("jobs: %d runs failed on worker %s", sum.Failed, o.Worker)
	}
	return sum, nil
}

// depsDone reports whether the jobs before plan[i] in dependency order for
// the same interval have succeeded (ready), or one failed here (blocked).
func depsDone(plan Plan, i int, failed map[int]bool, isDone func(int) (bool, error)) (ready, blocked bool, err error) {
	rank := map[string]int{}
	for r, n := range order {
		rank[n] = r
	}
	s := plan[i]
	for j, d := range plan {
		if j == i || !d.Interval.Start.Equal(s.Interval.Start) || !d.Interval.End.Equal(s.Interval.End) || rank[d.Job.Name()] >= rank[s.Job.Name()] {
			continue
		}
		if failed[j] {
			return false, true, nil
		}
		ok, err := isDone(j)
		if err != nil || !ok {
			return false, false, err
		}
	}
	return true, false, nil
}

// acquireAll takes every lease of a unit in name order, or none.
func acquireAll(ctx context.Context, st *lease.Store, names []string, worker string) (bool, error) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	for k, n := range names {
		ok, err := st.Acquire(ctx, n, worker)
		if err != nil || !ok {
			for _, m := range names[:k] {
				_ = st.Release(ctx, m, worker)
			}
			return false, err
		}
	}
	return true, nil
}

// runLeased runs one unit, renewing its leases every TTL/3; the run is
// cancelled if a renewal finds the lease taken by another worker.
func runLeased(ctx context.Context, ex *scheduler.Executor, s Step, o SplitOptions, names []string) (scheduler.Run, bool, error) {
	var (
		run scheduler.Run
		ran bool
	)
	err := whileLeased(ctx, o.Leases, names, o.Worker, func(ctx context.Context) error {
		var err error
		run, ran, err = ex.ExecuteIfNeeded(ctx, s.Job, s.Interval)
		return err
	})
	return run, ran, err
}

// whileLeased calls f with a context cancelled if a renewal of the leases
// (every TTL/3) finds one taken by another worker.
func whileLeased(ctx context.Context, st *lease.Store, names []string, worker string, f func(context.Context) error) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(st.TTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-rctx.Done():
				return
			case <-t.C:
			}
			for _, n := range names {
				ok, err := st.Acquire(rctx, n, worker)
				if err == nil && !ok {
					cancel(fmt.Errorf("jobs: lease %s lost to another worker", n))
					return
				}
			}
		}
	}()
	err := f(rctx)
	close(stop)
	<-renewed
	if cause := context.Cause(rctx); err != nil && cause != nil && cause != context.Canceled {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}

// Leased wraps a job so each run first takes the leases of its interval
// (waiting, polling every o.Poll, while another worker holds them) and
// keeps them while it runs: `batch schedule` wraps its jobs with it, so
// the scheduler and `--split` workers never process the same partitions
// at once. The leases are not released after a run: they expire, so a
// split worker cannot take a unit between the run's end and its history
// record (it re-checks the history after taking a lease).
func Leased(j scheduler.Job, o SplitOptions) scheduler.Job {
	if o.Poll <= 0 {
		o.Poll = min(o.Leases.TTL()/10, 30*time.Second)
	}
	return &leasedJob{Job: j, o: o}
}

type leasedJob struct {
	scheduler.Job
	o SplitOptions
}

func (l *leasedJob) Run(ctx context.Context, iv scheduler.Interval) (scheduler.Result, error) {
	names := LeaseNames(Step{Job: l.Job, Interval: iv})
	for {
		got, err := acquireAll(ctx, l.o.Leases, names, l.o.Worker)
		if err != nil {
			return scheduler.Result{}, err
		}
		if got {
			break
		}
		select {
		case <-time.After(l.o.Poll):
		case <-ctx.Done():
			return scheduler.Result{}, ctx.Err()
		}
	}
	var res scheduler.Result
	err := whileLeased(ctx, l.o.Leases, names, l.o.Worker, func(ctx context.Context) error {
		var err error
		res, err = l.Job.Run(ctx, iv)
		return err
	})
	return res, err
}

// StagingLock returns a chload.StagingLock kept as the lease
// "staging/<name>" in st for worker: it polls every poll while another
// process holds it, renews it while held, and cancels the holder's context
// if it is lost.
func StagingLock(st *lease.Store, worker string, poll time.Duration) chload.StagingLock {
	if poll <= 0 {
		poll = min(st.TTL()/10, 5*time.Second)
	}
	return func(ctx context.Context, name string) (context.Context, func(), error) {
		names := []string{"staging/" + name}
		for {
			got, err := acquireAll(ctx, st, names, worker)
			if err != nil {
				return nil, nil, err
			}
			if got {
				break
			}
			select {
			case <-time.After(poll):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		lctx, cancel := context.WithCancelCause(ctx)
		done, finished := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(finished)
			_ = whileLeased(lctx, st, names, worker, func(c context.Context) error {
				select {
				case <-done:
				case <-c.Done():
					cancel(context.Cause(c))
				}
				return nil
			})
		}()
		release := func() {
			close(done)
			// No renewal may follow the release.
			<-finished
			cancel(nil)
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = st.Release(rctx, names[0], worker)
			rcancel()
		}
		return lctx, release, nil
	}
}
