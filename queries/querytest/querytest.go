// Package querytest builds ClickHouse fixtures for the serving layer's
// tests: generated traffic (internal/gen, attacks and ground truth
// included) parsed by schemas/parse, written as Parquet in the consumer's
// layout and loaded by the real batch jobs (load-events, reports), so the
// reports are tested against the tables production fills. For tests only.
package querytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/jobs"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Options shape a fixture.
type Options struct {
	// Seed of the generator (default 7).
	Seed uint64
	// Start and Duration of the traffic (default 2026-03-01T23:50Z, 20m:
	// across midnight, so two UTC days).
	Start    time.Time
	Duration time.Duration
	// Rate in events per second of event time (default 20: the least at
	// which every attack but ddos fits its rule's window).
	Rate float64
	// AttackEvery spaces attack instances of one kind (default 2m).
	AttackEvery time.Duration
	// Garbage lines are added per dataset, quarantined by the parsers
	// (default 3).
	Garbage int
}

func (o *Options) defaults() {
	if o.Seed == 0 {
		o.Seed = 7
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 3, 1, 23, 50, 0, 0, time.UTC)
	}
	if o.Duration == 0 {
		o.Duration = 20 * time.Minute
	}
	if o.Rate == 0 {
		o.Rate = 20
	}
	if o.AttackEvery == 0 {
		o.AttackEvery = 2 * time.Minute
	}
	if o.Garbage == 0 {
		o.Garbage = 3
	}
}

// Fixture is a loaded database.
type Fixture struct {
	// DB is connected to the fixture's own database; DSN names it.
	DB  *chdb.DB
	DSN string
	// Records are every record loaded (parsed and quarantined).
	Records []schemas.Record
	// Truth is the generator's ground truth.
	Truth *gen.Truth
	// From and To are the first and last UTC days with events.
	From, To time.Time
}

// Days returns From and To as YYYY-MM-DD.
func (f *Fixture) Days() (string, string) {
	return f.From.Format(time.DateOnly), f.To.Format(time.DateOnly)
}

// NewDB creates a database of its own on srv for this test, connected.
func NewDB(t testing.TB, srv *chserver.Server) (*chdb.DB, string) {
	t.Helper()
	dsn := srv.DSN(chtest.NewDatabase(t, srv))
	db, err := chdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

// Load builds a fixture in a new database of srv (chtest.Shared or Start):
// records generated, written as Parquet and loaded by the batch jobs for
// every day they span.
func Load(t testing.TB, srv *chserver.Server, o Options) *Fixture {
	t.Helper()
	o.defaults()
	ctx := context.Background()
	db, dsn := NewDB(t, srv)
	recs, truth, err := Generate(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{DB: db, DSN: dsn, Records: recs, Truth: truth}
	f.From, f.To = DayRange(recs)
	from, to := f.Days()
	if err := RunBatch(ctx, db, recs, t.TempDir(), from, to); err != nil {
		t.Fatal(err)
	}
	return f
}

// Generate produces the fixture's records: every generated line parsed with
// its dataset's parser (a failure becomes a quarantine record), plus
// o.Garbage unparseable lines per dataset, quarantined at the start time.
func Generate(ctx context.Context, o Options) ([]schemas.Record, *gen.Truth, error) {
	o.defaults()
	g, err := gen.New(gen.Options{Seed: o.Seed, Rate: o.Rate, Duration: o.Duration, Start: o.Start, AttackEvery: o.AttackEvery})
	if err != nil {
		return nil, nil, err
	}
	var parsers [gen.NumDatasets]parse.Parser
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		if parsers[d], err = parse.New(d.Format(), parse.Options{Reference: o.Start.Add(o.Duration)}); err != nil {
			return nil, nil, err
		}
	}
	var recs []schemas.Record
	var offset int64
	quarantine := func(line []byte, format string, perr error, at time.Time) {
		q := parse.Quarantine(line, format, perr)
		q.Base.Timestamp = at
		recs = append(recs, q)
	}
	truth, err := g.Run(ctx, gen.SinkFunc(func(_ context.Context, l *gen.Line) error {
		offset++
		r, perr := parsers[l.Dataset].Parse(l.Value)
		if perr != nil {
			quarantine(l.Value, l.Dataset.Format(), perr, l.EventTime.UTC())
			return nil
		}
		c := r.Common()
		c.KafkaTopic, c.KafkaOffset = l.Dataset.String(), offset
		c.KafkaTimestamp, c.IngestTime = l.EventTime, l.EventTime
		recs = append(recs, r)
		return nil
	}))
	if err != nil {
		return nil, nil, err
	}
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		for i := 0; i < o.Garbage; i++ {
			line := []byte(fmt.Sprintf("garbage %d for %s ' \" \\ =cmd|x", i, d))
			_, perr := parsers[d].Parse(line)
			if perr == nil {
				return nil, nil, fmt.Errorf("querytest: garbage line %q parsed as %s", line, d)
			}
			quarantine(line, d.Format(), perr, o.Start.Add(time.Duration(i)*time.Minute))
		}
	}
	return recs, truth, nil
}

// DayRange returns the first and last UTC days of the records.
func DayRange(recs []schemas.Record) (time.Time, time.Time) {
	var lo, hi time.Time
	for _, r := range recs {
		t := r.EventTime().UTC()
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return lo.Truncate(24 * time.Hour), hi.Truncate(24 * time.Hour)
}

// RunBatch writes records as Parquet under dir (as the consumer would) and
// runs the batch jobs (load-events, then reports) for the UTC days from..to
// (YYYY-MM-DD, inclusive), as 'lambdalog batch backfill' does, recording
// each run in the history. Records outside those days are written but not
// loaded.
func RunBatch(ctx context.Context, db *chdb.DB, records []schemas.Record, dir, from, to string) error {
	fsys, err := storage.Open(ctx, "file://"+dir, storage.Options{})
	if err != nil {
		return err
	}
	defer fsys.Close()
	if _, err := batchtest.WriteLayout(ctx, fsys, records, batchtest.WriteOptions{}); err != nil {
		return err
	}
	l := chload.New(db, nil)
	if _, err := l.Migrate(ctx); err != nil {
		return err
	}
	deps := jobs.Deps{FS: fsys, Source: &source.Layout{FS: fsys, Datasets: chload.EventDatasets()}, Loader: l, Workers: 1}
	ex, err := scheduler.NewExecutor(scheduler.ExecOptions{History: chload.NewHistory(db), Attempts: 1})
	if err != nil {
		return err
	}
	all, err := jobs.Resolve(jobs.New(deps))
	if err != nil {
		return err
	}
	plan, err := jobs.PlanDays(all, time.UTC, from, to, -1)
	if err != nil {
		return err
	}
	if _, err := jobs.Execute(ctx, ex, plan, jobs.ExecOptions{Force: true}); err != nil {
		return fmt.Errorf("querytest: batch jobs: %w", err)
	}
	return nil
}
