package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lambdalog/lambdalog/queries"
)

var now = time.Date(2026, 3, 10, 15, 4, 5, 0, time.UTC)

func mustCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load(queries.Reports, "reports")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEmbeddedCatalog(t *testing.T) {
	c := mustCatalog(t)
	if n := len(c.Reports()); n < 12 {
		t.Fatalf("%d reports, want at least 12", n)
	}
	want := map[string][]string{
		"events_per_day":      {"day", "dataset", "events"},
		"auth_failures_by_ip": {"source_ip", "failures", "first_seen", "last_seen"},
	}
	for name, cols := range want {
		r, ok := c.Lookup(name)
		if !ok {
			t.Fatalf("report %s missing", name)
		}
		if strings.Join(r.Columns, ",") != strings.Join(cols, ",") {
			t.Errorf("%s columns %v, want %v", name, r.Columns, cols)
		}
	}
	var names []string
	for _, p := range mustReport(t, c, "auth_failures_by_ip").Params {
		names = append(names, p.Name+":"+string(p.Type))
	}
	if got := strings.Join(names, ","); got != "from:date,to:date,limit:int" {
		t.Errorf("auth_failures_by_ip params %s", got)
	}
}

func mustReport(t *testing.T, c *Catalog, name string) *Report {
	t.Helper()
	r, ok := c.Lookup(name)
	if !ok {
		t.Fatalf("no report %s", name)
	}
	return r
}

func TestBindRendersTypedLiterals(t *testing.T) {
	r, err := Parse(`-- name: t
-- title: T
-- description: d
-- param: from date default=today-6 -- f
-- param: to date default=today -- t
-- param: limit int default=10 min=1 max=50 -- l
-- param: ip ip -- i
-- param: user string default=root -- u
-- param: ds enum default=auth values=auth|web -- d
-- columns: a
SELECT {from} a, {from:start}, {to:end}, {limit}, {ip}, {user}, {ds}`)
	if err != nil {
		t.Fatal(err)
	}
	sql, used, err := r.Bind(map[string]string{"ip": "::ffff:10.0.0.1", "limit": "50"}, now)
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-04 00:00 UTC = 1772582400; the day after 2026-03-10 = 1773187200.
	want := "SELECT toDate('2026-03-04') a, toDateTime(1772582400), toDateTime(1773187200), 50, '10.0.0.1', 'root', 'auth'"
	if sql != want {
		t.Fatalf("sql\n got %s\nwant %s", sql, want)
	}
	if used["from"] != "2026-03-04" || used["to"] != "2026-03-10" || used["ip"] != "10.0.0.1" {
		t.Errorf("used %v", used)
	}
}

// TestBindRefusesInjection feeds hostile values to every parameter type:
// each is either refused with a ParamError or rendered as one inert
// literal that ClickHouse reads back as exactly the input.
func TestBindRefusesInjection(t *testing.T) {
	r, err := Parse(`-- name: t
-- title: T
-- description: d
-- param: from date default=today -- f
-- param: limit int default=10 min=1 max=50 -- l
-- param: ip ip default=10.0.0.1 -- i
-- param: user string default=root -- u
-- param: ds enum default=auth values=auth|web -- d
-- columns: a
SELECT 1 FROM t WHERE d >= {from} AND n < {limit} AND ip = {ip} AND u = {user} AND ds = {ds}`)
	if err != nil {
		t.Fatal(err)
	}
	refused := []map[string]string{
		{"from": "2026-01-01') OR 1=1 --"},
		{"from": "today-1; DROP TABLE x"},
		{"from": "1969-12-31"},
		{"limit": "10 OR 1=1"},
		{"limit": "0x10"},
		{"limit": "51"},
		{"limit": "-1"},
		{"ip": "10.0.0.1' OR '1'='1"},
		{"ip": "fe80::1%eth0"},
		{"ds": "auth' OR 1=1 --"},
		{"user": "a\nb"},
		{"user": "a\x00b"},
		{"user": "\xff\xfe"},
		{"user": strings.Repeat("a", 257)},
		{"table": "events_auth"},
	}
	for _, raw := range refused {
		_, _, err := r.Bind(raw, now)
		var pe *ParamError
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want a ParamError", raw, err)
		}
	}
	// Quotes and backslashes in a string are escaped, never closing the
	// literal: the rendered WHERE still has exactly its five conditions.
	for _, user := range []string{`x' OR '1'='1`, `x\' OR 1=1 --`, `\`, `''`, `x\\' UNION SELECT 1 --`, "тест' /*"} {
		sql, _, err := r.Bind(map[string]string{"user": user}, now)
		if err != nil {
			t.Fatalf("%q: %v", user, err)
		}
		lit := QuoteString(user)
		if !strings.Contains(sql, "u = "+lit+" AND ds = 'auth'") {
			t.Errorf("%q rendered as %s", user, sql)
		}
		if got := unquote(t, lit); got != user {
			t.Errorf("literal %s reads back as %q, want %q", lit, got, user)
		}
	}
}

// unquote reads a ClickHouse string literal the way the server's lexer does
// (backslash escapes the next character; the first unescaped quote ends
// it) and fails if anything follows the closing quote.
func unquote(t *testing.T, lit string) string {
	t.Helper()
	if len(lit) < 2 || lit[0] != '\'' {
		t.Fatalf("not a literal: %s", lit)
	}
	var b strings.Builder
	for i := 1; i < len(lit); i++ {
		switch lit[i] {
		case '\\':
			i++
			b.WriteByte(lit[i])
		case '\'':
			if i != len(lit)-1 {
				t.Fatalf("literal %s ends early at %d", lit, i)
			}
			return b.String()
		default:
			b.WriteByte(lit[i])
		}
	}
	t.Fatalf("literal %s never ends", lit)
	return ""
}

func TestBindErrors(t *testing.T) {
	c := mustCatalog(t)
	r := mustReport(t, c, "auth_failures_by_ip")
	for raw, want := range map[string]string{
		"from=2026-03-05&to=2026-03-01": "parameter to: 2026-03-01 is before from 2026-03-05",
		"since=2026-03-01":              "parameter since: unknown parameter; this report takes from, to, limit",
		"from=yesterday":                "parameter from: want YYYY-MM-DD, today or today-N",
		"limit=abc":                     "parameter limit: want an integer",
	} {
		m := map[string]string{}
		for _, kv := range strings.Split(raw, "&") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		_, _, err := r.Bind(m, now)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
	ip := mustReport(t, c, "ip_activity")
	if _, _, err := ip.Bind(nil, now); err == nil || !strings.Contains(err.Error(), "parameter ip: required") {
		t.Errorf("ip_activity without ip: %v", err)
	}
}

func TestParseRejectsBadReports(t *testing.T) {
	head := "-- name: r\n-- title: T\n-- description: D\n-- columns: a\n"
	for text, want := range map[string]string{
		head + "SELECT {x}":                                                     "placeholder {x} names no declared parameter",
		head + "-- param: n int -- n\nSELECT 1":                                 `parameter "n" is never used`,
		head + "-- param: n int -- n\nSELECT {n:start}":                         "only date parameters take :start or :end",
		head + "-- param: n float -- n\nSELECT {n}":                             `unknown type "float"`,
		head + "-- param: n int default=x -- n\nSELECT {n}":                     "default: want an integer",
		head + "SELECT 1; DROP TABLE t":                                         "one statement only",
		"-- name: Bad\n-- title: T\n-- description: D\n-- columns: a\nSELECT 1": `name "Bad"`,
		head + "-- param: e enum -- e\nSELECT {e}":                              "an enum needs values",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
	_, err := Load(fstest.MapFS{"r/x.sql": {Data: []byte(head + "SELECT 1")}}, "r")
	if err == nil || !strings.Contains(err.Error(), `declares name "r"`) {
		t.Errorf("file name mismatch: %v", err)
	}
}

func TestWriteFormats(t *testing.T) {
	r := &Result{Report: "x", Params: map[string]string{"from": "2026-01-01"}, Columns: []string{"ip", "n", "ratio"},
		Rows: [][]any{{"10.0.0.1", uint64(3), 0.5}, {"=HYPERLINK(\"x\")", int64(-2), nil}, {"-5", uint64(0), 1.25}}}
	var b bytes.Buffer
	if err := r.Write(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	if want := "ip,n,ratio\n10.0.0.1,3,0.5\n\"'=HYPERLINK(\"\"x\"\")\",-2,\n-5,0,1.25\n"; b.String() != want {
		t.Errorf("csv\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := r.Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Report  string
		Columns []string
		Rows    [][]any
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Report != "x" || len(back.Rows) != 3 || back.Rows[0][1] != 3.0 || back.Rows[1][2] != nil {
		t.Errorf("json %s", b.String())
	}
	b.Reset()
	if err := r.Write(&b, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[0], "ip ") || !strings.Contains(lines[1], "10.0.0.1") || lines[4] != "(3 rows)" {
		t.Errorf("table\n%s", b.String())
	}
	if err := r.Write(&b, "xml"); err == nil {
		t.Error("xml accepted")
	}
}

// TestDocsListEveryReport keeps docs/queries.md in step with the catalog.
func TestDocsListEveryReport(t *testing.T) {
	doc, err := os.ReadFile("../../docs/queries.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mustCatalog(t).Reports() {
		if !strings.Contains(string(doc), "### `"+r.Name+"`") {
			t.Errorf("docs/queries.md has no section for report %s", r.Name)
		}
		for _, p := range r.Params {
			if !strings.Contains(string(doc), "`"+p.Name+"` "+string(p.Type)) {
				t.Errorf("docs/queries.md does not document parameter %s of %s", p.Name, r.Name)
			}
		}
	}
}
