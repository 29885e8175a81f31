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
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DB is a connection pool to one ClickHouse server or cluster endpoint.
//
// It is a driver.Conn whose Exec and PrepareBatch guard against the two
// statement shapes that break on ClickHouse 18.16 (see Exec).
type DB struct {
	driver.Conn
	database    string
	version     Version
	compression clickhouse.CompressionMethod
}

// DefaultCompression is the block compression of a DSN that does not set
// compress: none when every host is a loopback address (localhost,
// 127.0.0.0/8, ::1), LZ4 otherwise. Over loopback there is no bandwidth
// to save, and LZ4 costs both ends CPU for every block: on the 2-core
// benchmark machine it made load-events about 12% slower
// (docs/benchmarks.md, "load-events: sorted inserts"). Between machines
// LZ4 makes the stream 3-4x smaller for little CPU.
func DefaultCompression(addrs []string) clickhouse.CompressionMethod {
	if len(addrs) == 0 {
		return clickhouse.CompressionLZ4
	}
	for _, a := range addrs {
		host := a
		if h, _, err := net.SplitHostPort(a); err == nil {
			host = h
		}
		if strings.EqualFold(host, "localhost") {
			continue
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			return clickhouse.CompressionLZ4
		}
	}
	return clickhouse.CompressionNone
}

// Compression is the block compression the connections use.
func (db *DB) Compression() clickhouse.CompressionMethod { return db.compression }

// Version is a server version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// Feature is a server capability that DDL or queries may depend on.
type Feature int

const (
	// FeatureLowCardinality is LowCardinality(T) without the experimental
	// setting; before 19.3 it needs allow_experimental_low_cardinality_type
	// (LowCardinalitySettings adds it).
	FeatureLowCardinality Feature = iota + 1
	// FeatureTTL is column and table TTL expressions (19.6).
	FeatureTTL
	// FeatureDateTime64 is the DateTime64 type (20.1).
	FeatureDateTime64
)

// minVersion is the first release with each feature.
var minVersion = map[Feature]Version{
	FeatureLowCardinality: {19, 3, 0},
	FeatureTTL:            {19, 6, 0},
	FeatureDateTime64:     {20, 1, 0},
}

// Supports reports whether the server has feature f. Unknown features are
// unsupported.
func (v Version) Supports(f Feature) bool {
	m, ok := minVersion[f]
	return ok && v.AtLeast(m.Major, m.Minor)
}

// Option tunes Open.
type Option func(*clickhouse.Options)

// WithSettings adds server settings sent with every query.
func WithSettings(s clickhouse.Settings) Option {
	return func(o *clickhouse.Options) {
		if o.Settings == nil {
			o.Settings = clickhouse.Settings{}
		}
		for k, v := range s {
			o.Settings[k] = v
		}
	}
}

// WithReadTimeout bounds the wait for each read from the server (default
// 5 minutes; a long INSERT ... SELECT sends nothing until it ends).
func WithReadTimeout(d time.Duration) Option {
	return func(o *clickhouse.Options) { o.ReadTimeout = d }
}

// WithMaxOpenConns caps the pool (default 10). Each parallel batch holds
// one connection until Send.
func WithMaxOpenConns(n int) Option {
	return func(o *clickhouse.Options) {
		o.MaxOpenConns = n
		if o.MaxIdleConns > n {
			o.MaxIdleConns = n
		}
	}
}

// Open connects to the DSN (clickhouse://user:pass@host:port/db), creating
// the database when it does not exist, and reads the server version once.
// It uses the native protocol with a 10 s dial timeout and a 5 min read
// timeout; opts override. Blocks are LZ4-compressed unless the DSN sets
// compress or every host is a loopback address (see DefaultCompression).
//
// The native protocol is the only one that works with 18.16: clickhouse-go's
// HTTP protocol sends the setting client_protocol_version, which 18.16
// rejects ("Unknown setting").
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("chdb: parse DSN: %w", err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "default"
	}
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("chdb: parse DSN: %w", err)
	}
	if o.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("chdb: DSN %s: only the native protocol (clickhouse://) is supported", u.Redacted())
	}
	// Connect to "default" first: the target database may not exist yet.
	o.Auth.Database = "default"
	if o.DialTimeout == 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Minute
	}
	if o.Compression == nil {
		o.Compression = &clickhouse.Compression{Method: DefaultCompression(o.Addr)}
	}
	for _, opt := range opts {
		opt(o)
	}
	conn, err := clickhouse.Open(o)
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
		return nil, fmt.Errorf("chdb: version of %s: %w", u.Host, err)
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
		o.Auth.Database = db
		if conn, err = clickhouse.Open(o); err != nil {
			return nil, fmt.Errorf("chdb: open %s/%s: %w", u.Host, db, err)
		}
	}
	method := clickhouse.CompressionNone
	if o.Compression != nil {
		method = o.Compression.Method
	}
	return &DB{Conn: conn, database: db, version: ver, compression: method}, nil
}

// ErrInsertData means Exec was given an INSERT that carries its data in the
// statement (VALUES or FORMAT) or expects data blocks.
var ErrInsertData = errors.New("chdb: INSERT with inline data (VALUES/FORMAT) hangs on ClickHouse 18.16's native protocol; use Insert or PrepareBatch, or INSERT ... SELECT")

// Exec runs a statement that returns no rows. It refuses INSERTs carrying
// VALUES or FORMAT data on every server version: 18.16 answers such an
// INSERT on the native protocol by waiting for data blocks the driver never
// sends, so the call would hang until its deadline and leave the
// connection busy; refusing everywhere keeps code tested on a current
// server from hanging on 18.16.
func (db *DB) Exec(ctx context.Context, query string, args ...any) error {
	if k := insertKind(query); k == insertData || k == insertBare {
		return fmt.Errorf("%w: %s", ErrInsertData, abbrev(query))
	}
	return db.Conn.Exec(ctx, query, args...)
}

// PrepareBatch starts a column-wise batch insert. The statement must name
// its columns ("INSERT INTO t (a, b, c)"), so a column added by a later
// migration cannot shift values into the wrong column.
func (db *DB) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if !namesColumns(query) {
		return nil, fmt.Errorf("chdb: prepare %s: name the columns, as in INSERT INTO t (a, b)", abbrev(query))
	}
	b, err := db.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil && brokenConn(err) && ctx.Err() == nil {
		// A pooled connection can break between the driver's health check
		// and its use (seen once in CI: "use of closed network
		// connection" reading the INSERT's header). Nothing has been
		// inserted yet, the server drops an INSERT whose client goes
		// away before sending data, so one more try on a fresh
		// connection is safe.
		b, err = db.Conn.PrepareBatch(ctx, query, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("chdb: prepare %s: %w", abbrev(query), err)
	}
	return b, nil
}

// brokenConn reports whether err is the connection failing rather than
// the server refusing the statement.
func brokenConn(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return false
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Database is the database this DB uses.
func (db *DB) Database() string { return db.database }

// Version is the server's version.
func (db *DB) Version() Version { return db.version }

// Supports reports whether the server has feature f.
func (db *DB) Supports(f Feature) bool { return db.version.Supports(f) }

// LowCardinalitySettings returns the query settings that allow
// LowCardinality columns on this server: 18.x needs an experimental flag
// (the type became production-ready in 19.3); later releases need none.
// Pass them with clickhouse.Context(ctx, clickhouse.WithSettings(...)).
func (db *DB) LowCardinalitySettings() clickhouse.Settings {
	if db.Supports(FeatureLowCardinality) {
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
// INSERT ... SELECT, never INSERT ... VALUES (see Exec).
type Migration struct {
	// Version orders migrations; it is the key in the migrations table.
	Version int
	// Name is for people reading the table and errors.
	Name string
	// SQL is checksummed: editing an applied migration is an error.
	SQL string
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
//
// ClickHouse DDL is not transactional, so a migration that fails halfway
// keeps its earlier statements and is not recorded; a re-run starts it from
// the top. Keep migrations to one statement, or make every statement
// re-runnable (IF NOT EXISTS, IF EXISTS). Two processes migrating one
// database at once can both apply a migration: run Migrate from one place.
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
			if k := insertKind(stmt); k == insertData || k == insertBare {
				return applied, fmt.Errorf("chdb: migration %d %q: %w; write INSERT ... SELECT", m.Version, m.Name, ErrInsertData)
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

type insertShape int

const (
	notInsert    insertShape = iota
	insertSelect             // INSERT ... SELECT/WITH: no client data
	insertData               // INSERT ... VALUES/FORMAT: data in the statement
	insertBare               // INSERT INTO t (cols): expects data blocks
)

// insertKind classifies a statement by what follows INSERT INTO table and
// its optional column list. It is a scanner, not a parser: enough to tell
// the shapes apart without being fooled by a column named "values".
func insertKind(stmt string) insertShape {
	sc := scanner{s: stmt}
	if !strings.EqualFold(sc.word(), "INSERT") || !strings.EqualFold(sc.word(), "INTO") {
		return notInsert
	}
	name := sc.word()
	if strings.EqualFold(name, "TABLE") {
		name = sc.word()
	}
	if strings.EqualFold(name, "FUNCTION") {
		sc.word()
		sc.parens()
	}
	sc.parens()
	switch strings.ToUpper(sc.word()) {
	case "":
		return insertBare
	case "VALUES", "FORMAT":
		return insertData
	default:
		return insertSelect
	}
}

// namesColumns reports whether an INSERT names its columns.
func namesColumns(stmt string) bool {
	sc := scanner{s: stmt}
	if !strings.EqualFold(sc.word(), "INSERT") || !strings.EqualFold(sc.word(), "INTO") {
		return false
	}
	if name := sc.word(); strings.EqualFold(name, "TABLE") {
		sc.word()
	}
	return sc.parens()
}

// scanner walks SQL words: identifiers (with dots and backquotes), skipping
// spaces and comments.
type scanner struct {
	s string
	i int
}

func (sc *scanner) space() {
	for sc.i < len(sc.s) {
		switch {
		case strings.ContainsRune(" \t\r\n", rune(sc.s[sc.i])):
			sc.i++
		case strings.HasPrefix(sc.s[sc.i:], "--"):
			if j := strings.IndexByte(sc.s[sc.i:], '\n'); j >= 0 {
				sc.i += j + 1
			} else {
				sc.i = len(sc.s)
			}
		case strings.HasPrefix(sc.s[sc.i:], "/*"):
			if j := strings.Index(sc.s[sc.i+2:], "*/"); j >= 0 {
				sc.i += j + 4
			} else {
				sc.i = len(sc.s)
			}
		default:
			return
		}
	}
}

// word returns the next identifier-like word ("" at a symbol or the end).
func (sc *scanner) word() string {
	sc.space()
	start := sc.i
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '`' || c == '"':
			sc.quoted(c)
		case c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			sc.i++
		default:
			return sc.s[start:sc.i]
		}
	}
	return sc.s[start:]
}

func (sc *scanner) quoted(q byte) {
	for sc.i++; sc.i < len(sc.s); sc.i++ {
		switch sc.s[sc.i] {
		case '\\':
			sc.i++
		case q:
			sc.i++
			return
		}
	}
}

// parens skips one balanced (...) group and reports whether there was one.
func (sc *scanner) parens() bool {
	sc.space()
	if sc.i >= len(sc.s) || sc.s[sc.i] != '(' {
		return false
	}
	depth := 0
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; c {
		case '`', '"', '\'':
			sc.quoted(c)
			continue
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				sc.i++
				return true
			}
		}
		sc.i++
	}
	return true
}

func abbrev(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 120 {
		q = q[:117] + "..."
	}
	return strconv.Quote(q)
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

// Insert sends rows (one []any per row, in column order) as one
// native-protocol batch, for small writes; bulk loads keep a PrepareBatch
// open and Append column values directly. The statement must name its
// columns ("INSERT INTO t (a, b)") and carry no VALUES (see Exec).
func Insert(ctx context.Context, db *DB, insert string, rows ...[]any) error {
	batch, err := db.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for i, r := range rows {
		if err := batch.Append(r...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("chdb: append row %d to %s: %w", i, abbrev(insert), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("chdb: send %s: %w", abbrev(insert), err)
	}
	return nil
}
