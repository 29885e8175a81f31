// Package catalog loads the named SQL reports (queries/reports/*.sql),
// validates their typed parameters and runs them against ClickHouse.
//
// A report file starts with a header of "-- key: value" lines:
//
//	-- name: auth_failures_by_ip
//	-- title: Authentication failures by source IP
//	-- description: ...
//	-- param: from date default=today-6 -- first day (UTC), inclusive
//	-- param: limit int default=100 min=1 max=100000 -- most rows returned
//	-- columns: source_ip, failures, first_seen, last_seen
//
// and the SQL refers to parameters as {name} (or {name:start} and
// {name:end} for dates). ClickHouse 18.16 has no server-side query
// parameters (the {name:Type} syntax arrived in 19.x), so parameters are
// bound here: each raw value is parsed into its declared type and only the
// parsed value is rendered as a SQL literal (see Param.Parse and literal);
// raw user input never reaches the SQL text.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Querier runs a query; *chdb.DB satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Report is one named report of the catalog.
type Report struct {
	// Name identifies the report (the file name without .sql).
	Name string `json:"name"`
	// Title is a short human title.
	Title string `json:"title"`
	// Description says what it computes and from which table.
	Description string `json:"description"`
	// Params are the typed parameters in declaration order.
	Params []Param `json:"params"`
	// Columns are the result columns, in order.
	Columns []string `json:"columns"`
	// SQL is the query text with {param} placeholders.
	SQL string `json:"-"`
}

// Param returns the report's parameter called name.
func (r *Report) Param(name string) (Param, bool) {
	for _, p := range r.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Catalog is the set of reports, by name.
type Catalog struct {
	reports map[string]*Report
	names   []string
}

// ErrUnknownReport is returned for a name not in the catalog.
var ErrUnknownReport = errors.New("catalog: unknown report")

// Load parses every *.sql file in dir of fsys (e.g. queries.Reports,
// "reports"). Any malformed header, unknown placeholder, duplicate name or
// name differing from its file name is an error: the catalog is code.
func Load(fsys fs.FS, dir string) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: read %s: %w", dir, err)
	}
	c := &Catalog{reports: map[string]*Report{}}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("catalog: read %s: %w", e.Name(), err)
		}
		r, err := Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", e.Name(), err)
		}
		if r.Name+".sql" != e.Name() {
			return nil, fmt.Errorf("catalog: %s declares name %q; the file must be %s.sql", e.Name(), r.Name, r.Name)
		}
		if _, dup := c.reports[r.Name]; dup {
			return nil, fmt.Errorf("catalog: report %q defined twice", r.Name)
		}
		c.reports[r.Name] = r
		c.names = append(c.names, r.Name)
	}
	if len(c.names) == 0 {
		return nil, fmt.Errorf("catalog: no reports in %s", dir)
	}
	sort.Strings(c.names)
	return c, nil
}

// Reports returns every report, sorted by name.
func (c *Catalog) Reports() []*Report {
	out := make([]*Report, len(c.names))
	for i, n := range c.names {
		out[i] = c.reports[n]
	}
	return out
}

// Lookup returns the report called name.
func (c *Catalog) Lookup(name string) (*Report, bool) {
	r, ok := c.reports[name]
	return r, ok
}

var (
	nameRE        = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	placeholderRE = regexp.MustCompile(`\{([a-z][a-z0-9_]*)(?::([a-z]+))?\}`)
)

// Parse parses one report file.
func Parse(text string) (*Report, error) {
	r := &Report{}
	lines := strings.Split(text, "\n")
	i := 0
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "--") {
			break
		}
		key, val, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "--")), ":")
		if !ok {
			return nil, fmt.Errorf("header line %d: want '-- key: value', got %q", i+1, l)
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "name":
			r.Name = val
		case "title":
			r.Title = val
		case "description":
			r.Description = val
		case "param":
			p, err := parseParam(val)
			if err != nil {
				return nil, fmt.Errorf("header line %d: %w", i+1, err)
			}
			if _, dup := r.Param(p.Name); dup {
				return nil, fmt.Errorf("header line %d: parameter %q declared twice", i+1, p.Name)
			}
			r.Params = append(r.Params, p)
		case "columns":
			for _, c := range strings.Split(val, ",") {
				if c = strings.TrimSpace(c); c != "" {
					r.Columns = append(r.Columns, c)
				}
			}
		default:
			return nil, fmt.Errorf("header line %d: unknown key %q", i+1, key)
		}
	}
	r.SQL = strings.TrimSpace(strings.Join(lines[i:], "\n"))
	switch {
	case !nameRE.MatchString(r.Name):
		return nil, fmt.Errorf("name %q: want lower-case letters, digits and _", r.Name)
	case r.Title == "" || r.Description == "":
		return nil, fmt.Errorf("report %s: title and description are required", r.Name)
	case len(r.Columns) == 0:
		return nil, fmt.Errorf("report %s: columns are required", r.Name)
	case r.SQL == "":
		return nil, fmt.Errorf("report %s: no SQL after the header", r.Name)
	case strings.Contains(r.SQL, ";"):
		return nil, fmt.Errorf("report %s: one statement only, without ';'", r.Name)
	}
	used := map[string]bool{}
	for _, m := range placeholderRE.FindAllStringSubmatch(r.SQL, -1) {
		p, ok := r.Param(m[1])
		if !ok {
			return nil, fmt.Errorf("report %s: placeholder %s names no declared parameter", r.Name, m[0])
		}
		if m[2] != "" && (p.Type != TypeDate || (m[2] != "start" && m[2] != "end")) {
			return nil, fmt.Errorf("report %s: placeholder %s: only date parameters take :start or :end", r.Name, m[0])
		}
		used[m[1]] = true
	}
	for _, p := range r.Params {
		if !used[p.Name] {
			return nil, fmt.Errorf("report %s: parameter %q is never used", r.Name, p.Name)
		}
	}
	return r, nil
}

// Bind validates raw parameter values (missing ones take their defaults,
// relative dates resolved against now) and returns the SQL with every
// placeholder replaced by a literal of the parsed value, plus the values
// used. Unknown parameters and invalid values are a *ParamError.
func (r *Report) Bind(raw map[string]string, now time.Time) (string, map[string]string, error) {
	for k := range raw {
		if _, ok := r.Param(k); !ok {
			return "", nil, &ParamError{Report: r.Name, Param: k, Reason: "unknown parameter; this report takes " + r.paramNames()}
		}
	}
	vals := map[string]Value{}
	used := map[string]string{}
	for _, p := range r.Params {
		s, given := raw[p.Name]
		if !given || s == "" {
			if !p.HasDefault {
				return "", nil, &ParamError{Report: r.Name, Param: p.Name, Reason: "required"}
			}
			s = p.Default
		}
		v, err := p.Parse(s, now)
		if err != nil {
			return "", nil, &ParamError{Report: r.Name, Param: p.Name, Reason: err.Error()}
		}
		vals[p.Name] = v
		used[p.Name] = v.String()
	}
	if f, ok := vals["from"]; ok && f.typ == TypeDate {
		if t, ok := vals["to"]; ok && t.typ == TypeDate && t.date.Before(f.date) {
			return "", nil, &ParamError{Report: r.Name, Param: "to", Reason: fmt.Sprintf("%s is before from %s", t, f)}
		}
	}
	sql := placeholderRE.ReplaceAllStringFunc(r.SQL, func(m string) string {
		sub := placeholderRE.FindStringSubmatch(m)
		return vals[sub[1]].literal(sub[2])
	})
	return sql, used, nil
}

func (r *Report) paramNames() string {
	if len(r.Params) == 0 {
		return "no parameters"
	}
	var n []string
	for _, p := range r.Params {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// ParamError is a bad or unknown parameter: the caller's mistake (HTTP 400,
// exit code 2).
type ParamError struct {
	Report, Param, Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("report %s: parameter %s: %s", e.Report, e.Param, e.Reason)
}

// RunOptions tune Run.
type RunOptions struct {
	// Now resolves relative date defaults (time.Now when zero).
	Now time.Time
	// MaxRows fails the run when the result has more rows (0: no cap).
	MaxRows int
}

// ErrTooManyRows means a result exceeded RunOptions.MaxRows.
var ErrTooManyRows = errors.New("catalog: too many rows")

// Run binds raw parameters to report name and runs it through q.
func (c *Catalog) Run(ctx context.Context, q Querier, name string, raw map[string]string, o RunOptions) (*Result, error) {
	r, ok := c.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownReport, name)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	sql, used, err := r.Bind(raw, now)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("catalog: report %s: %w", name, err)
	}
	defer rows.Close()
	res, err := scan(rows, o.MaxRows)
	if err != nil {
		return nil, fmt.Errorf("catalog: report %s: %w", name, err)
	}
	if strings.Join(res.Columns, ",") != strings.Join(r.Columns, ",") {
		return nil, fmt.Errorf("catalog: report %s returned columns %v, its header declares %v", name, res.Columns, r.Columns)
	}
	res.Report, res.Params = name, used
	return res, nil
}

// QuoteString renders s as a ClickHouse string literal. Backslash and the
// single quote are the only characters with meaning inside '...'; both are
// escaped, so the literal always ends where it should.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// itoa formats an int64 for SQL.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
