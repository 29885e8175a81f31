// Package merge serves the shared metrics (schemas/metrics) as one gapless
// series that joins the two layers of the Lambda architecture: batch rows
// (report_metrics, written by the nightly reports job) wherever the batch
// has run, real-time rows (rt_metric_minutes, written through Writer by
// the speed layer's per-minute aggregator, realtime/minutes) everywhere
// after.
//
// # Batch watermark
//
// A metric window is served from batch when it lies inside an interval
// for which the reports job has a succeeded run in batch_job_runs (the
// batch layer's history); the batch watermark is the end of the newest
// such interval. Real-time rows are used for every other window: after the
// watermark, and also for a day whose batch run failed, so a failed night
// shows the speed layer's numbers instead of a hole. Nothing has to be
// written for the hand-over: when the reports job records its success, the
// next query reads batch rows for that day.
//
// # Real-time rows
//
// rt_metric_minutes holds (metric, key, minute, value, version) in a
// ReplacingMergeTree: a row is identified by (metric, key, minute) and the
// highest version wins, so writing a minute again (a retry, a replay after
// a restart) replaces it instead of adding to it. Readers take
// argMax(value, version), which is exact before and after background
// merges. For Count and Sum metrics value is the minute's amount (a
// window's minutes are summed); for Distinct metrics, which cannot be
// summed, value is the window's distinct count up to the end of that
// minute (a window takes the largest).
package merge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/jobs"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// Table is the real-time per-minute aggregate table.
const Table = "rt_metric_minutes"

// BatchTable is the batch view of the shared metrics (batch/chload).
const BatchTable = "report_metrics"

// MigrationsTable records the serving layer's applied migrations.
const MigrationsTable = "queries_schema_migrations"

// Migrations are the serving layer's DDL in version order (history: change
// by adding, never by editing).
func Migrations() []chdb.Migration {
	return []chdb.Migration{{Version: 1, Name: "real-time metric minutes", SQL: `CREATE TABLE IF NOT EXISTS ` + Table + ` (
    metric String,
    key String,
    minute DateTime('UTC'),
    value Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (metric, key, minute)`}}
}

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *chdb.DB) error {
	if _, err := chdb.Migrate(ctx, db, MigrationsTable, Migrations()); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	return nil
}

// MinuteAggregate is one real-time value of a shared metric.
type MinuteAggregate struct {
	// Metric is a schemas/metrics name.
	Metric string
	// Key is the value of the metric's key column (e.g. a source IP).
	Key string
	// Minute is the start of the minute (UTC, whole minute).
	Minute time.Time
	// Value is the minute's amount (Count, Sum) or the window's distinct
	// count up to the end of the minute (Distinct).
	Value int64
}

// Writer writes the speed layer's per-minute aggregates.
type Writer struct {
	db *chdb.DB
	mu sync.Mutex
	// last is the last version handed out, so versions strictly increase
	// within a process even when the clock does not move.
	last uint64
	now  func() time.Time
	// known are the shared metrics' names, looked up once: metrics.Lookup
	// compiles every definition, too slow per row.
	known map[string]bool
}

// NewWriter returns a Writer on db (migrated with Migrate).
func NewWriter(db *chdb.DB) *Writer {
	known := map[string]bool{}
	for _, m := range metrics.All() {
		known[m.Name] = true
	}
	return &Writer{db: db, now: time.Now, known: known}
}

// Write stores aggs in one batch. Writing a (metric, key, minute) again
// replaces its value: the newest write wins.
func (w *Writer) Write(ctx context.Context, aggs []MinuteAggregate) error {
	if len(aggs) == 0 {
		return nil
	}
	rows := make([][]any, len(aggs))
	version := w.version()
	for i, a := range aggs {
		if !w.known[a.Metric] {
			return fmt.Errorf("merge: write: unknown metric %q", a.Metric)
		}
		if !a.Minute.Equal(a.Minute.Truncate(time.Minute)) || a.Minute.Unix() <= 0 {
			return fmt.Errorf("merge: write: %s %s: minute %s is not the start of a minute", a.Metric, a.Key, a.Minute)
		}
		rows[i] = []any{a.Metric, a.Key, a.Minute.UTC(), a.Value, version}
	}
	if err := chdb.Insert(ctx, w.db, "INSERT INTO "+Table+" (metric, key, minute, value, version)", rows...); err != nil {
		return fmt.Errorf("merge: write %d aggregates: %w", len(aggs), err)
	}
	return nil
}

func (w *Writer) version() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := uint64(w.now().UnixNano())
	if v <= w.last {
		v = w.last + 1
	}
	w.last = v
	return v
}

// Querier runs a query; *chdb.DB satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Reader answers series queries.
type Reader struct{ q Querier }

// NewReader returns a Reader on q.
func NewReader(q Querier) *Reader { return &Reader{q: q} }

// Query selects a series.
type Query struct {
	// Metric is a schemas/metrics name.
	Metric string
	// Key restricts to one key; empty sums every key.
	Key string
	// From (inclusive) and To (exclusive) must be aligned to the metric's
	// window.
	From, To time.Time
	// Step is a multiple of the metric's window (0: the window).
	Step time.Duration
}

// MaxPoints caps the points of one series.
const MaxPoints = 10000

// Point is one step of a series.
type Point struct {
	Time  time.Time `json:"time"`
	Value int64     `json:"value"`
	// Source is "batch", "realtime" or "mixed" (a step spanning both).
	Source string `json:"source"`
}

// Series is a gapless series: one point per step from From to To.
type Series struct {
	Metric string    `json:"metric"`
	Key    string    `json:"key"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Step   string    `json:"step"`
	// Watermark is the end of the newest interval the batch reports job
	// finished (zero when it never has).
	Watermark time.Time `json:"watermark"`
	Points    []Point   `json:"points"`
}

// QueryError is a bad series request (HTTP 400).
type QueryError struct{ Reason string }

func (e *QueryError) Error() string { return "merge: " + e.Reason }

func (q *Query) validate() (*metrics.Metric, error) {
	m, ok := metrics.Lookup(q.Metric)
	if !ok {
		var names []string
		for _, m := range metrics.All() {
			names = append(names, m.Name)
		}
		return nil, &QueryError{fmt.Sprintf("unknown metric %q (want one of %v)", q.Metric, names)}
	}
	if q.Step == 0 {
		q.Step = m.Window
	}
	switch {
	case !q.From.Before(q.To):
		return nil, &QueryError{"from must be before to"}
	case q.From.Unix() <= 0:
		return nil, &QueryError{"from must be after 1970-01-01"}
	case q.Step < m.Window || q.Step%m.Window != 0:
		return nil, &QueryError{fmt.Sprintf("step %s must be a multiple of the metric's window %s", q.Step, m.Window)}
	case !q.From.Equal(q.From.Truncate(m.Window)) || !q.To.Equal(q.To.Truncate(m.Window)):
		return nil, &QueryError{fmt.Sprintf("from and to must be aligned to the metric's window %s", m.Window)}
	case q.To.Sub(q.From)/q.Step > MaxPoints:
		return nil, &QueryError{fmt.Sprintf("more than %d points; use a larger step", MaxPoints)}
	}
	if len(q.Key) > 256 {
		return nil, &QueryError{"key longer than 256 bytes"}
	}
	return m, nil
}

// Series returns the merged series for q.
func (r *Reader) Series(ctx context.Context, q Query) (*Series, error) {
	m, err := q.validate()
	if err != nil {
		return nil, err
	}
	covered, watermark, err := r.batchCoverage(ctx, q.From, q.To)
	if err != nil {
		return nil, err
	}
	win := int64(m.Window / time.Second)
	from, to := q.From.Unix(), q.To.Unix()
	keyCond := ""
	if q.Key != "" {
		keyCond = " AND key = " + catalog.QuoteString(q.Key)
	}
	metric := catalog.QuoteString(m.Name)
	batch, err := r.windows(ctx, fmt.Sprintf(
		`SELECT toInt64(toUInt32(period_start)) AS w, toInt64(sum(value)) AS v FROM %s
WHERE metric = %s%s AND period_start >= toDateTime(%d) AND period_start < toDateTime(%d)
GROUP BY w`, BatchTable, metric, keyCond, from, to))
	if err != nil {
		return nil, err
	}
	perWindow := "sum(v)"
	if m.Agg == metrics.Distinct {
		perWindow = "max(v)"
	}
	rt, err := r.windows(ctx, fmt.Sprintf(
		`SELECT w, toInt64(sum(wv)) AS v FROM (
    SELECT key, intDiv(toInt64(toUInt32(minute)), %d) * %d AS w, %s AS wv FROM (
        SELECT key, minute, argMax(value, version) AS v FROM %s
        WHERE metric = %s%s AND minute >= toDateTime(%d) AND minute < toDateTime(%d)
        GROUP BY key, minute)
    GROUP BY key, w)
GROUP BY w`, win, win, perWindow, Table, metric, keyCond, from, to))
	if err != nil {
		return nil, err
	}
	s := &Series{Metric: m.Name, Key: q.Key, From: q.From.UTC(), To: q.To.UTC(), Step: q.Step.String(), Watermark: watermark, Points: []Point{}}
	for t := q.From; t.Before(q.To); t = t.Add(q.Step) {
		p := Point{Time: t.UTC()}
		for w := t; w.Before(t.Add(q.Step)) && w.Before(q.To); w = w.Add(m.Window) {
			src := "realtime"
			v := rt[w.Unix()]
			if covered(w, w.Add(m.Window)) {
				src, v = "batch", batch[w.Unix()]
			}
			p.Value += v
			if p.Source == "" {
				p.Source = src
			} else if p.Source != src {
				p.Source = "mixed"
			}
		}
		s.Points = append(s.Points, p)
	}
	return s, nil
}

// windows runs a query of (window start seconds, value) rows.
func (r *Reader) windows(ctx context.Context, sql string) (map[int64]int64, error) {
	rows, err := r.q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var w, v int64
		if err := rows.Scan(&w, &v); err != nil {
			return nil, fmt.Errorf("merge: scan: %w", err)
		}
		out[w] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return out, nil
}

// ErrNoHistory is returned by Watermark when the batch layer's history
// table does not exist yet (the batch layer never ran here).
var ErrNoHistory = errors.New("merge: no batch history table")

// Watermark returns the end of the newest interval the reports job
// finished (zero time when none).
func (r *Reader) Watermark(ctx context.Context) (time.Time, error) {
	_, wm, err := r.batchCoverage(ctx, time.Unix(0, 0), time.Unix(0, 0))
	return wm, err
}

// batchCoverage reads the succeeded reports intervals overlapping [from,
// to) and the watermark. Without a history table nothing is covered.
func (r *Reader) batchCoverage(ctx context.Context, from, to time.Time) (func(a, b time.Time) bool, time.Time, error) {
	none := func(a, b time.Time) bool { return false }
	exists, err := r.tableExists(ctx, chload.HistoryTable)
	if err != nil || !exists {
		return none, time.Time{}, err
	}
	job := catalog.QuoteString(jobs.Reports)
	rows, err := r.q.Query(ctx, fmt.Sprintf(
		`SELECT toInt64(toUInt32(interval_start)), toInt64(toUInt32(interval_end)) FROM %s
WHERE job = %s AND status = 'succeeded' AND (interval_end > toDateTime(%d) AND interval_start < toDateTime(%d)
    OR interval_end = (SELECT max(interval_end) FROM %s WHERE job = %s AND status = 'succeeded'))`,
		chload.HistoryTable, job, from.Unix(), to.Unix(), chload.HistoryTable, job))
	if err != nil {
		return none, time.Time{}, fmt.Errorf("merge: batch history: %w", err)
	}
	defer rows.Close()
	type iv struct{ a, b int64 }
	var ivs []iv
	var wm int64
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			return none, time.Time{}, fmt.Errorf("merge: batch history: %w", err)
		}
		ivs = append(ivs, iv{a, b})
		wm = max(wm, b)
	}
	if err := rows.Err(); err != nil {
		return none, time.Time{}, fmt.Errorf("merge: batch history: %w", err)
	}
	var watermark time.Time
	if wm > 0 {
		watermark = time.Unix(wm, 0).UTC()
	}
	return func(a, b time.Time) bool {
		for _, v := range ivs {
			if a.Unix() >= v.a && b.Unix() <= v.b {
				return true
			}
		}
		return false
	}, watermark, nil
}

func (r *Reader) tableExists(ctx context.Context, name string) (bool, error) {
	rows, err := r.q.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = "+catalog.QuoteString(name))
	if err != nil {
		return false, fmt.Errorf("merge: system.tables: %w", err)
	}
	defer rows.Close()
	var n uint64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return false, fmt.Errorf("merge: system.tables: %w", err)
		}
	}
	return n > 0, rows.Err()
}

// ParseStep parses a step such as "10m", "1h" or "3600" (seconds).
func ParseStep(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > 366*86400 {
			return 0, &QueryError{fmt.Sprintf("step %q out of range", s)}
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 366*24*time.Hour {
		return 0, &QueryError{fmt.Sprintf("step %q: want a duration such as 10m or 1h", s)}
	}
	return d, nil
}
