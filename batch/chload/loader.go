package chload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

// Loader writes the batch layer's results into one ClickHouse database.
type Loader struct {
	db   *chdb.DB
	log  *slog.Logger
	now  func() time.Time
	topo Topology
	// stagingLock, when set, is held around each event load (see
	// SetStagingLock).
	stagingLock StagingLock
	// noClusterReplace remembers that the server refused REPLACE
	// PARTITION ON CLUSTER (swapShards).
	noClusterReplace atomic.Bool
	// FlushRows is how many rows each insert worker gathers, sorts by the
	// table's ORDER BY and has the server write as one part (default
	// 262,144). Larger means fewer parts to merge, and more memory: about
	// 300 bytes per row and worker on generated traffic.
	FlushRows int
	// SendRows is the size of the network blocks those rows are sent in
	// (default 32,768): small enough for the client's column buffers to
	// stay in cache.
	SendRows int
	// blocks keeps the insert workers' buffers from one load to the next,
	// per dataset.
	blocksMu sync.Mutex
	blocks   map[string]*sync.Pool
}

func (l *Loader) getBlock(ds *schemas.Dataset, fields []schemas.Field) (*block, func()) {
	l.blocksMu.Lock()
	if l.blocks == nil {
		l.blocks = map[string]*sync.Pool{}
	}
	p := l.blocks[ds.Name()]
	if p == nil {
		p = &sync.Pool{New: func() any { return newBlock(ds, fields) }}
		l.blocks[ds.Name()] = p
	}
	l.blocksMu.Unlock()
	b := p.Get().(*block)
	return b, func() { b.reset(); p.Put(b) }
}

// New returns a Loader on db. logger may be nil.
func New(db *chdb.DB, logger *slog.Logger) *Loader {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Loader{db: db, log: logger, now: time.Now, FlushRows: 1 << 18, SendRows: 1 << 15}
}

// DB is the loader's database.
func (l *Loader) DB() *chdb.DB { return l.db }

// SetTopology lays the tables out on a cluster (the zero Topology is one
// server, the default). Its Database defaults to the loader's. Open db
// with chdb.WithSettings(topo.Settings()).
func (l *Loader) SetTopology(topo Topology) error {
	if topo.Database == "" {
		topo.Database = l.db.Database()
	}
	if err := topo.Validate(); err != nil {
		return err
	}
	l.topo = topo
	return nil
}

// StagingLock takes an exclusive lock named name across every process
// loading into this ClickHouse, waiting while another holds it. The
// returned context is cancelled if the lock is lost; release gives it up.
type StagingLock func(ctx context.Context, name string) (lctx context.Context, release func(), err error)

// SetStagingLock makes LoadEvents hold lock(<table>__staging) while it
// loads a dataset. Two processes loading one event table at once (split
// workers on different days, or the scheduler and a manual run) deadlock
// on ClickHouse 18.16: a load keeps several INSERT streams into the staging
// table open and opens them one by one, the other process's ALTER ...
// DROP PARTITION on that table waits for the open ones, and its table lock
// (first come, first served) makes the next INSERT wait behind the ALTER
// (observed: both processes stuck until killed). Loads of different event
// tables, and report runs, which never keep one statement open while
// starting another, need no lock.
func (l *Loader) SetStagingLock(lock StagingLock) { l.stagingLock = lock }

// Topology is the loader's table layout.
func (l *Loader) Topology() Topology { return l.topo }

// Migrate applies the batch migrations not applied yet.
func (l *Loader) Migrate(ctx context.Context) (int, error) {
	ms, err := MigrationsFor(l.topo)
	if err != nil {
		return 0, fmt.Errorf("chload: migrate: %w", err)
	}
	if l.topo.Clustered() {
		// chdb.Open created the database on the server it connected to
		// only; the ON CLUSTER DDL needs it on every server. Each server
		// is asked directly: CREATE DATABASE ... ON CLUSTER crashes
		// clickhouse-server 18.16.1 (segfault in ZooKeeper::createImpl).
		if l.topo.DSN != "" {
			if err := l.onEveryShard(ctx, []string{"CREATE DATABASE IF NOT EXISTS " + chdb.QuoteIdent(l.topo.Database)}, true); err != nil {
				return 0, fmt.Errorf("chload: migrate: %w", err)
			}
		}
		stmts, err := l.topo.Create(migrationsDDL, ShardingKey("version"))
		if err != nil {
			return 0, fmt.Errorf("chload: migrate: %w", err)
		}
		for _, s := range stmts {
			if err := l.exec(ctx, s); err != nil {
				return 0, fmt.Errorf("chload: migrate: %w", err)
			}
		}
	}
	n, err := chdb.Migrate(ctx, l.db, MigrationsTable, ms)
	if err != nil {
		return n, fmt.Errorf("chload: migrate: %w", err)
	}
	return n, nil
}

// partitionID is the toYYYYMMDD partition of t (UTC).
func partitionID(t time.Time) string { return t.UTC().Format("20060102") }

func (l *Loader) exec(ctx context.Context, q string) error {
	if err := l.db.Exec(ctx, q); err != nil {
		return fmt.Errorf("chload: %s: %w", q, err)
	}
	return nil
}

func (l *Loader) dropStaging(ctx context.Context, table, part string) error {
	if l.topo.Clustered() {
		return l.dropStagingShards(ctx, table, part)
	}
	return l.exec(ctx, l.topo.DropPartition(table+StagingSuffix, part))
}

// swap atomically replaces table's partition with the staging table's and
// empties the staging partition.
func (l *Loader) swap(ctx context.Context, table, part string) error {
	if l.topo.Clustered() {
		return l.swapShards(ctx, table, part)
	}
	if err := l.exec(ctx, l.topo.ReplacePartition(table, part, table+StagingSuffix)); err != nil {
		return err
	}
	return l.dropStaging(ctx, table, part)
}

// ReplaceReports makes tables the complete result of the interval starting
// at start: every table's rows go to its staging partition first, and only
// when all are staged is each table's partition swapped in, so a failure
// while computing or staging leaves every previous result visible. It
// returns the rows written.
func (l *Loader) ReplaceReports(ctx context.Context, start, end time.Time, tables []reports.Table) (int64, error) {
	w, err := l.NewReportWriter(ctx, start, end, tables)
	if err != nil {
		return 0, err
	}
	for i := range tables {
		t := &tables[i]
		for lo := 0; lo < len(t.Rows); lo += w.flushRows {
			if err := w.Rows(ctx, t, t.Rows[lo:min(lo+w.flushRows, len(t.Rows))]); err != nil {
				return 0, err
			}
		}
	}
	return w.Commit(ctx)
}

// ReportWriter stages one interval's report rows as they come and swaps
// them in at Commit: it is the reports.Sink of a streaming reports run
// (reports.ComputeTo). Rows wait in memory until ReportFlushRows of them
// are buffered, then the table holding the most goes to its staging
// partition in one INSERT; so the rows a run holds are bounded by one
// flush block, whatever the day's size. A writer that is not committed
// (the run failed) changes nothing visible: the staged rows are dropped
// by the interval's next run.
type ReportWriter struct {
	l          *Loader
	start, end time.Time
	part       string
	computed   time.Time
	tables     []string
	known      map[string]bool
	buf        map[string]*pendingRows
	buffered   int
	flushRows  int
	written    int64
	failed     error
}

type pendingRows struct {
	t    reports.Table // columns; Rows holds the buffered rows
	cols []string
}

// ReportFlushRows is how many report rows a ReportWriter buffers before it
// inserts (about 160 bytes each on generated traffic).
const ReportFlushRows = 1 << 16

// NewReportWriter empties the staging partitions of tables (their columns;
// the rows are ignored) for the interval starting at start. Only these
// tables take rows, and Commit replaces every one of them, those that got
// none with an empty partition.
func (l *Loader) NewReportWriter(ctx context.Context, start, end time.Time, tables []reports.Table) (*ReportWriter, error) {
	w := &ReportWriter{l: l, start: start.UTC(), end: end.UTC(), part: partitionID(start), computed: l.now().UTC(),
		known: map[string]bool{}, buf: map[string]*pendingRows{}, flushRows: ReportFlushRows}
	for _, t := range tables {
		if w.known[t.Name] {
			return nil, fmt.Errorf("chload: report table %s given twice", t.Name)
		}
		w.known[t.Name] = true
		w.tables = append(w.tables, t.Name)
		if err := l.dropStaging(ctx, t.Name, w.part); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Rows buffers rows of table t, inserting the largest table's buffer into
// its staging partition whenever ReportFlushRows rows are buffered.
func (w *ReportWriter) Rows(ctx context.Context, t *reports.Table, rows []reports.Row) error {
	if w.failed != nil {
		return w.failed
	}
	if !w.known[t.Name] {
		return fmt.Errorf("chload: report table %s is not one of the writer's", t.Name)
	}
	p := w.buf[t.Name]
	if p == nil {
		p = &pendingRows{t: reports.Table{Name: t.Name, Keys: t.Keys, Values: t.Values}, cols: reportColumns(*t)}
		w.buf[t.Name] = p
	}
	p.t.Rows = append(p.t.Rows, rows...)
	w.buffered += len(rows)
	for w.buffered >= w.flushRows {
		var big *pendingRows
		for _, q := range w.buf {
			if big == nil || len(q.t.Rows) > len(big.t.Rows) {
				big = q
			}
		}
		if err := w.flush(ctx, big); err != nil {
			return err
		}
	}
	return nil
}

// flush inserts p's buffered rows into the table's staging partition.
func (w *ReportWriter) flush(ctx context.Context, p *pendingRows) error {
	err := w.insert(ctx, p)
	w.buffered -= len(p.t.Rows)
	w.written += int64(len(p.t.Rows))
	clear(p.t.Rows) // let go of the rows' strings and values
	p.t.Rows = p.t.Rows[:0]
	if err != nil {
		w.failed = err
	}
	return err
}

func (w *ReportWriter) insert(ctx context.Context, p *pendingRows) error {
	t := &p.t
	if len(t.Rows) == 0 {
		return nil
	}
	b, err := w.l.db.PrepareBatch(ctx, "INSERT INTO "+chdb.QuoteIdent(t.Name+StagingSuffix)+" ("+quoteAll(p.cols)+")")
	if err != nil {
		return fmt.Errorf("chload: prepare %s: %w", t.Name, err)
	}
	row := make([]any, 0, len(p.cols))
	for _, r := range t.Rows {
		row = append(row[:0], w.start, w.end, r.Period.UTC())
		for i, c := range t.Keys {
			v, err := typed(c.Type, r.Keys[i])
			if err != nil {
				b.Abort()
				return fmt.Errorf("chload: %s.%s: %w", t.Name, c.Name, err)
			}
			row = append(row, v)
		}
		for i, c := range t.Values {
			if c.Type == "UInt64" {
				row = append(row, uint64(r.Values[i]))
			} else {
				row = append(row, r.Values[i])
			}
		}
		row = append(row, w.computed)
		if err := b.Append(row...); err != nil {
			b.Abort()
			return fmt.Errorf("chload: append %s: %w", t.Name, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("chload: insert %s: %w", t.Name, err)
	}
	return nil
}

// Commit inserts the rows still buffered and, when every table is staged,
// swaps each table's partition in. It returns the rows written.
func (w *ReportWriter) Commit(ctx context.Context) (int64, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	for _, name := range w.tables {
		if p := w.buf[name]; p != nil {
			if err := w.flush(ctx, p); err != nil {
				return 0, err
			}
		}
	}
	w.buf = nil
	w.failed = errors.New("chload: report writer already committed")
	for _, name := range w.tables {
		if err := w.l.swap(ctx, name, w.part); err != nil {
			return w.written, err
		}
	}
	return w.written, nil
}

func typed(chType, s string) (any, error) {
	switch chType {
	case "String":
		return s, nil
	case "UInt16":
		v, err := strconv.ParseUint(s, 10, 16)
		return uint16(v), err
	case "Int32":
		v, err := strconv.ParseInt(s, 10, 32)
		return int32(v), err
	case "Int64":
		return strconv.ParseInt(s, 10, 64)
	}
	return nil, fmt.Errorf("unsupported key type %s", chType)
}

// LoadStats describe an event load.
type LoadStats struct {
	RowsRead    int64
	RowsWritten int64
	Files       int64
	Bytes       int64
}

// LoadEvents replaces the events of dataset in [from, to) with the rows of
// files. Each UTC day partition the interval touches is rebuilt in staging
// (the partition's rows outside the interval copied server-side, the
// interval's rows loaded from Parquet column by column) and swapped in
// with one REPLACE PARTITION, so readers see the old or the new day, never
// a mix. from and to must be whole seconds.
func (l *Loader) LoadEvents(ctx context.Context, fsys storage.FS, dataset string, files []source.File, from, to time.Time, workers int) (LoadStats, error) {
	ds, ok := schemas.Lookup(dataset)
	if !ok {
		return LoadStats{}, fmt.Errorf("chload: unknown dataset %q", dataset)
	}
	table := EventTable(dataset)
	if l.stagingLock != nil {
		lctx, release, err := l.stagingLock(ctx, table+StagingSuffix)
		if err != nil {
			return LoadStats{}, fmt.Errorf("chload: lock %s: %w", table+StagingSuffix, err)
		}
		defer release()
		ctx = lctx
	}
	var total LoadStats
	for day := from.UTC().Truncate(24 * time.Hour); day.Before(to); day = day.Add(24 * time.Hour) {
		lo, hi := maxTime(from, day), minTime(to, day.Add(24*time.Hour))
		part := partitionID(day)
		var dayFiles []source.File
		for _, f := range files {
			if f.PartStart.IsZero() || (f.PartStart.Before(hi) && f.PartEnd.After(lo)) {
				dayFiles = append(dayFiles, f)
			}
		}
		if len(dayFiles) == 0 {
			// Nothing to load: done unless an earlier run left rows there
			// (files since removed), which the swap below must clear.
			var n uint64
			if err := l.db.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE toYYYYMMDD(timestamp) = %s AND timestamp >= toDateTime(%d, 'UTC') AND timestamp < toDateTime(%d, 'UTC')",
				chdb.QuoteIdent(table), part, lo.Unix(), hi.Unix())).Scan(&n); err != nil {
				return total, fmt.Errorf("chload: count %s: %w", table, err)
			}
			if n == 0 {
				continue
			}
		}
		if err := l.dropStaging(ctx, table, part); err != nil {
			return total, err
		}
		// Keep the partition's rows outside [lo, hi).
		cols := quoteAll(ds.ClickHouseColumns())
		if err := l.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE toYYYYMMDD(timestamp) = %s AND NOT (timestamp >= toDateTime(%d, 'UTC') AND timestamp < toDateTime(%d, 'UTC'))",
			chdb.QuoteIdent(table+StagingSuffix), cols, cols, chdb.QuoteIdent(table), part, lo.Unix(), hi.Unix())); err != nil {
			return total, err
		}
		resume, err := l.pauseMerges(ctx, table+StagingSuffix)
		if err != nil {
			return total, err
		}
		st, err := l.loadFiles(ctx, fsys, ds, table+StagingSuffix, dayFiles, lo, hi, workers, resume)
		if rerr := resume(); err == nil {
			err = rerr
		}
		if err != nil {
			return total, err
		}
		if err := l.swap(ctx, table, part); err != nil {
			return total, err
		}
		total.RowsRead += st.RowsRead
		total.RowsWritten += st.RowsWritten
		total.Files += st.Files
		total.Bytes += st.Bytes
	}
	return total, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// maxPausedParts bounds the parts a load writes into a staging partition
// while its merges are paused: ClickHouse delays INSERTs into a partition
// of 150 parts and refuses them at 300 (18.16's defaults), and every part
// is swapped into the table as it is. 64 parts are 16.8 million rows at
// the default FlushRows; a larger day resumes merges after them.
const maxPausedParts = 64

// pauseMerges stops the background merges of the (single-server) staging
// table while a load writes its parts, and returns the function that
// starts them again; it may be called more than once and runs even when
// ctx is done.
//
// Merging staged parts is work the server does while the load waits for
// it: it shares the machine with the inserts, and on generated traffic it
// merged each loaded row 0.8 to 1.3 times during the load, the main cause
// of the spread between runs (docs/benchmarks.md). The parts are swapped
// into the table unmerged and merged there in the background, after the
// day is visible. Replicated and clustered staging tables are left alone:
// SYSTEM STOP MERGES acts on one server's table. The pause is only an
// optimisation: a server that refuses it (no privilege) gets a warning
// and the load goes on.
func (l *Loader) pauseMerges(ctx context.Context, staging string) (resume func() error, err error) {
	if l.topo.Clustered() {
		return func() error { return nil }, nil
	}
	if err := l.exec(ctx, "SYSTEM STOP MERGES "+chdb.QuoteIdent(staging)); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// A user without the SYSTEM MERGES privilege (current releases'
		// access control) loads as before, with the merges running.
		l.log.Warn("cannot pause the staging table's merges; loading with them running", "table", staging, "err", err)
		return func() error { return nil }, nil
	}
	var (
		once sync.Once
		rerr error
	)
	return func() error {
		once.Do(func() {
			// A cancelled load must still leave the merges running.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			rerr = l.exec(rctx, "SYSTEM START MERGES "+chdb.QuoteIdent(staging))
		})
		return rerr
	}, nil
}

// loadFiles scans files and inserts the rows in [from, to) into table, one
// INSERT per worker sent in blocks of FlushRows. After maxPausedParts
// blocks it calls resumeMerges.
func (l *Loader) loadFiles(ctx context.Context, fsys storage.FS, ds *schemas.Dataset, table string, files []source.File, from, to time.Time, workers int, resumeMerges func() error) (LoadStats, error) {
	if len(files) == 0 {
		return LoadStats{}, nil
	}
	fields := ds.Fields()
	names := make([]string, len(fields))
	var dict []string
	for i, f := range fields {
		names[i] = f.Name
		if f.LowCardinality {
			dict = append(dict, f.Name)
		}
	}
	insert := "INSERT INTO " + chdb.QuoteIdent(table) + " (" + quoteAll(ds.ClickHouseColumns()) + ")"
	if workers <= 0 {
		workers = 2
	}
	flushRows, sendRows := l.FlushRows, l.SendRows
	if flushRows <= 0 {
		flushRows = 1 << 18
	}
	if sendRows <= 0 {
		sendRows = 1 << 15
	}
	type wstate struct {
		b       driver.Batch
		block   *block
		release func()
	}
	// A worker sends FlushRows sorted rows (see block) as several network
	// blocks; the server squashes consecutive blocks until it has
	// min_insert_block_size_rows of them, so each part it writes is one
	// sorted block, which it then does not sort again. Were the server to
	// squash differently, it would sort: slower, never wrong.
	ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"min_insert_block_size_rows":  flushRows,
		"min_insert_block_size_bytes": 0,
	}))
	var (
		mu      sync.Mutex
		states  = make([]*wstate, workers)
		written atomic.Int64
		parts   atomic.Int64
	)
	st, err := source.Scan(ctx, fsys, files, source.ScanOptions{Columns: names, Dict: dict, From: from, To: to, Workers: workers, BatchRows: int64(sendRows), Recycle: true},
		func(w int, c *source.Chunk) error {
			mu.Lock()
			s := states[w]
			if s == nil {
				s = &wstate{}
				s.block, s.release = l.getBlock(ds, fields)
				states[w] = s
			}
			mu.Unlock()
			if s.b == nil {
				b, err := l.db.PrepareBatch(ictx, insert)
				if err != nil {
					return fmt.Errorf("chload: prepare %s: %w", table, err)
				}
				s.b = b
			}
			n, err := s.block.add(c, from.UnixMicro(), to.UnixMicro(), flushRows, func() error {
				if err := s.block.flush(s.b, sendRows); err != nil {
					return fmt.Errorf("chload: insert %s: %w", table, err)
				}
				if parts.Add(1) == maxPausedParts {
					return resumeMerges()
				}
				return nil
			})
			written.Add(int64(n))
			if err != nil {
				return fmt.Errorf("chload: %s: %w", c.File.Name, err)
			}
			return nil
		})
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range states {
		if s == nil {
			continue
		}
		if s.b == nil {
			s.release()
			continue
		}
		if err == nil {
			if ferr := s.block.flush(s.b, sendRows); ferr != nil {
				err = fmt.Errorf("chload: insert %s: %w", table, ferr)
				errs = append(errs, err)
			}
		}
		s.release()
		if err != nil {
			s.b.Abort()
			continue
		}
		if serr := s.b.Send(); serr != nil {
			errs = append(errs, fmt.Errorf("chload: insert %s: %w", table, serr))
		}
	}
	return LoadStats{RowsRead: written.Load(), RowsWritten: written.Load(), Files: st.Files, Bytes: st.Bytes}, errors.Join(errs...)
}
