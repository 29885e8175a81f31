package chdb

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/internal/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// TestInsertAndReadBack is the platform's ClickHouse acceptance test: a
// private server starts, a table is created, rows go in through
// clickhouse-go/v2 batch inserts with named columns and come back exactly,
// and after Stop no server process is left.
func TestInsertAndReadBack(t *testing.T) {
	srv := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, srv.DSN("acceptance"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec(ctx, `CREATE TABLE events (
		ts DateTime('UTC'), ts_ms UInt16, source_ip String, port Int32, bytes Int64, tags Array(String)
	) ENGINE = MergeTree ORDER BY (source_ip, ts)`); err != nil {
		t.Fatal(err)
	}
	type row struct {
		ts    time.Time
		ms    uint16
		ip    string
		port  int32
		bytes int64
		tags  []string
	}
	base := time.Date(2026, 3, 29, 1, 59, 59, 0, time.UTC)
	var want []row
	for i := 0; i < 1000; i++ {
		want = append(want, row{base.Add(time.Duration(i) * time.Second), uint16(i % 1000), "198.18.0." + string(rune('0'+i%10)), int32(i), int64(i) << 33, []string{"a", "b"}[:i%3%2+1]})
	}
	batch, err := db.PrepareBatch(ctx, "INSERT INTO events (ts, ts_ms, source_ip, port, bytes, tags)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.ts, r.ms, r.ip, r.port, r.bytes, r.tags); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, "SELECT ts, ts_ms, source_ip, port, bytes, tags FROM events ORDER BY port")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ts, &r.ms, &r.ip, &r.port, &r.bytes, &r.tags); err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if !r.ts.Equal(w.ts) || r.ms != w.ms || r.ip != w.ip || r.port != w.port || r.bytes != w.bytes || len(r.tags) != len(w.tags) || r.tags[0] != w.tags[0] {
			t.Fatalf("row %d = %+v, want %+v", i, r, w)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("read %d rows, want %d", i, len(want))
	}

	db.Close()
	pid := srv.Pid()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("clickhouse pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		if errors.Is(err, chserver.ErrNotInstalled) && os.Getenv("CI") != "true" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	if _, err := srv.Query(ctx, "CREATE DATABASE keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Query(ctx, "CREATE TABLE keep.t (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Query(ctx, "INSERT INTO keep.t (x) VALUES (1), (2), (3)"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	srv2, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop(context.Background())
	got, err := srv2.Query(ctx, "SELECT sum(x) FROM keep.t")
	if err != nil {
		t.Fatal(err)
	}
	if got != "6\n" {
		t.Errorf("after restart sum = %q, want 6", got)
	}
}

func TestMigrations(t *testing.T) {
	srv := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms := []Migration{
		{1, "events", "CREATE TABLE e (x UInt32) ENGINE = MergeTree ORDER BY x"},
		{2, "more", "ALTER TABLE e ADD COLUMN y String DEFAULT 'd';\nINSERT INTO e (x) SELECT 7"},
	}
	n, err := Migrate(ctx, db, "schema_migrations", ms)
	if err != nil || n != 2 {
		t.Fatalf("first run applied %d, err %v", n, err)
	}
	n, err = Migrate(ctx, db, "schema_migrations", ms)
	if err != nil || n != 0 {
		t.Fatalf("second run applied %d, err %v; want a no-op", n, err)
	}
	var y string
	var count uint64
	if err := db.QueryRow(ctx, "SELECT any(y), count() FROM e").Scan(&y, &count); err != nil {
		t.Fatal(err)
	}
	if y != "d" || count != 1 {
		t.Errorf("after migrations: y=%q count=%d (the insert must run once)", y, count)
	}
	ms[1].SQL = "ALTER TABLE e ADD COLUMN z String"
	if _, err := Migrate(ctx, db, "schema_migrations", ms); !errors.Is(err, ErrChecksum) {
		t.Errorf("changed migration: err = %v, want ErrChecksum", err)
	}
}

func TestLowCardinality(t *testing.T) {
	srv := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lctx := clickhouse.Context(ctx, clickhouse.WithSettings(db.LowCardinalitySettings()))
	if err := db.Exec(lctx, "CREATE TABLE lc (action LowCardinality(String)) ENGINE = MergeTree ORDER BY tuple()"); err != nil {
		t.Fatalf("LowCardinality on %s: %v", db.Version(), err)
	}
	if err := Insert(lctx, db, "INSERT INTO lc (action)", []any{"deny"}, []any{"allow"}, []any{"deny"}); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := db.QueryRow(ctx, "SELECT count() FROM lc WHERE action = 'deny'").Scan(&n); err != nil || n != 2 {
		t.Errorf("count = %d, %v", n, err)
	}
}
