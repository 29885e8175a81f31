package chload

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/internal/chdb"
)

// History is the job-run history in ClickHouse (table batch_job_runs); it
// implements scheduler.History.
type History struct {
	db *chdb.DB
}

// NewHistory returns the history stored in db (after Migrate).
func NewHistory(db *chdb.DB) *History { return &History{db: db} }

var _ scheduler.History = (*History)(nil)

// Record implements scheduler.History.
func (h *History) Record(ctx context.Context, r scheduler.Run) error {
	msOf := func(t time.Time) uint16 { return uint16(t.Nanosecond() / 1e6) }
	err := chdb.Insert(ctx, h.db, "INSERT INTO "+HistoryTable+" (job, interval_start, interval_end, attempt, status, started, started_ms, finished, finished_ms, rows_read, rows_written, error)",
		[]any{r.Job, r.Interval.Start.UTC(), r.Interval.End.UTC(), uint16(r.Attempt), string(r.Status), r.Started.UTC(), msOf(r.Started),
			r.Finished.UTC(), msOf(r.Finished), uint64(max(r.RowsRead, 0)), uint64(max(r.RowsWritten, 0)), r.Error})
	if err != nil {
		return fmt.Errorf("chload: record run of %s: %w", r.Job, err)
	}
	return nil
}

// Succeeded implements scheduler.History.
func (h *History) Succeeded(ctx context.Context, job string, from, to time.Time) ([]scheduler.Interval, error) {
	rows, err := h.db.Query(ctx, fmt.Sprintf("SELECT DISTINCT toUInt32(interval_start), toUInt32(interval_end) FROM %s WHERE job = %s AND status = 'succeeded' AND interval_start < toDateTime(%d, 'UTC') AND interval_end > toDateTime(%d, 'UTC')",
		HistoryTable, quoteString(job), to.Unix(), from.Unix()))
	if err != nil {
		return nil, fmt.Errorf("chload: history of %s: %w", job, err)
	}
	defer rows.Close()
	var out []scheduler.Interval
	for rows.Next() {
		var s, e uint32
		if err := rows.Scan(&s, &e); err != nil {
			return nil, fmt.Errorf("chload: history of %s: %w", job, err)
		}
		out = append(out, scheduler.Interval{Start: time.Unix(int64(s), 0).UTC(), End: time.Unix(int64(e), 0).UTC()})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chload: history of %s: %w", job, err)
	}
	return out, nil
}

// List implements scheduler.History.
func (h *History) List(ctx context.Context, q scheduler.Query) ([]scheduler.Run, error) {
	query := "SELECT job, interval_start, interval_end, attempt, status, started, started_ms, finished, finished_ms, rows_read, rows_written, error FROM " + HistoryTable
	if q.Job != "" {
		query += " WHERE job = " + quoteString(q.Job)
	}
	query += " ORDER BY finished DESC, finished_ms DESC, job, interval_start DESC, attempt DESC"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := h.db.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("chload: list history: %w", err)
	}
	defer rows.Close()
	var out []scheduler.Run
	for rows.Next() {
		var (
			r                  scheduler.Run
			status             string
			attempt            uint16
			startMs, finishMs  uint16
			rowsRead, rowsWrit uint64
		)
		if err := rows.Scan(&r.Job, &r.Interval.Start, &r.Interval.End, &attempt, &status, &r.Started, &startMs, &r.Finished, &finishMs, &rowsRead, &rowsWrit, &r.Error); err != nil {
			return nil, fmt.Errorf("chload: list history: %w", err)
		}
		r.Attempt, r.Status = int(attempt), scheduler.Status(status)
		r.Started = r.Started.Add(time.Duration(startMs) * time.Millisecond).UTC()
		r.Finished = r.Finished.Add(time.Duration(finishMs) * time.Millisecond).UTC()
		r.Interval.Start, r.Interval.End = r.Interval.Start.UTC(), r.Interval.End.UTC()
		r.RowsRead, r.RowsWritten = int64(rowsRead), int64(rowsWrit)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chload: list history: %w", err)
	}
	return out, nil
}

// quoteString is a ClickHouse string literal.
func quoteString(s string) string {
	b := []byte{'\''}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '\''))
}
