// Package chdb is lambdalog's ClickHouse client plumbing on clickhouse-go/v2:
// connecting from a DSN, knowing what the server version supports, versioned
// migrations, and batch inserts with explicit column lists.
//
// Every statement lambdalog sends runs on ClickHouse 18.16 (Debian's package)
// and on current releases: no DateTime64, no Parquet format, INSERTs name
// their columns, and LowCardinality only with its 18.16 setting.
package chdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DB is a connection pool to one ClickHouse server or cluster endpoint.
type DB struct {
	driver.Conn
	database string
	version  Version
}

// Version is a server version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// Open connects to the DSN (clickhouse://user:pass@host:port/db), creating
// the database when it does not exist, and reads the server version.
func Open(ctx context.Context, dsn string) (*DB, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("chdb: parse DSN: %w", err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "default"
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("chdb: parse DSN: %w", err)
	}
	// Connect to "default" first: the target database may not exist yet.
	opts.Auth.Database = "default"
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	opts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("chdb: open %s: %w", u.Host, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("chdb: ping %s: %w", u.Host, err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		conn.Close()
		return nil, fmt.Errorf("chdb: version: %w", err)
	}
	ver, err := parseVersion(v)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if db != "default" {
		if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+QuoteIdent(db)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("chdb: create database %s: %w", db, err)
		}
		conn.Close()
		opts.Auth.Database = db
		if conn, err = clickhouse.Open(opts); err != nil {
			return nil, fmt.Errorf("chdb: open %s/%s: %w", u.Host, db, err)
		}
	}
	return &DB{Conn: conn, database: db, version: ver}, nil
}

// Database is the database this DB uses.
func (db *DB) Database() string { return db.database }

// Version is the server's version.
func (db *DB) Version() Version { return db.version }

// LowCardinalitySettings returns the query settings that allow
// LowCardinality columns on this server (18.x needs an experimental flag;
// 19.x and later need none).
func (db *DB) LowCardinalitySettings() clickhouse.Settings {
	if db.version.AtLeast(19, 0) {
		return nil
	}
	return clickhouse.Settings{"allow_experimental_low_cardinality_type": 1}
}

func parseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 4)
	var v Version
	var err error
	if len(parts) < 2 {
		return v, fmt.Errorf("chdb: unexpected server version %q", s)
	}
	if v.Major, err = strconv.Atoi(parts[0]); err != nil {
		return v, fmt.Errorf("chdb: unexpected server version %q", s)
	}
	if v.Minor, err = strconv.Atoi(parts[1]); err != nil {
		return v, fmt.Errorf("chdb: unexpected server version %q", s)
	}
	if len(parts) > 2 {
		v.Patch, _ = strconv.Atoi(parts[2])
	}
	return v, nil
}

// QuoteIdent quotes an identifier with backquotes.
func QuoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

// Migration is one versioned schema change. SQL may hold several statements
// separated by ";\n" lines, run once, in order. Data goes in with
// INSERT ... SELECT, never INSERT ... VALUES (see Insert).
type Migration struct {
	Version int
	Name    string
	SQL     string
}

func (m Migration) checksum() string {
	sum := sha256.Sum256([]byte(m.SQL))
	return hex.EncodeToString(sum[:8])
}

// ErrChecksum means an applied migration's text has changed since.
var ErrChecksum = errors.New("chdb: applied migration changed")

// Migrate applies the migrations not yet recorded in table (e.g.
// "schema_migrations") in version order and records each. A recorded
// migration whose SQL has changed is an error naming it: applied DDL is
// history, and changes need a new migration.
func Migrate(ctx context.Context, db *DB, table string, migrations []Migration) (applied int, err error) {
	t := QuoteIdent(table)
	if err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t+` (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime
) ENGINE = MergeTree ORDER BY version`); err != nil {
		return 0, fmt.Errorf("chdb: create %s: %w", table, err)
	}
	rows, err := db.Query(ctx, "SELECT version, name, checksum FROM "+t)
	if err != nil {
		return 0, fmt.Errorf("chdb: read %s: %w", table, err)
	}
	done := map[int]string{}
	for rows.Next() {
		var v uint32
		var name, sum string
		if err := rows.Scan(&v, &name, &sum); err != nil {
			rows.Close()
			return 0, fmt.Errorf("chdb: read %s: %w", table, err)
		}
		done[int(v)] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("chdb: read %s: %w", table, err)
	}
	seen := map[int]bool{}
	for i, m := range migrations {
		if seen[m.Version] {
			return applied, fmt.Errorf("chdb: migration version %d appears twice", m.Version)
		}
		seen[m.Version] = true
		if i > 0 && m.Version <= migrations[i-1].Version {
			return applied, fmt.Errorf("chdb: migrations out of order at version %d", m.Version)
		}
		if sum, ok := done[m.Version]; ok {
			if sum != m.checksum() {
				return applied, fmt.Errorf("%w: %d %q (applied checksum %s, now %s); add a new migration instead", ErrChecksum, m.Version, m.Name, sum, m.checksum())
			}
			continue
		}
		for _, stmt := range splitStatements(m.SQL) {
			if isInsertValues(stmt) {
				return applied, fmt.Errorf("chdb: migration %d %q: INSERT ... VALUES hangs on the native protocol of ClickHouse 18.16; use INSERT ... SELECT", m.Version, m.Name)
			}
			if err := db.Exec(clickhouse.Context(ctx, clickhouse.WithSettings(db.LowCardinalitySettings())), stmt); err != nil {
				return applied, fmt.Errorf("chdb: migration %d %q: %w", m.Version, m.Name, err)
			}
		}
		if err := Insert(ctx, db, "INSERT INTO "+t+" (version, name, checksum, applied_at)",
			[]any{uint32(m.Version), m.Name, m.checksum(), time.Now().UTC()}); err != nil {
			return applied, fmt.Errorf("chdb: record migration %d: %w", m.Version, err)
		}
		applied++
	}
	return applied, nil
}

func isInsertValues(stmt string) bool {
	u := strings.ToUpper(stmt)
	return strings.HasPrefix(strings.TrimSpace(u), "INSERT") && strings.Contains(u, " VALUES")
}

func splitStatements(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";\n") {
		if s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Insert sends rows as one native-protocol batch. The statement must name
// its columns ("INSERT INTO t (a, b)") and carry no VALUES: 18.16 waits for
// data blocks after an INSERT on the native protocol, so inline VALUES with
// bound parameters would hang.
func Insert(ctx context.Context, db *DB, insert string, rows ...[]any) error {
	batch, err := db.PrepareBatch(ctx, insert)
	if err != nil {
		return fmt.Errorf("chdb: prepare %q: %w", insert, err)
	}
	for _, r := range rows {
		if err := batch.Append(r...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("chdb: append: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("chdb: send %q: %w", insert, err)
	}
	return nil
}
