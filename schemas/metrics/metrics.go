// Package metrics holds the one definition of every metric that both the
// speed layer (realtime/) and the batch layer (batch/) compute: dataset,
// filter, key, aggregate and tumbling window. Both layers evaluate the same
// Metric value, so "failed SSH logins per source IP per hour" cannot mean
// one thing in an alert and another in a nightly report.
//
// Row-at-a-time code (the speed layer, tests) uses Match, Key, Value and
// Amount on schemas.Record; columnar code (the batch reports over Arrow)
// reads the declarative Filter, KeyColumn and Of fields and must give the
// same answer, which batch/reports tests against this package.
package metrics

import (
	"fmt"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// Aggregate is how matching records of one key and window are combined.
type Aggregate string

// Aggregates.
const (
	// Count counts matching records.
	Count Aggregate = "count"
	// Distinct counts distinct values of the Of column.
	Distinct Aggregate = "distinct"
	// Sum adds the Of column (an integer column).
	Sum Aggregate = "sum"
)

// Op is a predicate operator.
type Op string

// Predicate operators: Eq, Ne and In compare a column's text
// (schemas.Accessor String), Gte and Lte compare an integer column.
const (
	OpEq  Op = "eq"
	OpNe  Op = "ne"
	OpIn  Op = "in"
	OpGte Op = "gte"
	OpLte Op = "lte"
)

// Predicate is one condition on a column; a metric's filter is the
// conjunction of its predicates.
type Predicate struct {
	Column string
	Op     Op
	// Strings are the values of Eq (one) and In.
	Strings []string
	// Int is the bound of Gte and Lte.
	Int int64
}

// String renders the predicate like a SQL condition, for docs and logs.
func (p Predicate) String() string {
	switch p.Op {
	case OpEq:
		return fmt.Sprintf("%s = %q", p.Column, p.Strings[0])
	case OpNe:
		return fmt.Sprintf("%s != %q", p.Column, p.Strings[0])
	case OpIn:
		return fmt.Sprintf("%s IN %q", p.Column, p.Strings)
	case OpGte:
		return fmt.Sprintf("%s >= %d", p.Column, p.Int)
	case OpLte:
		return fmt.Sprintf("%s <= %d", p.Column, p.Int)
	}
	return fmt.Sprintf("%s ?%s", p.Column, p.Op)
}

// Metric is one shared metric definition.
type Metric struct {
	// Name identifies the metric, e.g. "ssh_failed_logins_per_source_1h".
	Name string
	// Doc says what it measures.
	Doc string
	// Dataset is the dataset it reads.
	Dataset string
	// Filter selects the records that count (all must hold).
	Filter []Predicate
	// KeyColumn is the column the metric is grouped by.
	KeyColumn string
	// Agg is the aggregate.
	Agg Aggregate
	// Of is the column Distinct and Sum read ("" for Count).
	Of string
	// Window is the tumbling window, aligned to the Unix epoch in UTC.
	Window time.Duration

	ds     *schemas.Dataset
	filter []compiled
	key    schemas.Accessor
	of     schemas.Accessor
}

type compiled struct {
	p   Predicate
	acc schemas.Accessor
	set map[string]struct{}
}

// Names of the shared metrics.
const (
	SSHFailedLoginsPerSourceHour = "ssh_failed_logins_per_source_1h"
	DistinctPortsPerSource10m    = "firewall_distinct_denied_ports_per_source_10m"
	Web4xxPerClientHour          = "web_4xx_per_client_1h"
)

// definitions is the source of truth; All compiles fresh copies so callers
// can never change what another caller sees.
func definitions() []Metric {
	return []Metric{
		{
			Name:      SSHFailedLoginsPerSourceHour,
			Doc:       "failed SSH/PAM logins (auth records with event_outcome failure, as the ssh_bruteforce rule counts them) per source IP per hour",
			Dataset:   schemas.DatasetAuth,
			Filter:    []Predicate{{Column: "event_outcome", Op: OpEq, Strings: []string{schemas.OutcomeFailure}}},
			KeyColumn: "source_ip",
			Agg:       Count,
			Window:    time.Hour,
		},
		{
			Name:      DistinctPortsPerSource10m,
			Doc:       "distinct destination ports a source IP was denied or dropped on, per 10 minutes (port-scan breadth, as the port_scan rule measures it)",
			Dataset:   schemas.DatasetFirewall,
			Filter:    []Predicate{{Column: "event_action", Op: OpIn, Strings: []string{"deny", "drop"}}},
			KeyColumn: "source_ip",
			Agg:       Distinct,
			Of:        "destination_port",
			Window:    10 * time.Minute,
		},
		{
			Name:      Web4xxPerClientHour,
			Doc:       "HTTP responses with status 400-499 per client IP per hour",
			Dataset:   schemas.DatasetWeb,
			Filter:    []Predicate{{Column: "http_response_status_code", Op: OpGte, Int: 400}, {Column: "http_response_status_code", Op: OpLte, Int: 499}},
			KeyColumn: "source_ip",
			Agg:       Count,
			Window:    time.Hour,
		},
	}
}

// All returns every shared metric, compiled.
func All() []*Metric {
	defs := definitions()
	out := make([]*Metric, 0, len(defs))
	for i := range defs {
		m, err := Compile(defs[i])
		if err != nil {
			// The definitions above are constant; a bad one is caught by
			// every test run of this package.
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

// Lookup returns the shared metric named name.
func Lookup(name string) (*Metric, bool) {
	for _, m := range All() {
		if m.Name == name {
			return m, true
		}
	}
	return nil, false
}

// Compile checks a definition against the event model and prepares its
// accessors. It is exported so a site-specific metric can be defined the
// same way.
func Compile(def Metric) (*Metric, error) {
	m := def
	m.Filter = append([]Predicate(nil), def.Filter...)
	ds, ok := schemas.Lookup(m.Dataset)
	if !ok {
		return nil, fmt.Errorf("metrics: %s: unknown dataset %q", m.Name, m.Dataset)
	}
	m.ds = ds
	if m.Window <= 0 {
		return nil, fmt.Errorf("metrics: %s: window must be positive", m.Name)
	}
	var err error
	if m.key, err = ds.Accessor(m.KeyColumn); err != nil {
		return nil, fmt.Errorf("metrics: %s: key: %w", m.Name, err)
	}
	switch m.Agg {
	case Count:
		if m.Of != "" {
			return nil, fmt.Errorf("metrics: %s: count takes no column", m.Name)
		}
	case Distinct, Sum:
		if m.of, err = ds.Accessor(m.Of); err != nil {
			return nil, fmt.Errorf("metrics: %s: %s: %w", m.Name, m.Agg, err)
		}
		if m.Agg == Sum && !isInt(m.of.Kind()) {
			return nil, fmt.Errorf("metrics: %s: sum of non-integer column %s", m.Name, m.Of)
		}
	default:
		return nil, fmt.Errorf("metrics: %s: unknown aggregate %q", m.Name, m.Agg)
	}
	for _, p := range m.Filter {
		acc, err := ds.Accessor(p.Column)
		if err != nil {
			return nil, fmt.Errorf("metrics: %s: filter: %w", m.Name, err)
		}
		c := compiled{p: p, acc: acc}
		switch p.Op {
		case OpEq, OpNe:
			if len(p.Strings) != 1 {
				return nil, fmt.Errorf("metrics: %s: %s %s needs one value", m.Name, p.Column, p.Op)
			}
		case OpIn:
			if len(p.Strings) == 0 {
				return nil, fmt.Errorf("metrics: %s: %s in needs values", m.Name, p.Column)
			}
			c.set = map[string]struct{}{}
			for _, s := range p.Strings {
				c.set[s] = struct{}{}
			}
		case OpGte, OpLte:
			if !isInt(acc.Kind()) {
				return nil, fmt.Errorf("metrics: %s: %s %s on non-integer column", m.Name, p.Column, p.Op)
			}
		default:
			return nil, fmt.Errorf("metrics: %s: unknown operator %q", m.Name, p.Op)
		}
		m.filter = append(m.filter, c)
	}
	return &m, nil
}

func isInt(k schemas.Kind) bool {
	return k == schemas.KindInt64 || k == schemas.KindInt32 || k == schemas.KindUint16
}

// Match reports whether r belongs to the metric's dataset and passes its
// filter.
func (m *Metric) Match(r schemas.Record) bool {
	if r == nil || r.Dataset() != m.Dataset {
		return false
	}
	for i := range m.filter {
		c := &m.filter[i]
		switch c.p.Op {
		case OpEq:
			if c.acc.String(r) != c.p.Strings[0] {
				return false
			}
		case OpNe:
			if c.acc.String(r) == c.p.Strings[0] {
				return false
			}
		case OpIn:
			if _, ok := c.set[c.acc.String(r)]; !ok {
				return false
			}
		case OpGte:
			if v, ok := c.acc.Int64(r); !ok || v < c.p.Int {
				return false
			}
		case OpLte:
			if v, ok := c.acc.Int64(r); !ok || v > c.p.Int {
				return false
			}
		}
	}
	return true
}

// Key is the group key of r (the KeyColumn as text).
func (m *Metric) Key(r schemas.Record) string { return m.key.String(r) }

// Value is the text of the Of column (what Distinct counts); "" for Count.
func (m *Metric) Value(r schemas.Record) string {
	if m.Agg == Count {
		return ""
	}
	return m.of.String(r)
}

// Amount is what r adds to a Count (1) or Sum (the Of column) aggregate.
func (m *Metric) Amount(r schemas.Record) int64 {
	if m.Agg == Sum {
		v, _ := m.of.Int64(r)
		return v
	}
	return 1
}

// WindowStart is the start of the tumbling window holding t.
func (m *Metric) WindowStart(t time.Time) time.Time { return t.UTC().Truncate(m.Window) }

// Columns are the columns the metric reads (filter, key, Of), without
// duplicates, for column projection.
func (m *Metric) Columns() []string {
	seen := map[string]bool{"timestamp": true}
	out := []string{"timestamp"}
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, p := range m.Filter {
		add(p.Column)
	}
	add(m.KeyColumn)
	add(m.Of)
	return out
}

// Cell is one aggregated value: metric, window start, key.
type Cell struct {
	Window time.Time
	Key    string
}

// Reference computes the metric over records row by row, the plain way:
// the oracle both layers are tested against. Distinct values are counted
// exactly.
func (m *Metric) Reference(records []schemas.Record) map[Cell]int64 {
	out := map[Cell]int64{}
	distinct := map[Cell]map[string]struct{}{}
	for _, r := range records {
		if !m.Match(r) {
			continue
		}
		c := Cell{Window: m.WindowStart(r.EventTime()), Key: m.Key(r)}
		if m.Agg == Distinct {
			set := distinct[c]
			if set == nil {
				set = map[string]struct{}{}
				distinct[c] = set
			}
			set[m.Value(r)] = struct{}{}
			out[c] = int64(len(set))
			continue
		}
		out[c] += m.Amount(r)
	}
	return out
}
