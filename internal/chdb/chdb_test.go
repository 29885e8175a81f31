package chdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/lambdalog/lambdalog/internal/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// TestInsertAndReadBack is the platform's ClickHouse acceptance test: a
// private server starts, a table is created, rows go in through
// clickhouse-go/v2 batch inserts with named columns and come back exactly,
// and after Stop no server process is left. It runs with each block
// compression: the default over loopback (none), LZ4 (the default between
// machines) and ZSTD.
func TestInsertAndReadBack(t *testing.T) {
	srv := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range []struct {
		query string
		want  clickhouse.CompressionMethod
	}{
		{"", clickhouse.CompressionNone},
		{"?compress=lz4", clickhouse.CompressionLZ4},
		{"?compress=zstd", clickhouse.CompressionZSTD},
	} {
		t.Run("compress="+c.want.String(), func(t *testing.T) {
			db, err := Open(ctx, srv.DSN("acceptance_"+c.want.String())+c.query)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Compression(); got != c.want {
				t.Fatalf("compression %s, want %s", got, c.want)
			}
			insertAndReadBack(ctx, t, db)
		})
	}
	pid := srv.Pid()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("clickhouse pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
}

func insertAndReadBack(ctx context.Context, t *testing.T, db *DB) {
	if err := db.Exec(ctx, `CREATE TABLE events (
		ts DateTime('UTC'), ts_ms UInt16, source_ip String, port Int32, bytes Int64,
		status UInt8, delta Int8, total UInt64, user Nullable(String), score Nullable(Int32),
		tags Array(String), ports Array(UInt16)
	) ENGINE = MergeTree ORDER BY (source_ip, ts)`); err != nil {
		t.Fatal(err)
	}
	type row struct {
		TS     time.Time
		MS     uint16
		IP     string
		Port   int32
		Bytes  int64
		Status uint8
		Delta  int8
		Total  uint64
		User   *string
		Score  *int32
		Tags   []string
		Ports  []uint16
	}
	// The base instant is an hour with a DST change in most zones: DateTime
	// must round-trip as UTC seconds whatever the machine's zone.
	base := time.Date(2026, 3, 29, 1, 59, 59, 0, time.UTC)
	names := []string{"alice", "", "bob\tq\"uoted", "ünïcode ✓"}
	var want []row
	for i := 0; i < 1000; i++ {
		r := row{
			TS: base.Add(time.Duration(i) * time.Second), MS: uint16(i % 1000),
			IP: fmt.Sprintf("198.18.%d.%d", i/256, i%256), Port: int32(i), Bytes: int64(i) << 33,
			Status: uint8(i), Delta: int8(-128 + i%256), Total: math.MaxUint64 - uint64(i),
			Tags: []string{}, Ports: []uint16{},
		}
		if i%3 != 0 {
			u := names[i%len(names)]
			r.User = &u
		}
		if i%5 != 0 {
			sc := int32(-i * 1000)
			r.Score = &sc
		}
		for j := 0; j < i%4; j++ {
			r.Tags = append(r.Tags, names[(i+j)%len(names)])
			r.Ports = append(r.Ports, uint16(i*7+j))
		}
		want = append(want, r)
	}
	batch, err := db.PrepareBatch(ctx, "INSERT INTO events (ts, ts_ms, source_ip, port, bytes, status, delta, total, user, score, tags, ports)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.TS, r.MS, r.IP, r.Port, r.Bytes, r.Status, r.Delta, r.Total, r.User, r.Score, r.Tags, r.Ports); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, "SELECT ts, ts_ms, source_ip, port, bytes, status, delta, total, user, score, tags, ports FROM events ORDER BY port")
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.TS, &r.MS, &r.IP, &r.Port, &r.Bytes, &r.Status, &r.Delta, &r.Total, &r.User, &r.Score, &r.Tags, &r.Ports); err != nil {
			t.Fatal(err)
		}
		r.TS = r.TS.UTC()
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("row %d:\n got  %s\n want %s", i, show(got[i]), show(want[i]))
		}
	}
	// The server's own aggregates agree, so the values were stored, not
	// just echoed by the driver.
	var nullUsers, sumPorts uint64
	if err := db.QueryRow(ctx, "SELECT countIf(isNull(user)), sum(arraySum(ports)) FROM events").Scan(&nullUsers, &sumPorts); err != nil {
		t.Fatal(err)
	}
	var wantNull, wantSum uint64
	for _, r := range want {
		if r.User == nil {
			wantNull++
		}
		for _, p := range r.Ports {
			wantSum += uint64(p)
		}
	}
	if nullUsers != wantNull || sumPorts != wantSum {
		t.Errorf("server counts %d NULL users and port sum %d, want %d and %d", nullUsers, sumPorts, wantNull, wantSum)
	}
}

func TestDefaultCompression(t *testing.T) {
	for _, c := range []struct {
		addrs []string
		want  clickhouse.CompressionMethod
	}{
		{[]string{"127.0.0.1:9000"}, clickhouse.CompressionNone},
		{[]string{"localhost:9000", "127.0.0.2:9001", "[::1]:9000"}, clickhouse.CompressionNone},
		{[]string{"LOCALHOST"}, clickhouse.CompressionNone},
		{[]string{"127.0.0.1:9000", "clickhouse:9000"}, clickhouse.CompressionLZ4},
		{[]string{"10.0.0.5:9000"}, clickhouse.CompressionLZ4},
		{[]string{"localhost.example.com:9000"}, clickhouse.CompressionLZ4},
		{nil, clickhouse.CompressionLZ4},
	} {
		if got := DefaultCompression(c.addrs); got != c.want {
			t.Errorf("DefaultCompression(%q) = %s, want %s", c.addrs, got, c.want)
		}
	}
}

// show prints a row with pointers dereferenced, for failure messages.
func show(r any) string {
	v := reflect.ValueOf(r)
	var b strings.Builder
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				fmt.Fprintf(&b, "%s=NULL ", v.Type().Field(i).Name)
				continue
			}
			f = f.Elem()
		}
		fmt.Fprintf(&b, "%s=%q ", v.Type().Field(i).Name, fmt.Sprint(f.Interface()))
	}
	return b.String()
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
	rows, err := db.Query(ctx, "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for rows.Next() {
		var v uint32
		var name, sum string
		var at time.Time
		if err := rows.Scan(&v, &name, &sum, &at); err != nil {
			t.Fatal(err)
		}
		if time.Since(at) > time.Hour || time.Until(at) > time.Minute {
			t.Errorf("migration %d applied_at %v is not now", v, at)
		}
		recorded = append(recorded, fmt.Sprintf("%d %s %s", v, name, sum))
	}
	rows.Close()
	if want := []string{"1 events " + ms[0].checksum(), "2 more " + ms[1].checksum()}; !reflect.DeepEqual(recorded, want) {
		t.Errorf("schema_migrations = %q, want %q", recorded, want)
	}

	// A migration added later is applied alone.
	ms = append(ms, Migration{3, "third", "CREATE TABLE IF NOT EXISTS f (x UInt8) ENGINE = MergeTree ORDER BY x"})
	if n, err := Migrate(ctx, db, "schema_migrations", ms); err != nil || n != 1 {
		t.Fatalf("with a new migration: applied %d, err %v; want 1", n, err)
	}

	changed := append([]Migration(nil), ms...)
	changed[1].SQL = "ALTER TABLE e ADD COLUMN z String"
	_, err = Migrate(ctx, db, "schema_migrations", changed)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), `2 "more"`) {
		t.Errorf("changed migration: err = %v, want ErrChecksum naming 2 \"more\"", err)
	}
	var cols uint64
	if err := db.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'e' AND name = 'z'").Scan(&cols); err != nil || cols != 0 {
		t.Errorf("the changed migration ran (%d z columns, %v)", cols, err)
	}

	bad := append(ms[:3:3], Migration{4, "seed", "INSERT INTO e (x) VALUES (1)"})
	if _, err := Migrate(ctx, db, "schema_migrations", bad); !errors.Is(err, ErrInsertData) || !strings.Contains(err.Error(), `4 "seed"`) {
		t.Errorf("INSERT ... VALUES migration: err = %v, want ErrInsertData naming it", err)
	}
	for _, order := range [][]Migration{{ms[1], ms[0]}, {ms[0], ms[0]}} {
		if _, err := Migrate(ctx, db, "schema_migrations", order); err == nil {
			t.Errorf("migrations %d, %d: want an order error", order[0].Version, order[1].Version)
		}
	}
}

// TestLowCardinality checks the settings path: on servers before 19.3 the
// type is refused without the setting and accepted with it.
func TestLowCardinality(t *testing.T) {
	srv := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const ddl = "CREATE TABLE %s (action LowCardinality(String), n UInt32) ENGINE = MergeTree ORDER BY n"
	if !db.Supports(FeatureLowCardinality) {
		if len(db.LowCardinalitySettings()) == 0 {
			t.Fatalf("server %s lacks LowCardinality but no setting is offered", db.Version())
		}
		if err := db.Exec(ctx, fmt.Sprintf(ddl, "plain")); err == nil {
			t.Errorf("server %s accepted LowCardinality without the setting; Supports is wrong", db.Version())
		}
	}
	lctx := clickhouse.Context(ctx, clickhouse.WithSettings(db.LowCardinalitySettings()))
	if err := db.Exec(lctx, fmt.Sprintf(ddl, "lc")); err != nil {
		t.Fatalf("LowCardinality on %s: %v", db.Version(), err)
	}
	if err := Insert(lctx, db, "INSERT INTO lc (action, n)", []any{"deny", uint32(1)}, []any{"allow", uint32(2)}, []any{"deny", uint32(3)}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(lctx, "SELECT action, n FROM lc ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var a string
		var n uint32
		if err := rows.Scan(&a, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(a, n))
	}
	if want := []string{"deny1", "allow2", "deny3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows = %q, want %q", got, want)
	}
	var typ string
	if err := db.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'lc' AND name = 'action'").Scan(&typ); err != nil || typ != "LowCardinality(String)" {
		t.Errorf("column type = %q, %v", typ, err)
	}
}

// TestGuards: statements that would hang on 18.16 fail fast instead, and
// batches must name their columns.
func TestGuards(t *testing.T) {
	srv := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, srv.DSN(chtest.NewDatabase(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec(ctx, "CREATE TABLE g (x UInt32, `values` UInt32) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, q := range []string{"INSERT INTO g (x) VALUES (1)", "insert into g format TSV", "INSERT INTO g (x, `values`)"} {
		if err := db.Exec(ctx, q); !errors.Is(err, ErrInsertData) {
			t.Errorf("Exec(%q) = %v, want ErrInsertData", q, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusals took %v; they must not reach the server", d)
	}
	// A column named "values" in INSERT ... SELECT is not inline data.
	if err := db.Exec(ctx, "INSERT INTO g (x, `values`) SELECT number, number * 2 FROM system.numbers LIMIT 10"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PrepareBatch(ctx, "INSERT INTO g"); err == nil || !strings.Contains(err.Error(), "name the columns") {
		t.Errorf("PrepareBatch without columns: err = %v", err)
	}
	if err := Insert(ctx, db, "INSERT INTO g (x, `values`)", []any{uint32(100), uint32(1)}, []any{uint32(101), uint32(2)}); err != nil {
		t.Fatal(err)
	}
	err = Insert(ctx, db, "INSERT INTO g (x, `values`)", []any{uint32(1), uint32(2)}, []any{"not a number", uint32(2)})
	if err == nil || !strings.Contains(err.Error(), "append row 1") {
		t.Errorf("bad row: err = %v, want one naming row 1", err)
	}
	var n, sum uint64
	if err := db.QueryRow(ctx, "SELECT count(), sum(`values`) FROM g").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 12 || sum != 90+3 {
		t.Errorf("count %d sum %d, want 12 and 93 (the aborted batch must write nothing)", n, sum)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Open(ctx, "http://127.0.0.1:8123/x"); err == nil || !strings.Contains(err.Error(), "native protocol") {
		t.Errorf("HTTP DSN: err = %v", err)
	}
	// A port with nothing listening: a wrapped error naming the host.
	ln := closedPort(t)
	if _, err := Open(ctx, "clickhouse://default:@"+ln+"/x"); err == nil || !strings.Contains(err.Error(), ln) {
		t.Errorf("closed port: err = %v", err)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestInsertKind(t *testing.T) {
	for q, want := range map[string]insertShape{
		"INSERT INTO t (a, b) VALUES (1, 2)":                         insertData,
		"  insert  into db.`t x` (`a`) values":                       insertData,
		"INSERT INTO t FORMAT JSONEachRow {}":                        insertData,
		"INSERT INTO t(a,b)":                                         insertBare,
		"INSERT INTO t":                                              insertBare,
		"INSERT INTO t (a, `values`) SELECT 1, 2":                    insertSelect,
		"INSERT INTO t /* VALUES */ (a) SELECT x FROM s":             insertSelect,
		"INSERT INTO t (a) -- VALUES\nWITH 1 AS x SELECT x":          insertSelect,
		"INSERT INTO TABLE FUNCTION remote('h', d.t) (a) VALUES (1)": insertData,
		"SELECT 'INSERT INTO t VALUES'":                              notInsert,
		"ALTER TABLE t ADD COLUMN `values` UInt8":                    notInsert,
	} {
		if got := insertKind(q); got != want {
			t.Errorf("insertKind(%q) = %d, want %d", q, got, want)
		}
	}
	for q, want := range map[string]bool{
		"INSERT INTO t (a)": true, "insert into `t` ( a )": true, "INSERT INTO t": false,
		"INSERT INTO t VALUES (1)": false, "SELECT (1)": false,
	} {
		if got := namesColumns(q); got != want {
			t.Errorf("namesColumns(%q) = %v, want %v", q, got, want)
		}
	}
}

func TestVersionSupports(t *testing.T) {
	for _, c := range []struct {
		v    string
		f    Feature
		want bool
	}{
		{"18.16.1", FeatureLowCardinality, false},
		{"19.3.4", FeatureLowCardinality, true},
		{"18.16.1", FeatureTTL, false},
		{"19.6.2.11", FeatureTTL, true},
		{"19.17.1", FeatureDateTime64, false},
		{"24.8.4.13", FeatureDateTime64, true},
		{"24.8.4.13", Feature(99), false},
	} {
		v, err := parseVersion(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Supports(c.f); got != c.want {
			t.Errorf("%s supports %d = %v, want %v", c.v, c.f, got, c.want)
		}
	}
	v, err := parseVersion("24.8.4.13")
	if err != nil || v != (Version{24, 8, 4}) || v.String() != "24.8.4" {
		t.Errorf("parseVersion = %v, %v", v, err)
	}
	for _, bad := range []string{"", "x.y", "24"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{"a": "`a`", "we`ird": "`we\\`ird`", `b\s`: "`b\\\\s`"} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
