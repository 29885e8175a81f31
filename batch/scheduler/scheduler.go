// Package scheduler runs lambdalog's batch jobs on cron schedules: explicit
// timezones per schedule, data intervals that follow the calendar through
// DST transitions, no overlapping runs of a job, recovered panics, retries
// with backoff, catch-up of missed intervals from the run history, and a
// readiness gate on the master dataset's watermark.
//
// A schedule does not remember "the interval of this fire". Each time it
// fires (and once at start) it asks which intervals of its jobs have ended
// within the catch-up horizon, had a fire at or after their end, and have
// no succeeded run in the history, and runs those oldest first. A fire that
// was missed (downtime, a cron time that does not exist on a spring-forward
// day) is therefore made up at the next one, and a fire that happens twice
// (a repeated fall-back hour) finds nothing left to do.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Entry is one schedule: jobs run in the given (dependency) order on a cron
// schedule evaluated in Location.
type Entry struct {
	// Spec is the cron expression, for logs.
	Spec string
	// Schedule is the parsed expression (config.CronParser).
	Schedule cron.Schedule
	// Location is the schedule's timezone; intervals are cut in it too.
	Location *time.Location
	// Jobs run in this order for each interval; when one fails, the later
	// ones (which may depend on it) wait for the next fire.
	Jobs []Job
}

// Options configure a Scheduler.
type Options struct {
	// Executor runs the jobs (required); its clock and history are used.
	Executor *Executor
	// Clock must be the executor's clock (RealClock when nil).
	Clock Clock
	// CatchUpHorizon bounds how far back missed intervals are run
	// (default 72h).
	CatchUpHorizon time.Duration
	// Logger receives scheduling logs.
	Logger *slog.Logger
}

// Scheduler fires entries on their schedules.
type Scheduler struct {
	entries []Entry
	o       Options
}

// New validates the entries and returns a Scheduler.
func New(entries []Entry, o Options) (*Scheduler, error) {
	if o.Executor == nil {
		return nil, errors.New("scheduler: no executor")
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.CatchUpHorizon <= 0 {
		o.CatchUpHorizon = 72 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for i, e := range entries {
		if e.Schedule == nil || e.Location == nil || len(e.Jobs) == 0 {
			return nil, fmt.Errorf("scheduler: entry %d (%q) needs a schedule, a location and jobs", i, e.Spec)
		}
	}
	return &Scheduler{entries: entries, o: o}, nil
}

// Due returns the intervals of job that entry e should have run by now and
// that have no succeeded run, oldest first.
func (s *Scheduler) Due(ctx context.Context, e Entry, job Job, now time.Time) ([]Interval, error) {
	g := job.Granularity()
	horizon := now.Add(-s.o.CatchUpHorizon)
	first := Floor(g, e.Location, horizon)
	if !first.End.After(horizon) {
		first = Next(g, e.Location, first)
	}
	done, err := s.o.Executor.History().Succeeded(ctx, job.Name(), first.Start, now)
	if err != nil {
		return nil, fmt.Errorf("scheduler: history of %s: %w", job.Name(), err)
	}
	var out []Interval
	for iv := first; !iv.End.After(now); iv = Next(g, e.Location, iv) {
		// The first fire at or after the interval's end (Next is strictly
		// after its argument and works in whole seconds).
		fire := e.Schedule.Next(iv.End.In(e.Location).Add(-time.Nanosecond))
		if fire.After(now) || Covered(iv, done) {
			continue
		}
		out = append(out, iv)
	}
	return out, nil
}

// Run schedules until ctx is cancelled: a catch-up pass for every entry at
// start, then one pass per fire. It returns ctx's error after every running
// job has returned.
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	triggers := make([]chan struct{}, len(s.entries))
	for i := range s.entries {
		triggers[i] = make(chan struct{}, 1)
		triggers[i] <- struct{}{} // catch up at start
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.worker(ctx, s.entries[i], triggers[i])
		}(i)
	}
	now := s.o.Clock.Now()
	next := make([]time.Time, len(s.entries))
	for i, e := range s.entries {
		next[i] = e.Schedule.Next(now.In(e.Location))
		s.o.Logger.Info("schedule", "cron", e.Spec, "tz", e.Location.String(), "jobs", jobNames(e.Jobs), "next", next[i].Format(time.RFC3339))
	}
	for {
		earliest := next[0]
		for _, t := range next[1:] {
			if t.Before(earliest) {
				earliest = t
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-s.o.Clock.After(earliest.Sub(s.o.Clock.Now())):
		}
		now = s.o.Clock.Now()
		for i, e := range s.entries {
			if next[i].After(now) {
				continue
			}
			select {
			case triggers[i] <- struct{}{}:
			default: // a pass is already pending: it will see this fire's work too
			}
			next[i] = e.Schedule.Next(now.In(e.Location))
		}
	}
}

// worker runs passes of one entry, one at a time, so fires that arrive
// while a pass runs are coalesced into the next pass instead of
// overlapping it.
func (s *Scheduler) worker(ctx context.Context, e Entry, trigger <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		}
		if err := s.Pass(ctx, e); err != nil && ctx.Err() == nil {
			s.o.Logger.Error("schedule pass", "cron", e.Spec, "err", err)
		}
	}
}

// Pass runs everything entry e has due now: for each interval (oldest
// first) its jobs in order. A failed job skips the later jobs of that
// interval; a not-ready interval ends the pass (later ones are not ready
// either).
func (s *Scheduler) Pass(ctx context.Context, e Entry) error {
	now := s.o.Clock.Now()
	type item struct {
		iv   Interval
		jobs []Job
	}
	var order []int64
	byStart := map[int64]*item{}
	for _, j := range e.Jobs {
		due, err := s.Due(ctx, e, j, now)
		if err != nil {
			return err
		}
		for _, iv := range due {
			k := iv.Start.Unix()*10 + int64(j.Granularity()) // hour and day intervals may start together
			it, ok := byStart[k]
			if !ok {
				it = &item{iv: iv}
				byStart[k] = it
				order = append(order, k)
			}
			it.jobs = append(it.jobs, j)
		}
	}
	items := make([]*item, 0, len(order))
	for _, k := range order {
		items = append(items, byStart[k])
	}
	// Oldest interval first; for equal starts, shorter (hourly) first.
	sort.SliceStable(items, func(x, y int) bool {
		a, b := items[x], items[y]
		if !a.iv.Start.Equal(b.iv.Start) {
			return a.iv.Start.Before(b.iv.Start)
		}
		return a.iv.End.Before(b.iv.End)
	})
	var errs []error
	for _, it := range items {
		for _, j := range it.jobs {
			_, _, err := s.o.Executor.ExecuteIfNeeded(ctx, j, it.iv)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrNotReady) {
				s.o.Logger.Info("not ready; will try at the next fire", "job", j.Name(), "interval", it.iv.String(), "reason", err.Error())
				return errors.Join(errs...)
			}
			if err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

func jobNames(jobs []Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Name()
	}
	return out
}
