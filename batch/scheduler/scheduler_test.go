package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
)

// recJob records the intervals it ran, optionally failing or panicking.
type recJob struct {
	name string
	g    Granularity
	mu   sync.Mutex
	ran  []Interval
	// fail returns the error for an attempt (nil = succeed); n counts calls.
	fail func(n int, iv Interval) error
	n    int
	// block, when set, is waited on inside Run.
	block   chan struct{}
	running atomic.Int32
	maxConc atomic.Int32
}

func (j *recJob) Name() string             { return j.name }
func (j *recJob) Granularity() Granularity { return j.g }
func (j *recJob) Run(ctx context.Context, iv Interval) (Result, error) {
	c := j.running.Add(1)
	defer j.running.Add(-1)
	for {
		m := j.maxConc.Load()
		if c <= m || j.maxConc.CompareAndSwap(m, c) {
			break
		}
	}
	if j.block != nil {
		select {
		case <-j.block:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	j.mu.Lock()
	j.n++
	n := j.n
	j.mu.Unlock()
	if j.fail != nil {
		if err := j.fail(n, iv); err != nil {
			return Result{RowsRead: 1}, err
		}
	}
	j.mu.Lock()
	j.ran = append(j.ran, iv)
	j.mu.Unlock()
	return Result{RowsRead: 10, RowsWritten: 2}, nil
}

func (j *recJob) intervals() []Interval {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Interval(nil), j.ran...)
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("tzdata: %v", err)
	}
	return loc
}

func entry(t *testing.T, spec string, loc *time.Location, jobs ...Job) Entry {
	t.Helper()
	s, err := config.CronParser.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Spec: spec, Schedule: s, Location: loc, Jobs: jobs}
}

func newSched(t *testing.T, clk Clock, h History, horizon time.Duration, eo ExecOptions, entries ...Entry) *Scheduler {
	t.Helper()
	eo.Clock, eo.History = clk, h
	ex, err := NewExecutor(eo)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(entries, Options{Executor: ex, Clock: clk, CatchUpHorizon: horizon})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFloorDST(t *testing.T) {
	loc := berlin(t)
	for _, c := range []struct {
		day  string
		want time.Duration
	}{{"2026-03-28", 24 * time.Hour}, {"2026-03-29", 23 * time.Hour}, {"2026-10-25", 25 * time.Hour}, {"2026-10-26", 24 * time.Hour}} {
		iv, err := Day(c.day, loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := iv.End.Sub(iv.Start); got != c.want {
			t.Errorf("%s: length %s, want %s", c.day, got, c.want)
		}
		if iv.Start.In(loc).Format("2006-01-02 15:04") != c.day+" 00:00" {
			t.Errorf("%s: starts %s", c.day, iv.Start.In(loc))
		}
	}
	// The repeated 02:00 hour of 25 October is two distinct hourly intervals.
	day, _ := Day("2026-10-25", loc)
	hours := Split(Hourly, loc, day)
	if len(hours) != 25 {
		t.Fatalf("25 Oct has %d hourly intervals, want 25", len(hours))
	}
	for i := 1; i < len(hours); i++ {
		if !hours[i].Start.Equal(hours[i-1].End) || hours[i].End.Sub(hours[i].Start) != time.Hour {
			t.Fatalf("hour %d: %s after %s", i, hours[i], hours[i-1])
		}
	}
	if spring, _ := Day("2026-03-29", loc); len(Split(Hourly, loc, spring)) != 23 {
		t.Fatalf("29 Mar should have 23 hours")
	}
}

// TestDSTNeitherSkipsNorDoubles fires daily schedules through both 2026
// Berlin transitions with a fake clock, including a cron time (02:30) that
// does not exist on 29 March and happens twice on 25 October.
func TestDSTNeitherSkipsNorDoubles(t *testing.T) {
	loc := berlin(t)
	for _, spec := range []string{"15 0 * * *", "30 2 * * *", "0 3 * * *"} {
		for _, period := range [][2]string{{"2026-03-26", "2026-04-01"}, {"2026-10-22", "2026-10-29"}} {
			t.Run(spec+"/"+period[0], func(t *testing.T) {
				from, _ := Day(period[0], loc)
				to, _ := Day(period[1], loc)
				clk := NewFakeClock(from.Start)
				job := &recJob{name: "daily", g: Daily}
				h := &MemoryHistory{}
				e := entry(t, spec, loc, job)
				s := newSched(t, clk, h, 26*time.Hour, ExecOptions{}, e)
				// Fire exactly at every cron time, as Run does.
				var lastFire time.Time
				for fire := e.Schedule.Next(from.Start.In(loc)); fire.Before(to.Start); fire = e.Schedule.Next(fire) {
					clk.Set(fire)
					lastFire = fire
					if err := s.Pass(context.Background(), e); err != nil {
						t.Fatal(err)
					}
				}
				got := job.intervals()
				// Consecutive calendar days, each exactly once, from the
				// day before the first fire (within the 26h horizon) to the
				// day before the last fire.
				h0 := e.Schedule.Next(from.Start.In(loc)).Add(-26 * time.Hour)
				first := Floor(Daily, loc, h0)
				if !first.End.After(h0) {
					first = Next(Daily, loc, first)
				}
				want := first
				for i, iv := range got {
					if iv != want {
						t.Fatalf("run %d: %s, want %s (all: %v)", i, iv, want, got)
					}
					want = Next(Daily, loc, want)
				}
				lastDay := Floor(Daily, loc, lastFire).Start.AddDate(0, 0, -1)
				if last := got[len(got)-1]; !last.Start.Equal(Floor(Daily, loc, lastDay).Start) {
					t.Fatalf("last day run %s, want the day before the last fire %s", last.Start.In(loc), lastFire.In(loc))
				}
				// The transition day itself ran once, with its real length.
				var n int
				for _, iv := range got {
					if l := iv.End.Sub(iv.Start); l != 24*time.Hour {
						n++
						if l != 23*time.Hour && l != 25*time.Hour {
							t.Fatalf("interval %s is %s long", iv, l)
						}
					}
				}
				if n != 1 {
					t.Fatalf("%d transition days in %v, want 1", n, got)
				}
			})
		}
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	start := time.Date(2026, 5, 10, 9, 0, 0, 0, time.UTC)
	clk := NewFakeClock(start)
	daily := &recJob{name: "reports", g: Daily}
	hourly := &recJob{name: "load", g: Hourly}
	h := &MemoryHistory{}
	// History: everything up to 2026-05-07 succeeded; then downtime.
	for d := 1; d <= 7; d++ {
		iv := Floor(Daily, time.UTC, time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC))
		h.Record(context.Background(), Run{Job: "reports", Interval: iv, Attempt: 1, Status: StatusSucceeded, Finished: iv.End})
	}
	// A backfill loaded 05-06 as one day: its hours are covered.
	d6, _ := Day("2026-05-06", time.UTC)
	h.Record(context.Background(), Run{Job: "load", Interval: d6, Attempt: 1, Status: StatusSucceeded, Finished: d6.End})
	ed := entry(t, "15 0 * * *", time.UTC, daily)
	eh := entry(t, "5 * * * *", time.UTC, hourly)
	s := newSched(t, clk, h, 5*24*time.Hour, ExecOptions{}, ed, eh)
	for _, e := range []Entry{ed, eh} {
		if err := s.Pass(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	got := daily.intervals()
	var days []string
	for _, iv := range got {
		days = append(days, iv.Start.Format("01-02"))
	}
	if fmt.Sprint(days) != "[05-08 05-09]" {
		t.Fatalf("daily catch-up ran %v, want [05-08 05-09]", days)
	}
	// Hourly: every complete hour within the 5-day horizon whose fire
	// (hh:05) has passed: from 05-05 09:00 to 05-10 08:00 -> 119 hours, the
	// 08:00-09:00 hour waits for 09:05; the 24 hours of 05-06 are covered
	// by the day's run.
	hs := hourly.intervals()
	if len(hs) != 119-24 {
		t.Fatalf("hourly catch-up ran %d intervals, want 95", len(hs))
	}
	if !hs[0].Start.Equal(start.Add(-5*24*time.Hour)) || !hs[94].End.Equal(start.Add(-time.Hour)) {
		t.Fatalf("hourly range %s .. %s", hs[0], hs[94])
	}
	for i := 1; i < len(hs); i++ {
		if d6.Contains(hs[i].Start) {
			t.Fatalf("hour %s of the covered day ran again", hs[i])
		}
		if !hs[i].Start.Equal(hs[i-1].End) && !(hs[i-1].End.Equal(d6.Start) && hs[i].Start.Equal(d6.End)) {
			t.Fatalf("out of order at %d: %s after %s", i, hs[i], hs[i-1])
		}
	}
	// A second pass at the same time finds nothing to do.
	for _, e := range []Entry{ed, eh} {
		if err := s.Pass(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if len(daily.intervals()) != 2 || len(hourly.intervals()) != 95 {
		t.Fatalf("second pass re-ran work: %d daily, %d hourly", len(daily.intervals()), len(hourly.intervals()))
	}
}

func TestRetryAfterFailureAndPanic(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 20, 0, 0, time.UTC)
	clk := NewFakeClock(start)
	job := &recJob{name: "flaky", g: Daily, fail: func(n int, iv Interval) error {
		switch n {
		case 1:
			return errors.New("injected: clickhouse connection reset")
		case 2:
			panic("injected nil map write")
		}
		return nil
	}}
	h := &MemoryHistory{}
	e := entry(t, "15 0 * * *", time.UTC, job)
	s := newSched(t, clk, h, 24*time.Hour, ExecOptions{Attempts: 3, Backoff: time.Minute, MaxBackoff: 10 * time.Minute}, e)
	done := make(chan error, 1)
	go func() { done <- s.Pass(context.Background(), e) }()
	// Attempt 1 fails and waits 1m; attempt 2 panics and waits 2m.
	for _, d := range []time.Duration{time.Minute, 2 * time.Minute} {
		if !clk.BlockUntil(1, 5*time.Second) {
			t.Fatal("executor did not wait for backoff")
		}
		if got := clk.NextDeadline().Sub(clk.Now()); got != d {
			t.Fatalf("backoff %s, want %s", got, d)
		}
		clk.Advance(d)
	}
	if err := <-done; err != nil {
		t.Fatalf("pass: %v", err)
	}
	runs, _ := h.List(context.Background(), Query{Job: "flaky"})
	if len(runs) != 3 {
		t.Fatalf("history has %d runs, want 3: %+v", len(runs), runs)
	}
	byAttempt := map[int]Run{}
	for _, r := range runs {
		byAttempt[r.Attempt] = r
	}
	if r := byAttempt[1]; r.Status != StatusFailed || r.Error != "injected: clickhouse connection reset" {
		t.Errorf("attempt 1: %+v", r)
	}
	if r := byAttempt[2]; r.Status != StatusFailed || r.Error != "panic: injected nil map write" {
		t.Errorf("attempt 2: %+v", r)
	}
	if r := byAttempt[3]; r.Status != StatusSucceeded || r.RowsRead != 10 || r.RowsWritten != 2 || !r.Interval.Start.Equal(time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("attempt 3: %+v", r)
	}
}

func TestExhaustedRetriesRetriedAtNextFire(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 15, 0, 0, time.UTC)
	clk := NewFakeClock(start)
	job := &recJob{name: "j", g: Daily, fail: func(n int, iv Interval) error {
		if n == 1 {
			return errors.New("boom")
		}
		return nil
	}}
	h := &MemoryHistory{}
	for _, d := range []string{"2026-05-29", "2026-05-30"} {
		iv, _ := Day(d, time.UTC)
		h.Record(context.Background(), Run{Job: "j", Interval: iv, Attempt: 1, Status: StatusSucceeded})
	}
	e := entry(t, "15 0 * * *", time.UTC, job)
	s := newSched(t, clk, h, 3*24*time.Hour, ExecOptions{Attempts: 1}, e)
	if err := s.Pass(context.Background(), e); err == nil {
		t.Fatal("failing pass returned nil")
	}
	clk.Set(start.Add(24 * time.Hour))
	if err := s.Pass(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got := job.intervals()
	if len(got) != 2 || got[0].Start.Day() != 31 || got[1].Start.Day() != 1 {
		t.Fatalf("runs %v, want 05-31 (retried) then 06-01", got)
	}
}

type fixedWM struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fixedWM) Watermark(context.Context) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t, nil
}

func (f *fixedWM) set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

func TestNotReady(t *testing.T) {
	start := time.Date(2026, 6, 2, 0, 15, 0, 0, time.UTC)
	day, _ := Day("2026-06-01", time.UTC)
	wm := &fixedWM{t: day.End.Add(2 * time.Minute)} // lateness 5m not yet passed
	t.Run("report", func(t *testing.T) {
		clk := NewFakeClock(start)
		job := &recJob{name: "r", g: Daily}
		h := &MemoryHistory{}
		e := entry(t, "15 0 * * *", time.UTC, job)
		s := newSched(t, clk, h, 24*time.Hour, ExecOptions{Ready: wm, AllowedLateness: 5 * time.Minute}, e)
		if err := s.Pass(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if len(job.intervals()) != 0 {
			t.Fatal("ran before the dataset was complete")
		}
		runs, _ := h.List(context.Background(), Query{})
		if len(runs) != 1 || runs[0].Status != StatusNotReady {
			t.Fatalf("history %+v, want one not_ready", runs)
		}
		wm.set(day.End.Add(6 * time.Minute))
		if err := s.Pass(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if got := job.intervals(); len(got) != 1 || !got[0].Start.Equal(day.Start) {
			t.Fatalf("runs %v", got)
		}
		wm.set(day.End.Add(2 * time.Minute))
	})
	t.Run("wait", func(t *testing.T) {
		clk := NewFakeClock(start)
		job := &recJob{name: "w", g: Daily}
		h := &MemoryHistory{}
		e := entry(t, "15 0 * * *", time.UTC, job)
		s := newSched(t, clk, h, 24*time.Hour, ExecOptions{Ready: wm, AllowedLateness: 5 * time.Minute, NotReady: NotReadyWait, PollInterval: time.Minute}, e)
		done := make(chan error, 1)
		go func() { done <- s.Pass(context.Background(), e) }()
		if !clk.BlockUntil(1, 5*time.Second) {
			t.Fatal("not waiting")
		}
		wm.set(day.End.Add(5 * time.Minute))
		clk.Advance(time.Minute)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := job.intervals(); len(got) != 1 {
			t.Fatalf("runs %v", got)
		}
	})
}

// TestRunFiresAndNoOverlap drives Run with a fake clock: a 1-second cron
// fires passes, history is recorded, and two schedules of the same job
// never run it concurrently.
func TestRunFiresAndNoOverlap(t *testing.T) {
	start := time.Date(2026, 7, 1, 10, 59, 58, 0, time.UTC)
	clk := NewFakeClock(start)
	job := &recJob{name: "load", g: Hourly, block: make(chan struct{})}
	h := &MemoryHistory{}
	e1 := entry(t, "* * * * * *", time.UTC, job)
	e2 := entry(t, "*/2 * * * * *", time.UTC, job)
	s := newSched(t, clk, h, 2*time.Hour, ExecOptions{}, e1, e2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Catch-up at start: the horizon starts at 08:59:58, so 08:00-09:00
	// (ending after it) and 09:00-10:00 are due; both schedules see them,
	// yet each runs once.
	release := func(n int) {
		for i := 0; i < n; i++ {
			select {
			case job.block <- struct{}{}:
			case <-time.After(5 * time.Second):
				t.Fatalf("job not called (%d of %d)", i+1, n)
			}
		}
	}
	release(2)
	waitFor(t, func() bool { return len(job.intervals()) == 2 })
	// Advance past 11:00: the 10:00-11:00 hour becomes due at the 11:00:00
	// fire of both schedules; it must run exactly once.
	for i := 0; i < 4; i++ {
		clk.BlockUntil(1, 5*time.Second)
		clk.Advance(time.Second)
	}
	release(1)
	waitFor(t, func() bool { return len(job.intervals()) == 3 })
	for i := 0; i < 3; i++ {
		clk.BlockUntil(1, 5*time.Second)
		clk.Advance(time.Second)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	got := job.intervals()
	if len(got) != 3 || got[2].Start != time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC) {
		t.Fatalf("runs %v", got)
	}
	if m := job.maxConc.Load(); m != 1 {
		t.Fatalf("max concurrent runs %d, want 1", m)
	}
	runs, _ := h.List(context.Background(), Query{Job: "load", Limit: 2})
	if len(runs) != 2 || runs[0].Status != StatusSucceeded {
		t.Fatalf("history %+v", runs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
