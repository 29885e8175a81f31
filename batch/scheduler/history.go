package scheduler

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Status is the outcome of one attempt.
type Status string

// Run statuses.
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusNotReady: the master dataset was not complete for the interval
	// (watermark short of its end plus the allowed lateness).
	StatusNotReady Status = "not_ready"
)

// Run is one attempt of one job for one data interval, as recorded in the
// history.
type Run struct {
	Job         string
	Interval    Interval
	Attempt     int
	Status      Status
	Started     time.Time
	Finished    time.Time
	RowsRead    int64
	RowsWritten int64
	Error       string
}

// Query selects runs from the history: newest first, Job "" for every job,
// Limit 0 for no limit.
type Query struct {
	Job   string
	Limit int
}

// History stores job runs. The ClickHouse implementation lives in
// batch/chload; MemoryHistory serves tests and runs without a database.
type History interface {
	// Record appends one finished attempt.
	Record(ctx context.Context, r Run) error
	// Succeeded returns the intervals of job's succeeded runs that overlap
	// [from, to). A run for a longer interval (a day loaded at once by a
	// backfill) covers the shorter ones inside it.
	Succeeded(ctx context.Context, job string, from, to time.Time) ([]Interval, error)
	// List returns runs, newest first.
	List(ctx context.Context, q Query) ([]Run, error)
}

// MemoryHistory is an in-process History.
type MemoryHistory struct {
	mu   sync.Mutex
	runs []Run
}

// Record implements History.
func (h *MemoryHistory) Record(_ context.Context, r Run) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs = append(h.runs, r)
	return nil
}

// Succeeded implements History.
func (h *MemoryHistory) Succeeded(_ context.Context, job string, from, to time.Time) ([]Interval, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Interval
	for _, r := range h.runs {
		if r.Job == job && r.Status == StatusSucceeded && r.Interval.Start.Before(to) && r.Interval.End.After(from) {
			out = append(out, r.Interval)
		}
	}
	return out, nil
}

// Covered reports whether one of done contains iv.
func Covered(iv Interval, done []Interval) bool {
	for _, d := range done {
		if !d.Start.After(iv.Start) && !d.End.Before(iv.End) {
			return true
		}
	}
	return false
}

// List implements History.
func (h *MemoryHistory) List(_ context.Context, q Query) ([]Run, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Run
	for i := len(h.runs) - 1; i >= 0; i-- {
		if q.Job == "" || h.runs[i].Job == q.Job {
			out = append(out, h.runs[i])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Finished.After(out[j].Finished) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}
