package jobs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/lease"
	"github.com/lambdalog/lambdalog/batch/scheduler"
)

// counted wraps a job and counts its runs per job and interval, in a map
// shared by every worker's copy of the job.
type counted struct {
	scheduler.Job
	c *counter
}

type counter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counter) get(job string, iv scheduler.Interval) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[job+" "+iv.String()]
}

func (c *counted) Run(ctx context.Context, iv scheduler.Interval) (scheduler.Result, error) {
	c.c.mu.Lock()
	c.c.runs[c.Name()+" "+iv.String()]++
	c.c.mu.Unlock()
	return c.Job.Run(ctx, iv)
}

// workerPlan is one worker's plan over days: its own loader (as a separate
// process has), holding the staging lock under its own id, and counted
// jobs.
func workerPlan(t *testing.T, e *env, worker string, leases *lease.Store, c *counter, from, to string) Plan {
	t.Helper()
	l := chload.New(e.db, nil)
	l.SetStagingLock(StagingLock(leases, worker, 20*time.Millisecond))
	d := e.deps
	d.Loader = l
	js, _ := Resolve(New(d))
	for i, j := range js {
		js[i] = &counted{Job: j, c: c}
	}
	plan, err := PlanDays(js, time.UTC, from, to, -1)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// succeededRows counts the history's succeeded rows per job and interval.
func succeededRows(t *testing.T, e *env) map[string]int {
	t.Helper()
	runs, err := e.hist.List(context.Background(), scheduler.Query{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range runs {
		if r.Status != scheduler.StatusSucceeded {
			t.Errorf("history has a %s run: %+v", r.Status, r)
		}
		out[r.Job+" "+r.Interval.String()]++
	}
	return out
}

// TestSplitThreeWorkers runs 3 workers (goroutines, each with its own
// executor, as separate processes would have) over 3 days x 2 jobs: every
// unit runs exactly once, across the workers, the history has one
// succeeded row per unit, and the loaded events are exactly the day's.
func TestSplitThreeWorkers(t *testing.T) {
	e := setup(t, localFS(t), 6000)
	leases, err := lease.New(e.deps.FS, lease.Options{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{runs: map[string]int{}}
	plan := workerPlan(t, e, "check", leases, c, "2026-05-01", "2026-05-03")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done = map[string]int{}
		logs bytes.Buffer
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ex, err := scheduler.NewExecutor(scheduler.ExecOptions{History: e.hist})
			if err != nil {
				t.Error(err)
				return
			}
			var progress bytes.Buffer
			worker := fmt.Sprintf("worker-%d", w)
			plan := workerPlan(t, e, worker, leases, c, "2026-05-01", "2026-05-03")
			sum, err := ExecuteSplit(ctx, ex, plan, SplitOptions{Worker: worker, Leases: leases, Poll: 20 * time.Millisecond, Progress: &progress})
			mu.Lock()
			defer mu.Unlock()
			logs.Write(progress.Bytes())
			if err != nil {
				t.Errorf("%s: %v", worker, err)
			}
			done[worker] = sum.Done
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range done {
		total += n
	}
	if total != len(plan) {
		t.Errorf("workers ran %d units (%v), want %d\n%s", total, done, len(plan), logs.String())
	}
	for _, s := range plan {
		if n := c.get(s.Job.Name(), s.Interval); n != 1 {
			t.Errorf("%s %s ran %d times\n%s", s.Job.Name(), s.Interval, n, logs.String())
		}
	}
	hist := succeededRows(t, e)
	if len(hist) != len(plan) {
		t.Errorf("history has %d units, want %d: %v", len(hist), len(plan), hist)
	}
	for k, n := range hist {
		if n != 1 {
			t.Errorf("history: %s succeeded %d times", k, n)
		}
	}
	if got, want := e.count(t, "SELECT count() FROM events_auth"), countDataset(e, "auth"); got != want || want == 0 {
		t.Errorf("events_auth has %d rows, want %d", got, want)
	}
	if e.count(t, "SELECT count() FROM report_auth_ip_day") == 0 {
		t.Error("no auth reports")
	}
}

func countDataset(e *env, ds string) int {
	n := 0
	for _, r := range e.recs {
		if r.Dataset() == ds {
			n++
		}
	}
	return n
}

// TestSplitTakesOverDeadWorker: a worker that took a unit's lease and died
// holds it until the TTL; the live workers finish everything else, then
// take the dead worker's unit over once its lease expired, and run it once.
func TestSplitTakesOverDeadWorker(t *testing.T) {
	e := setup(t, localFS(t), 3000)
	c := &counter{runs: map[string]int{}}
	// Long enough that a live worker, renewing every TTL/3, never loses a
	// lease on a loaded machine; the test waits for it once.
	const ttl = 6 * time.Second
	leases, err := lease.New(e.deps.FS, lease.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	plan := workerPlan(t, e, "check", leases, c, "2026-05-01", "2026-05-02")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The dead worker claimed load-events of May 2 and never ran it.
	dead := plan[2]
	if dead.Job.Name() != LoadEvents || dead.Interval.Start.Day() != 2 {
		t.Fatalf("plan[2] is %s %s", dead.Job.Name(), dead.Interval)
	}
	for _, n := range LeaseNames(dead) {
		if ok, err := leases.Acquire(ctx, n, "dead-worker"); err != nil || !ok {
			t.Fatalf("dead worker's claim: %v %v", ok, err)
		}
	}
	h, err := leases.Holder(ctx, LeaseNames(dead)[0])
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	sums := make([]Summary, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ex, _ := scheduler.NewExecutor(scheduler.ExecOptions{History: e.hist})
			worker := fmt.Sprintf("live-%d", w)
			plan := workerPlan(t, e, worker, leases, c, "2026-05-01", "2026-05-02")
			var err error
			sums[w], err = ExecuteSplit(ctx, ex, plan, SplitOptions{Worker: worker, Leases: leases, Poll: 50 * time.Millisecond})
			if err != nil {
				t.Errorf("live-%d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	if sums[0].Done+sums[1].Done != len(plan) {
		t.Errorf("live workers ran %d+%d units, want %d", sums[0].Done, sums[1].Done, len(plan))
	}
	for _, s := range plan {
		if n := c.get(s.Job.Name(), s.Interval); n != 1 {
			t.Errorf("%s %s ran %d times", s.Job.Name(), s.Interval, n)
		}
	}
	// The dead worker's unit (and the reports of its day, which depend on
	// it) ran only after its lease expired.
	runs, err := e.hist.List(ctx, scheduler.Query{Job: LoadEvents})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range runs {
		if r.Interval == dead.Interval {
			found = true
			if r.Started.Before(h.Expires) {
				t.Errorf("dead worker's unit started at %s, before its lease expired at %s", r.Started, h.Expires)
			}
		}
	}
	if !found {
		t.Error("the dead worker's unit never ran")
	}
	if len(succeededRows(t, e)) != len(plan) {
		t.Error("history lacks units")
	}
}

// TestPushDownNeedsLoadedEvents: in ClickHouse mode the reports job refuses
// a day whose events were not all loaded, and runs once they are.
func TestPushDownNeedsLoadedEvents(t *testing.T) {
	e := setup(t, localFS(t), 3000)
	e.deps.Compute = ComputeClickHouse
	all := New(e.deps)
	ex, err := scheduler.NewExecutor(scheduler.ExecOptions{History: e.hist})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	day, err := scheduler.Day("2026-05-01", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Execute(ctx, all[Reports], day); err == nil {
		t.Fatal("reports ran before load-events")
	}
	if _, err := ex.Execute(ctx, all[LoadEvents], day); err != nil {
		t.Fatal(err)
	}
	run, err := ex.Execute(ctx, all[Reports], day)
	if err != nil || run.RowsWritten == 0 || int(run.RowsRead) != e.count(t, "SELECT count() FROM events_auth WHERE toDate(timestamp) = '2026-05-01'")+
		e.count(t, "SELECT count() FROM events_firewall WHERE toDate(timestamp) = '2026-05-01'")+
		e.count(t, "SELECT count() FROM events_ids WHERE toDate(timestamp) = '2026-05-01'")+
		e.count(t, "SELECT count() FROM events_web WHERE toDate(timestamp) = '2026-05-01'") {
		t.Fatalf("push-down run %+v, %v", run, err)
	}
}
