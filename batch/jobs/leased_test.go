package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/lease"
	"github.com/lambdalog/lambdalog/batch/scheduler"
)

type stubJob struct{ started []time.Time }

func (s *stubJob) Name() string                       { return LoadEvents }
func (s *stubJob) Granularity() scheduler.Granularity { return scheduler.Hourly }
func (s *stubJob) Run(ctx context.Context, iv scheduler.Interval) (scheduler.Result, error) {
	s.started = append(s.started, time.Now())
	return scheduler.Result{RowsRead: 1}, nil
}

// TestLeasedWaitsForHolder: the scheduler's wrapped job does not run an
// hour whose day partition a split worker holds; it runs once the lease
// expires, and then holds it itself.
func TestLeasedWaitsForHolder(t *testing.T) {
	fsys := localFS(t)
	leases, err := lease.New(fsys, lease.Options{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stub := &stubJob{}
	iv := scheduler.Interval{Start: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	// A split worker holds load-events of the whole day.
	day := Step{Job: stub, Interval: scheduler.Interval{Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)}}
	names := LeaseNames(day)
	if len(names) != 1 || names[0] != "load-events/20260501" {
		t.Fatalf("lease names %q", names)
	}
	if ok, err := leases.Acquire(ctx, names[0], "split-worker"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	h, _ := leases.Holder(ctx, names[0])
	job := Leased(stub, SplitOptions{Worker: "scheduler", Leases: leases, Poll: 20 * time.Millisecond})
	if _, err := job.Run(ctx, iv); err != nil {
		t.Fatal(err)
	}
	if len(stub.started) != 1 || stub.started[0].Before(h.Expires) {
		t.Fatalf("ran at %v, the split worker's lease expired at %s", stub.started, h.Expires)
	}
	if h2, _ := leases.Holder(ctx, names[0]); h2.Worker != "scheduler" {
		t.Fatalf("after the run the lease is held by %q", h2.Worker)
	}
	if ok, _ := leases.Acquire(ctx, names[0], "split-worker"); ok {
		t.Fatal("the split worker took the partition the scheduler just ran")
	}
}
