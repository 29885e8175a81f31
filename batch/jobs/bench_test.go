package jobs

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// BenchmarkNightly generates LAMBDALOG_BENCH_EVENTS (default 10,000,000)
// events of one day as Parquet (local backend, once per run), then
// measures side by side: the Go report engine (a single-column count, one
// group-by report, the whole nightly set), load-events into ClickHouse,
// and ClickHouse computing the same nightly queries with GROUP BY over the
// loaded tables. The last reports the Go/ClickHouse time ratio.
//
//	go test -run '^$' -bench Nightly -benchtime 3x -timeout 60m ./batch/jobs
func BenchmarkNightly(b *testing.B) {
	n := 10_000_000
	if s := os.Getenv("LAMBDALOG_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	// LAMBDALOG_BENCH_DIR keeps the generated dataset between runs (it is
	// regenerated when its marker does not name the same event count).
	dir := os.Getenv("LAMBDALOG_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	fsys, err := storage.Open(ctx, "file://"+dir, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	marker := filepath.Join(dir, "_generated")
	if m, _ := os.ReadFile(marker); string(m) != strconv.Itoa(n) {
		for _, ds := range reports.ReportDatasets() {
			if err := fsys.RemoveAll(ctx, ds); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		counts, err := batchtest.WriteGenerated(ctx, fsys, batchtest.NewGen(1, 5000), n, day, end, [4]int{4, 3, 1, 3}, batchtest.WriteOptions{RowGroupRows: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d events in %s: %v", n, time.Since(t0).Round(time.Second), counts)
		if err := os.WriteFile(marker, []byte(strconv.Itoa(n)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	src := &source.Layout{FS: fsys, Datasets: reports.ReportDatasets()}
	cores := float64(runtime.GOMAXPROCS(0))
	opts := reports.Options{Workers: runtime.GOMAXPROCS(0)}
	files := map[string][]source.File{}
	for _, ds := range reports.ReportDatasets() {
		if files[ds], err = src.Files(ctx, ds, day, end); err != nil {
			b.Fatal(err)
		}
	}
	perCore := func(b *testing.B, rows int64) {
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(rows)*float64(b.N)/s, "rows/s")
		b.ReportMetric(float64(rows)*float64(b.N)/s/cores, "rows/s/core")
	}
	runQ := func(b *testing.B, ds string, qs []reports.Query) {
		b.ReportAllocs()
		var rows int64
		for i := 0; i < b.N; i++ {
			_, st, err := reports.Run(ctx, fsys, files[ds], day, end, qs, opts)
			if err != nil {
				b.Fatal(err)
			}
			rows = st.RowsRead
		}
		perCore(b, rows)
	}
	b.Run("go/count-single-column", func(b *testing.B) {
		runQ(b, schemas.DatasetFirewall, []reports.Query{{Name: "by_action", Dataset: schemas.DatasetFirewall, Keys: []string{"event_action"},
			Measures: []reports.Measure{{Name: "n", Kind: reports.CountRows}}}})
	})
	b.Run("go/group-by-ip-hour", func(b *testing.B) {
		m, _ := metrics.Lookup(metrics.SSHFailedLoginsPerSourceHour)
		runQ(b, schemas.DatasetAuth, []reports.Query{reports.FromMetric(m)})
	})
	var goNs float64
	b.Run("go/nightly-reports", func(b *testing.B) {
		b.ReportAllocs()
		var rows int64
		cpu0 := selfCPU()
		for i := 0; i < b.N; i++ {
			out, err := reports.Compute(ctx, src, fsys, day, end, opts)
			if err != nil {
				b.Fatal(err)
			}
			rows = out.RowsRead
		}
		b.ReportMetric((selfCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		perCore(b, rows)
		goNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	// The same report set as the reports job computes it: streamed to a
	// sink (here one that drops the rows) instead of returned.
	b.Run("go/nightly-reports-stream", func(b *testing.B) {
		b.ReportAllocs()
		var rows int64
		cpu0 := selfCPU()
		for i := 0; i < b.N; i++ {
			st, err := reports.ComputeTo(ctx, src, fsys, day, end, opts, discardSink{})
			if err != nil {
				b.Fatal(err)
			}
			rows = st.RowsRead
		}
		b.ReportMetric((selfCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		perCore(b, rows)
	})

	srv := chtest.Shared(b)
	// LAMBDALOG_BENCH_DSN_QUERY adds DSN parameters, e.g. compress=lz4 (the
	// default for a remote server; the test server is on loopback).
	dsn := srv.DSN("lambdalog_bench")
	if q := os.Getenv("LAMBDALOG_BENCH_DSN_QUERY"); q != "" {
		dsn += "?" + q
	}
	db, err := chdb.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := chload.New(db, nil)
	// LAMBDALOG_BENCH_FLUSH_ROWS and _SEND_ROWS compare block sizes.
	if s := os.Getenv("LAMBDALOG_BENCH_FLUSH_ROWS"); s != "" {
		if l.FlushRows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	if s := os.Getenv("LAMBDALOG_BENCH_SEND_ROWS"); s != "" {
		if l.SendRows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	// settled waits for the server's background merges of the loaded
	// parts, which are part of what an insert costs it.
	// It waits for 5 s without a merge: the server schedules merges a
	// few seconds after the parts arrive, so an empty system.merges right
	// after the load does not mean there will be none.
	settled := func(b *testing.B) {
		quietSince := time.Now()
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var n uint64
			if err := db.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n > 0 {
				quietSince = time.Now()
			} else if time.Since(quietSince) >= 5*time.Second {
				return
			}
		}
		b.Fatal("merges still running after 3 minutes")
	}
	// LAMBDALOG_BENCH_LOAD_WORKERS compares numbers of concurrent INSERTs.
	loadWorkers := runtime.GOMAXPROCS(0)
	if s := os.Getenv("LAMBDALOG_BENCH_LOAD_WORKERS"); s != "" {
		if loadWorkers, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("clickhouse/load-events", func(b *testing.B) {
		// Run as `lambdalog batch` runs (setBatchGC): batch.gc_percent and
		// batch.memory_limit_mib, unless GOGC or GOMEMLIMIT say otherwise.
		def := config.Default().Batch
		if os.Getenv("GOGC") == "" {
			defer debug.SetGCPercent(debug.SetGCPercent(def.GCPercent))
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(def.MemoryLimitMiB) << 20))
		}
		var rows int64
		settled(b)
		// MergedRows counts the rows the server's background merges read:
		// per loaded row, how often the load's parts are merged again.
		mergedRows := func() uint64 {
			var n uint64
			if err := db.QueryRow(ctx, "SELECT toUInt64(sum(value)) FROM system.events WHERE event = 'MergedRows'").Scan(&n); err != nil {
				b.Fatal(err)
			}
			return n
		}
		merged0 := mergedRows()
		srvCPU0, err := procCPU(srv.Pid())
		if err != nil {
			b.Fatal(err)
		}
		cliCPU0 := selfCPU()
		b.ResetTimer() // the wait for earlier merges is not the load's
		for i := 0; i < b.N; i++ {
			rows = 0
			for _, ds := range reports.ReportDatasets() {
				st, err := l.LoadEvents(ctx, fsys, ds, files[ds], day, end, loadWorkers)
				if err != nil {
					b.Fatal(err)
				}
				rows += st.RowsWritten
			}
		}
		if rows != int64(n) {
			b.Fatalf("loaded %d rows, want %d", rows, n)
		}
		perCore(b, rows)
		cliCPU := selfCPU() - cliCPU0
		b.StopTimer()
		settled(b)
		srvCPU1, err := procCPU(srv.Pid())
		if err != nil {
			b.Fatal(err)
		}
		all := float64(rows) * float64(b.N)
		b.ReportMetric(float64(cliCPU.Nanoseconds())/all, "client-cpu-ns/row")
		b.ReportMetric(float64((srvCPU1-srvCPU0).Nanoseconds())/all, "server-cpu-ns/row")
		b.ReportMetric(float64(mergedRows()-merged0)/all, "merged/row")
	})
	b.Run("clickhouse/nightly-reports", func(b *testing.B) {
		var sqls []string
		for _, ds := range reports.ReportDatasets() {
			for _, q := range reports.DatasetQueries(ds) {
				s, err := reports.SQL(q, chload.EventTable(ds), day, end)
				if err != nil {
					b.Fatal(err)
				}
				sqls = append(sqls, s)
			}
		}
		for i := 0; i < b.N; i++ {
			for _, s := range sqls {
				rows, err := db.Query(ctx, s)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
				rows.Close()
			}
		}
		perCore(b, int64(n))
		chNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if goNs > 0 {
			b.ReportMetric(goNs/chNs, "go/ch-time-ratio")
		}
	})
	// The two compute modes of the reports job end to end, each computing
	// and replacing the day's 16 report tables (batch.compute: go vs
	// clickhouse); the push-down reads the events load-events loaded above.
	var jobNs float64
	b.Run("go/reports-job", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out, err := reports.Compute(ctx, src, fsys, day, end, opts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.ReplaceReports(ctx, day, end, out.Tables); err != nil {
				b.Fatal(err)
			}
		}
		perCore(b, int64(n))
		jobNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("clickhouse/push-down-reports-job", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, err := l.ComputeReports(ctx, day, end)
			if err != nil {
				b.Fatal(err)
			}
			if st.RowsRead != int64(n) {
				b.Fatalf("push-down read %d events, want %d (run load-events first)", st.RowsRead, n)
			}
		}
		perCore(b, int64(n))
		if jobNs > 0 {
			b.ReportMetric(jobNs/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "go/push-down-time-ratio")
		}
	})
}

// discardSink drops the report rows it is handed.
type discardSink struct{}

func (discardSink) Rows(context.Context, *reports.Table, []reports.Row) error { return nil }
