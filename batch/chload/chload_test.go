package chload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

func openDB(t testing.TB) *chdb.DB {
	t.Helper()
	srv := chtest.Shared(t)
	name := chtest.NewDatabase(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := chdb.Open(ctx, srv.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *chdb.DB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := db.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestMigrateIdempotent(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	ctx := context.Background()
	n, err := l.Migrate(ctx)
	if err != nil || n != 3 {
		t.Fatalf("first migrate: %d, %v", n, err)
	}
	if n, err = l.Migrate(ctx); err != nil || n != 0 {
		t.Fatalf("second migrate: %d, %v", n, err)
	}
	want := len(EventDatasets())*2 + len(reports.TableSchemas())*2 + 2
	if got := count(t, db, "SELECT count() FROM system.tables WHERE database = currentDatabase()"); int(got) != want {
		t.Fatalf("%d tables, want %d", got, want)
	}
}

func fixture(t testing.TB, n int) (storage.FS, []schemas.Record, *source.Layout) {
	return writeFixture(t, n, false)
}

// fixtureShuffled is fixture with the records written in random order,
// so every file's rows are out of time order.
func fixtureShuffled(t testing.TB, n int) (storage.FS, []schemas.Record, *source.Layout) {
	return writeFixture(t, n, true)
}

func writeFixture(t testing.TB, n int, shuffle bool) (storage.FS, []schemas.Record, *source.Layout) {
	t.Helper()
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := batchtest.NewGen(7, 200)
	from := time.Date(2026, 4, 1, 22, 0, 0, 0, time.UTC)
	recs := g.Events(n, from, from.Add(28*time.Hour), [4]int{4, 3, 1, 3})
	if shuffle {
		rand.New(rand.NewPCG(3, 4)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	}
	if _, err := batchtest.WriteLayout(context.Background(), fsys, recs, batchtest.WriteOptions{RowGroupRows: 1000}); err != nil {
		t.Fatal(err)
	}
	return fsys, recs, &source.Layout{FS: fsys, Datasets: reports.ReportDatasets()}
}

func inside(recs []schemas.Record, ds string, from, to time.Time) int {
	n := 0
	for _, r := range recs {
		if r.Dataset() == ds && !r.EventTime().Before(from) && r.EventTime().Before(to) {
			n++
		}
	}
	return n
}

// TestLoadEventsIdempotent loads hours and then the whole day, twice, and
// checks the exact rows per interval never duplicate; then the reports
// computed in Go equal ClickHouse's GROUP BY over the loaded events.
func TestLoadEventsIdempotentAndReportsAgree(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	l.FlushRows = 500 // several blocks per insert
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, recs, src := fixture(t, 20000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	load := func(ds string, from, to time.Time) LoadStats {
		t.Helper()
		files, err := src.Files(ctx, ds, from, to)
		if err != nil {
			t.Fatal(err)
		}
		st, err := l.LoadEvents(ctx, fsys, ds, files, from, to, 2)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	rowsIn := func(ds string, from, to time.Time) int {
		return int(count(t, db, fmt.Sprintf("SELECT count() FROM %s WHERE timestamp >= toDateTime(%d, 'UTC') AND timestamp < toDateTime(%d, 'UTC')", EventTable(ds), from.Unix(), to.Unix())))
	}
	// Hours 03:00 and 04:00, each loaded twice.
	for _, h := range []int{3, 4, 3, 4} {
		from := day.Add(time.Duration(h) * time.Hour)
		st := load("auth", from, from.Add(time.Hour))
		if want := inside(recs, "auth", from, from.Add(time.Hour)); int(st.RowsWritten) != want {
			t.Fatalf("hour %d: wrote %d, want %d", h, st.RowsWritten, want)
		}
	}
	if got, want := rowsIn("auth", day, day.Add(24*time.Hour)), inside(recs, "auth", day.Add(3*time.Hour), day.Add(5*time.Hour)); got != want {
		t.Fatalf("after hourly loads: %d rows in the day, want %d", got, want)
	}
	// A whole day spanning two UTC partitions (22:00 to 22:00 next day),
	// loaded twice: hours loaded before are replaced, not doubled.
	for i := 0; i < 2; i++ {
		for _, ds := range reports.ReportDatasets() {
			load(ds, day.Add(-2*time.Hour), day.Add(22*time.Hour))
		}
	}
	for _, ds := range reports.ReportDatasets() {
		if got, want := rowsIn(ds, day.Add(-4*time.Hour), day.Add(26*time.Hour)), inside(recs, ds, day.Add(-2*time.Hour), day.Add(22*time.Hour)); got != want || want == 0 {
			t.Fatalf("%s: %d rows, want %d", ds, got, want)
		}
	}
	// Field values survive: one auth record read back exactly.
	var probe *schemas.Auth
	for _, r := range recs {
		if a, ok := r.(*schemas.Auth); ok && a.Base.Timestamp.After(day) && a.Base.Timestamp.Before(day.Add(time.Hour)) {
			probe = a
			break
		}
	}
	var (
		ip, user, outcome string
		ts                time.Time
		ms                uint16
		port              uint16
	)
	if err := db.QueryRow(ctx, fmt.Sprintf("SELECT source_ip, user_name, event_outcome, timestamp, timestamp_ms, source_port FROM %s WHERE kafka_offset = %d", EventTable("auth"), probe.Base.KafkaOffset)).Scan(&ip, &user, &outcome, &ts, &ms, &port); err != nil {
		t.Fatal(err)
	}
	if ip != probe.SourceIP || user != probe.User || outcome != probe.Outcome || port != probe.SourcePort ||
		!ts.Add(time.Duration(ms)*time.Millisecond).Equal(probe.Base.Timestamp.Truncate(time.Millisecond)) {
		t.Fatalf("read back %s %s %s %s+%dms %d, want %+v", ip, user, outcome, ts, ms, port, probe)
	}

	// Go reports == ClickHouse GROUP BY over the same events.
	from, to := day.Add(-2*time.Hour), day.Add(22*time.Hour)
	for _, ds := range reports.ReportDatasets() {
		files, _ := src.Files(ctx, ds, from, to)
		qs := reports.DatasetQueries(ds)
		res, _, err := reports.Run(ctx, fsys, files, from, to, qs, reports.Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		for i, q := range qs {
			sql, err := reports.SQL(q, EventTable(ds), from, to)
			if err != nil {
				t.Fatal(err)
			}
			got := rowsOf(res[i])
			want := queryRows(t, db, sql, len(q.Keys), len(q.Measures))
			if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s: Go and ClickHouse disagree (%d vs %d rows)\nGo: %.300s\nCH: %.300s\nSQL: %s", q.Name, len(got), len(want), strings.Join(got, ";"), strings.Join(want, ";"), sql)
			}
		}
	}
}

func rowsOf(r reports.Result) []string {
	var out []string
	for _, row := range r.Rows {
		out = append(out, fmt.Sprintf("%d|%s|%v", row.Period.Unix(), strings.Join(row.Keys, "|"), row.Values))
	}
	sort.Strings(out)
	return out
}

func queryRows(t *testing.T, db *chdb.DB, sql string, nk, nm int) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p uint32
		keys := make([]string, nk)
		vals := make([]int64, nm)
		dst := []any{&p}
		for i := range keys {
			dst = append(dst, &keys[i])
		}
		for i := range vals {
			dst = append(dst, &vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d|%s|%v", p, strings.Join(keys, "|"), vals))
	}
	sort.Strings(out)
	return out
}

func TestReplaceReportsIdempotentAndAtomic(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, _, src := fixture(t, 8000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	out, err := reports.Compute(ctx, src, fsys, day, day.Add(24*time.Hour), reports.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var b strings.Builder
		for _, tb := range out.Tables {
			fmt.Fprintf(&b, "%s=%d;", tb.Name, count(t, db, "SELECT count() FROM "+tb.Name))
		}
		var failures uint64
		db.QueryRow(ctx, "SELECT toUInt64(sum(failures)) FROM report_auth_ip_hour").Scan(&failures)
		fmt.Fprintf(&b, "failures=%d", failures)
		return b.String()
	}
	var want strings.Builder
	var totalFailures int64
	for _, tb := range out.Tables {
		fmt.Fprintf(&want, "%s=%d;", tb.Name, len(tb.Rows))
	}
	for _, r := range out.Results["auth_ip_hour"].Rows {
		totalFailures += r.Values[0]
	}
	fmt.Fprintf(&want, "failures=%d", totalFailures)
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		_, err := l.ReplaceReports(ctx, day, day.Add(24*time.Hour), out.Tables)
		t.Logf("replace reports took %s", time.Since(t0))
		if err != nil {
			t.Fatal(err)
		}
		if got := snapshot(); got != want.String() {
			t.Fatalf("run %d:\n got %s\nwant %s", i+1, got, want.String())
		}
	}
	// The security summary's first row is the Go summary's riskiest IP.
	var ip string
	var risk int64
	if err := db.QueryRow(ctx, "SELECT source_ip, risk FROM report_security_summary WHERE rank = 1").Scan(&ip, &risk); err != nil {
		t.Fatal(err)
	}
	if s := out.Summary()[0]; ip != s.SourceIP || risk != s.Risk {
		t.Fatalf("summary rank 1 = %s %d, want %s %d", ip, risk, s.SourceIP, s.Risk)
	}
	// A run that fails while staging (a bad key in its last table) leaves
	// the previous result of every table visible.
	bad := append([]reports.Table(nil), out.Tables...)
	bad[0] = reports.Table{Name: bad[0].Name, Keys: bad[0].Keys, Values: bad[0].Values} // would empty it
	last := bad[len(bad)-1]
	last.Rows = append([]reports.Row(nil), last.Rows...)
	last.Rows[0].Keys = []string{"not-a-rank", "x"}
	bad[len(bad)-1] = last
	if _, err := l.ReplaceReports(ctx, day, day.Add(24*time.Hour), bad); err == nil {
		t.Fatal("bad run succeeded")
	}
	if got := snapshot(); got != want.String() {
		t.Fatalf("after a failed run:\n got %s\nwant %s", got, want.String())
	}
}

func TestHistory(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if _, err := New(db, nil).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := NewHistory(db)
	d1, _ := scheduler.Day("2026-04-01", time.UTC)
	d2, _ := scheduler.Day("2026-04-02", time.UTC)
	base := time.Date(2026, 4, 3, 0, 15, 0, 123e6, time.UTC)
	runs := []scheduler.Run{
		{Job: "reports", Interval: d1, Attempt: 1, Status: scheduler.StatusSucceeded, Started: base, Finished: base.Add(time.Second), RowsRead: 10, RowsWritten: 3},
		{Job: "reports", Interval: d2, Attempt: 1, Status: scheduler.StatusFailed, Started: base.Add(2 * time.Second), Finished: base.Add(3 * time.Second), Error: "it's broken"},
		{Job: "load-events", Interval: d2, Attempt: 1, Status: scheduler.StatusSucceeded, Started: base.Add(4 * time.Second), Finished: base.Add(5 * time.Second), RowsRead: 7, RowsWritten: 7},
	}
	for _, r := range runs {
		if err := h.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	done, err := h.Succeeded(ctx, "reports", d1.Start, d2.End)
	if err != nil || len(done) != 1 || done[0] != d1 {
		t.Fatalf("succeeded %v %v", done, err)
	}
	got, err := h.List(ctx, scheduler.Query{Job: "reports", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || fmt.Sprintf("%+v", got[0]) != fmt.Sprintf("%+v", runs[1]) || fmt.Sprintf("%+v", got[1]) != fmt.Sprintf("%+v", runs[0]) {
		t.Fatalf("list:\n%+v\nwant\n%+v", got, []scheduler.Run{runs[1], runs[0]})
	}
	if all, _ := h.List(ctx, scheduler.Query{Limit: 1}); len(all) != 1 || all[0].Job != "load-events" {
		t.Fatalf("list all: %+v", all)
	}
}

// TestLoadEventsSortedExactly loads every dataset's day with blocks of a
// few hundred rows sent in smaller network blocks, and checks that every
// row arrives exactly once with each column's value from its own record
// (the loader reorders rows by the ORDER BY key), and that the server wrote
// every block without sorting it again. "shuffled" writes each file's
// rows out of time order, so the loader reorders them within each bucket
// (the path where a bucket's rows are not sent as one slice).
func TestLoadEventsSortedExactly(t *testing.T) {
	db := openDB(t)
	for _, shuffled := range []bool{false, true} {
		t.Run(map[bool]string{false: "in order", true: "shuffled"}[shuffled], func(t *testing.T) {
			testLoadEventsSortedExactly(t, db, shuffled)
		})
	}
}

func testLoadEventsSortedExactly(t *testing.T, db *chdb.DB, shuffled bool) {
	l := New(db, nil)
	l.FlushRows, l.SendRows = 700, 250
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		fsys storage.FS
		recs []schemas.Record
		src  *source.Layout
	)
	if shuffled {
		fsys, recs, src = fixtureShuffled(t, 8000)
	} else {
		fsys, recs, src = fixture(t, 8000)
	}
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	writerEvents := func() (blocks, sorted uint64) {
		t.Helper()
		rows, err := db.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted')")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var v uint64
			if err := rows.Scan(&name, &v); err != nil {
				t.Fatal(err)
			}
			if name == "MergeTreeDataWriterBlocks" {
				blocks = v
			} else {
				sorted = v
			}
		}
		return blocks, sorted
	}
	blocks0, sorted0 := writerEvents()
	for _, ds := range reports.ReportDatasets() {
		files, err := src.Files(ctx, ds, day, day.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		st, err := l.LoadEvents(ctx, fsys, ds, files, day, day.Add(24*time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if want := inside(recs, ds, day, day.Add(24*time.Hour)); int(st.RowsWritten) != want {
			t.Fatalf("%s: wrote %d rows, want %d", ds, st.RowsWritten, want)
		}
	}
	blocks1, sorted1 := writerEvents()
	if blocks := blocks1 - blocks0; blocks < 8 || sorted1-sorted0 != blocks {
		t.Fatalf("the server wrote %d blocks, %d of them already sorted: want several, all sorted", blocks, sorted1-sorted0)
	}

	type row struct {
		original, host, ip string
		ts, kts            time.Time
	}
	want := map[int64]row{}
	for _, r := range recs {
		c := r.Common()
		if c.Timestamp.Before(day) || !c.Timestamp.Before(day.Add(24*time.Hour)) {
			continue
		}
		var ip string
		switch e := r.(type) {
		case *schemas.Auth:
			ip = e.SourceIP
		case *schemas.Firewall:
			ip = e.SourceIP
		case *schemas.IDS:
			ip = e.SourceIP
		case *schemas.Web:
			ip = e.SourceIP
		}
		want[c.KafkaOffset] = row{c.EventOriginal, c.Host, ip, c.Timestamp.Truncate(time.Millisecond), c.KafkaTimestamp.Truncate(time.Millisecond)}
	}
	seen := 0
	for _, ds := range reports.ReportDatasets() {
		rows, err := db.Query(ctx, "SELECT kafka_offset, event_original, host_name, source_ip, timestamp, timestamp_ms, kafka_timestamp, kafka_timestamp_ms FROM "+chdb.QuoteIdent(EventTable(ds)))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var (
				off     int64
				got     row
				ms, kms uint16
				ts, kts time.Time
			)
			if err := rows.Scan(&off, &got.original, &got.host, &got.ip, &ts, &ms, &kts, &kms); err != nil {
				t.Fatal(err)
			}
			got.ts = ts.Add(time.Duration(ms) * time.Millisecond).UTC()
			got.kts = kts.Add(time.Duration(kms) * time.Millisecond).UTC()
			w, ok := want[off]
			if !ok {
				t.Fatalf("%s: row with offset %d loaded twice or not in the interval: %+v", ds, off, got)
			}
			if !got.ts.Equal(w.ts) || !got.kts.Equal(w.kts) || got.original != w.original || got.host != w.host || got.ip != w.ip {
				t.Fatalf("%s: offset %d loaded as %+v, want %+v", ds, off, got, w)
			}
			delete(want, off)
			seen++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if len(want) != 0 || seen == 0 {
		t.Fatalf("%d rows read back, %d missing", seen, len(want))
	}
}

// TestLoadEventsQuarantineAndSyslog loads the two datasets no report reads:
// quarantined lines must arrive byte for byte (not valid UTF-8, empty,
// longer than an arena page), sorted by their format and reason, and
// syslog lines with their program, the first column of their key.
func TestLoadEventsQuarantineAndSyslog(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	l.FlushRows, l.SendRows = 300, 100
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, err := storage.Open(ctx, "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	var recs []schemas.Record
	raw := map[int64][]byte{}
	prog := map[int64]string{}
	long := make([]byte, 300_000) // beyond the largest arena page
	for i := range long {
		long[i] = byte(i)
	}
	for i := 0; i < 1500; i++ {
		c := schemas.Common{Timestamp: day.Add(time.Duration(i*7919%86400) * time.Second), Host: fmt.Sprintf("h%d", i%5),
			KafkaTopic: "x", KafkaPartition: int32(i % 3), KafkaOffset: int64(i)}
		if i%2 == 0 {
			b := []byte(fmt.Sprintf("\xff\xfe line %d \x00", i))
			switch i {
			case 0:
				b = nil
			case 2:
				b = long
			}
			raw[c.KafkaOffset] = b
			recs = append(recs, &schemas.Quarantine{Base: c, Raw: b, SourceFormat: []string{"syslog", "json", "cef"}[i%3], Reason: []string{"not_syslog", "bad_json"}[i/2%2]})
		} else {
			prog[c.KafkaOffset] = []string{"cron", "systemd", "kernel", ""}[i%4]
			recs = append(recs, &schemas.Syslog{Base: c, Program: prog[c.KafkaOffset], Message: "m"})
		}
	}
	if _, err := batchtest.WriteLayout(ctx, fsys, recs, batchtest.WriteOptions{RowGroupRows: 200}); err != nil {
		t.Fatal(err)
	}
	src := &source.Layout{FS: fsys, Datasets: []string{schemas.DatasetQuarantine, schemas.DatasetSyslog}}
	for _, ds := range src.Datasets {
		files, err := src.Files(ctx, ds, day, day.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.LoadEvents(ctx, fsys, ds, files, day, day.Add(24*time.Hour), 2); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(ctx, "SELECT kafka_offset, raw FROM "+chdb.QuoteIdent(EventTable(schemas.DatasetQuarantine)))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var off int64
		var got string
		if err := rows.Scan(&off, &got); err != nil {
			t.Fatal(err)
		}
		want, ok := raw[off]
		if !ok || got != string(want) {
			t.Fatalf("quarantined line %d loaded as %d bytes %.40q, want %d bytes %.40q (known: %v)", off, len(got), got, len(want), want, ok)
		}
		delete(raw, off)
	}
	rows.Close()
	if len(raw) != 0 {
		t.Fatalf("%d quarantined lines missing", len(raw))
	}
	rows, err = db.Query(ctx, "SELECT kafka_offset, process_name FROM "+chdb.QuoteIdent(EventTable(schemas.DatasetSyslog)))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var off int64
		var got string
		if err := rows.Scan(&off, &got); err != nil {
			t.Fatal(err)
		}
		if want, ok := prog[off]; !ok || got != want {
			t.Fatalf("syslog line %d loaded with program %q, want %q (known: %v)", off, got, want, ok)
		}
		delete(prog, off)
	}
	rows.Close()
	if len(prog) != 0 {
		t.Fatalf("%d syslog lines missing", len(prog))
	}
}

// TestReportWriterStreams stages a streaming reports run in many small
// inserts (a flush every 300 rows) and checks that the tables then hold
// exactly what ReplaceReports of the whole result holds, that nothing is
// visible before Commit, and that an abandoned run's staged rows neither
// show nor survive into the next run.
func TestReportWriterStreams(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, _, src := fixture(t, 8000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	// fingerprint hashes every row of every report table (computed_at
	// aside).
	fingerprint := func(suffix string) string {
		var b strings.Builder
		for _, tb := range reports.TableSchemas() {
			cols := []string{"interval_start", "interval_end", "period_start"}
			for _, c := range append(append([]reports.Column{}, tb.Keys...), tb.Values...) {
				cols = append(cols, c.Name)
			}
			var n, h uint64
			q := fmt.Sprintf("SELECT count(), sum(cityHash64(%s)) FROM %s", strings.Join(cols, ", "), tb.Name+suffix)
			if err := db.QueryRow(ctx, q).Scan(&n, &h); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			fmt.Fprintf(&b, "%s=%d/%d;", tb.Name, n, h)
		}
		return b.String()
	}
	out, err := reports.Compute(ctx, src, fsys, day, end, reports.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := l.ReplaceReports(ctx, day, end, out.Tables)
	if err != nil {
		t.Fatal(err)
	}
	whole := fingerprint("")
	empty := fingerprint(StagingSuffix)

	stream := func(flushRows int) *ReportWriter {
		t.Helper()
		w, err := l.NewReportWriter(ctx, day, end, reports.TableSchemas())
		if err != nil {
			t.Fatal(err)
		}
		w.flushRows = flushRows
		st, err := reports.ComputeTo(ctx, src, fsys, day, end, reports.Options{Workers: 2}, w)
		if err != nil {
			t.Fatal(err)
		}
		if st.RowsOut != want {
			t.Fatalf("ComputeTo handed over %d rows, Compute made %d", st.RowsOut, want)
		}
		if w.written < st.RowsOut/2 {
			t.Fatalf("%d of %d rows inserted before Commit; the writer did not stream", w.written, st.RowsOut)
		}
		if got := fingerprint(""); got != whole {
			t.Fatalf("tables changed before Commit:\n got %s\nwant %s", got, whole)
		}
		return w
	}
	// An abandoned run (the job failed after staging some rows).
	stream(300)
	if fingerprint(StagingSuffix) == empty {
		t.Fatal("the abandoned run staged nothing; the test proves nothing")
	}
	if got := fingerprint(""); got != whole {
		t.Fatalf("tables changed by an abandoned run:\n got %s\nwant %s", got, whole)
	}
	w := stream(300)
	n, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("Commit wrote %d rows, want %d", n, want)
	}
	if got := fingerprint(""); got != whole {
		t.Errorf("streamed run:\n got %s\nwant %s", got, whole)
	}
	if got := fingerprint(StagingSuffix); got != empty {
		t.Errorf("staging after Commit:\n got %s\nwant %s", got, empty)
	}
	if _, err := w.Commit(ctx); err == nil {
		t.Error("a second Commit succeeded")
	}
}

// twoProbeParts inserts two one-row parts into the quoted staging table,
// in partition 20300101, so that OPTIMIZE has something to merge (it
// refuses only then while merges are paused).
func twoProbeParts(t *testing.T, db *chdb.DB, staging string) {
	t.Helper()
	for range 2 {
		if err := db.Exec(context.Background(), "INSERT INTO "+staging+" (timestamp, event_original) SELECT toDateTime('2030-01-01 00:00:00', 'UTC'), 'probe'"); err != nil {
			t.Fatal(err)
		}
	}
}

// probeFS runs probe before every file the load opens.
type probeFS struct {
	storage.FS
	probe func(ctx context.Context) error
}

func (p probeFS) Open(ctx context.Context, name string) (storage.Reader, error) {
	if err := p.probe(ctx); err != nil {
		return nil, err
	}
	return p.FS.Open(ctx, name)
}

// TestLoadEventsPausesStagingMerges checks that a load pauses the staging
// table's merges only while it writes at most maxPausedParts parts, and
// that they run again after it, also after a cancelled load: a staging
// table left without merges would pile up parts until INSERTs fail.
func TestLoadEventsPausesStagingMerges(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	l := New(db, nil)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, recs, src := fixture(t, 8000)
	ds := schemas.DatasetAuth
	table := EventTable(ds)
	staging := chdb.QuoteIdent(table + StagingSuffix)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	noon := day.Add(12 * time.Hour)
	files, err := src.Files(ctx, ds, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The whole day first, so the loads from noon below copy the morning
	// into staging before they pause: OPTIMIZE then has parts to refuse.
	if _, err := l.LoadEvents(ctx, fsys, ds, files, day, day.Add(24*time.Hour), 2); err != nil {
		t.Fatal(err)
	}
	// paused reports whether the staging table's merges are stopped:
	// OPTIMIZE of a table with parts fails with code 236 then.
	paused := func(ctx context.Context) (bool, error) {
		err := db.Exec(ctx, "OPTIMIZE TABLE "+staging+" FINAL")
		var ex *clickhouse.Exception
		switch {
		case err == nil:
			return false, nil
		case errors.As(err, &ex) && ex.Code == 236:
			return true, nil
		}
		return false, err
	}
	// runningAfter checks merges run on a staging table with parts.
	runningAfter := func(t *testing.T) {
		t.Helper()
		twoProbeParts(t, db, staging)
		if p, err := paused(ctx); err != nil || p {
			t.Fatalf("after the load the staging merges are paused=%v (%v), want running", p, err)
		}
		if err := db.Exec(ctx, "ALTER TABLE "+staging+" DROP PARTITION 20300101"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		flushRows int
		// wantPaused: every probe paused; else paused first, running last.
		wantPaused bool
	}{
		{"few parts", 700, true},
		{"more than maxPausedParts", 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.FlushRows, l.SendRows = tc.flushRows, tc.flushRows
			var seen []bool
			pfs := probeFS{FS: fsys, probe: func(ctx context.Context) error {
				p, err := paused(ctx)
				seen = append(seen, p)
				return err
			}}
			st, err := l.LoadEvents(ctx, pfs, ds, files, noon, day.Add(24*time.Hour), 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := inside(recs, ds, noon, day.Add(24*time.Hour)); int(st.RowsWritten) != want {
				t.Fatalf("wrote %d rows, want %d", st.RowsWritten, want)
			}
			if got, want := count(t, db, "SELECT count() FROM "+chdb.QuoteIdent(table)), uint64(inside(recs, ds, day, day.Add(24*time.Hour))); got != want {
				t.Fatalf("table holds %d rows, want the day's %d", got, want)
			}
			if len(seen) < 4 || !seen[0] {
				t.Fatalf("probes %v: want several, the first paused", seen)
			}
			for i := 1; i < len(seen); i++ {
				if seen[i] && !seen[i-1] {
					t.Fatalf("probes %v: merges paused again after they resumed", seen)
				}
			}
			if last := seen[len(seen)-1]; last != tc.wantPaused {
				t.Fatalf("probes %v: last paused=%v, want %v", seen, last, tc.wantPaused)
			}
			runningAfter(t)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		l.FlushRows, l.SendRows = 700, 250
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opens := 0
		pfs := probeFS{FS: fsys, probe: func(context.Context) error {
			if opens++; opens == 3 {
				cancel()
			}
			return lctx.Err()
		}}
		if _, err := l.LoadEvents(lctx, pfs, ds, files, noon, day.Add(24*time.Hour), 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled load returned %v", err)
		}
		runningAfter(t)
		if got, want := count(t, db, "SELECT count() FROM "+chdb.QuoteIdent(table)), uint64(inside(recs, ds, day, day.Add(24*time.Hour))); got != want {
			t.Fatalf("after a cancelled load the table holds %d rows, want the previous %d", got, want)
		}
	})
}

// TestPauseMergesRefusedIsAWarning: a server that refuses SYSTEM STOP
// MERGES (here allow_ddl = 0, which 18.16 applies to SYSTEM statements;
// on current releases a missing SYSTEM MERGES grant) must not fail the
// load: the pause is an optimisation. The refusal is logged, resuming
// does nothing, and the staging table's merges keep running.
func TestPauseMergesRefusedIsAWarning(t *testing.T) {
	db := openDB(t)
	var logged strings.Builder
	l := New(db, slog.New(slog.NewTextHandler(&logged, nil)))
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	staging := EventTable(schemas.DatasetAuth) + StagingSuffix
	refusing := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"allow_ddl": 0}))
	resume, err := l.pauseMerges(refusing, staging)
	if err != nil {
		t.Fatalf("a refused pause failed the load: %v", err)
	}
	if err := resume(); err != nil {
		t.Fatalf("resume after a refused pause: %v", err)
	}
	if !strings.Contains(logged.String(), "cannot pause the staging table's merges") || !strings.Contains(logged.String(), "level=WARN") {
		t.Fatalf("the refusal was not logged as a warning: %q", logged.String())
	}
	twoProbeParts(t, db, chdb.QuoteIdent(staging))
	if err := db.Exec(ctx, "OPTIMIZE TABLE "+chdb.QuoteIdent(staging)+" FINAL"); err != nil {
		t.Fatalf("the staging table's merges do not run after a refused pause: %v", err)
	}
}
