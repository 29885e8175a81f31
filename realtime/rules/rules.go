// Package rules reads the speed layer's detection rules from YAML and
// compiles their filters, keys and values into accessors over the event
// model, so the engine evaluates them without reflection or allocation.
//
// A rules file is a mapping with a version (1) and a list of rules; see
// docs/realtime.md for the format and default.yaml for the shipped
// detections. Parse reports the first problem with its line.
package rules

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lambdalog/lambdalog/realtime/window"
	"github.com/lambdalog/lambdalog/schemas"
)

// MaxFileBytes is the largest rules file Parse accepts.
const MaxFileBytes = 1 << 20

// MaxRules is the most rules one file may hold.
const MaxRules = 1000

// DefaultSuppress is the suppression period of rules that set none.
const DefaultSuppress = 10 * time.Minute

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the shipped rules file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default parses the shipped rules file.
func Default() (*RuleSet, error) { return Parse(defaultYAML) }

// Kind is a rule kind.
type Kind string

// Rule kinds.
const (
	// Threshold fires when an aggregate over a window per key reaches the
	// threshold.
	Threshold Kind = "threshold"
	// ValueCount fires when the distinct count of a column over a window
	// per key reaches the threshold.
	ValueCount Kind = "value_count"
	// Sequence fires when an event matching step 1 for a key is followed,
	// within a duration, by an event matching step 2 for the same key.
	Sequence Kind = "sequence"
)

// Severity levels, lowest first; the index+1 is the OCSF severity_id.
var severities = []string{"informational", "low", "medium", "high", "critical"}

// SeverityID is the OCSF severity_id of a severity name (1..5), 0 if
// unknown.
func SeverityID(s string) int {
	for i, n := range severities {
		if n == s {
			return i + 1
		}
	}
	return 0
}

// RuleSet is a parsed rules file. It is immutable.
type RuleSet struct {
	Rules []*Rule
}

// Rule is one compiled rule. Fields are read-only after Parse.
type Rule struct {
	ID          string
	Name        string
	Description string
	Kind        Kind
	Severity    string
	// Key names the columns whose values form the grouping key.
	Key []string
	// Threshold and ValueCount.
	Dataset   string
	Where     Filter
	Aggregate window.Op
	// Field is the column summed, min'd, max'd or distinct-counted.
	Field     string
	Window    time.Duration
	Slide     time.Duration
	Threshold float64
	// Sequence.
	Steps  []Step
	Within time.Duration
	// Suppress is the suppression period per key; Resolve asks for a
	// resolve alert when the window falls back under the threshold.
	Suppress time.Duration
	Resolve  bool
	// Line is where the rule starts in its file.
	Line int

	keys  []col
	value col
	state string
}

// Step is one step of a sequence rule.
type Step struct {
	Dataset string
	Where   Filter
	keys    []col
}

// StateKey identifies the part of the definition the window state depends
// on: two rules with the same ID and StateKey can share state across a
// reload, even if their name, severity, threshold or suppression differ.
func (r *Rule) StateKey() string { return r.state }

// ParseError is a rejected rules file: the line, the rule when known and
// the reason.
type ParseError struct {
	Line   int
	Rule   string
	Reason string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("rules: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	b.WriteString(e.Reason)
	return b.String()
}

func errAt(n *yaml.Node, rule, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Line: line, Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// Load reads and parses a rules file of at most MaxFileBytes.
func Load(path string) (*RuleSet, error) { return LoadMax(path, MaxFileBytes) }

// ErrTooLarge is (wrapped in) the error for a rules file over the size
// limit.
var ErrTooLarge = errors.New("rules file over the size limit")

// LoadMax reads and parses a rules file of at most maxBytes (MaxFileBytes
// when maxBytes <= 0). The limit is checked before the file is read, and
// again while reading (the file may grow in between), so an oversized or
// endless file never reaches memory.
func LoadMax(path string, maxBytes int) (*RuleSet, error) {
	if maxBytes <= 0 {
		maxBytes = MaxFileBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rules: open %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > int64(maxBytes) {
		return nil, fmt.Errorf("rules: %s is %d bytes, over the limit of %d: %w", path, fi.Size(), maxBytes, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("rules: read %s: %w", path, err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("rules: %s is more than %d bytes, the limit: %w", path, maxBytes, ErrTooLarge)
	}
	rs, err := ParseMax(data, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// Check parses a rules file and writes a one-line summary per rule to w;
// it is what `lambdalog rules check` runs.
func Check(data []byte, w io.Writer) error {
	rs, err := Parse(data)
	if err != nil {
		return err
	}
	for _, r := range rs.Rules {
		if _, err := fmt.Fprintln(w, r.Summary()); err != nil {
			return fmt.Errorf("rules: write summary: %w", err)
		}
	}
	_, err = fmt.Fprintf(w, "ok: %d rules\n", len(rs.Rules))
	if err != nil {
		return fmt.Errorf("rules: write summary: %w", err)
	}
	return nil
}

// Summary is a one-line description of the rule.
func (r *Rule) Summary() string {
	switch r.Kind {
	case Sequence:
		return fmt.Sprintf("%s (%s, %s): %s[%s] then %s[%s] by %s within %v", r.ID, r.Kind, r.Severity,
			r.Steps[0].Dataset, r.Steps[0].Where, r.Steps[1].Dataset, r.Steps[1].Where, strings.Join(r.Key, ","), r.Within)
	}
	agg := r.Aggregate.String()
	if r.Field != "" {
		agg += "(" + r.Field + ")"
	}
	return fmt.Sprintf("%s (%s, %s): %s[%s] by %s: %s over %v sliding %v >= %v", r.ID, r.Kind, r.Severity,
		r.Dataset, r.Where, strings.Join(r.Key, ","), agg, r.Window, r.Slide, r.Threshold)
}

// Parse reads a rules file of at most MaxFileBytes.
func Parse(data []byte) (*RuleSet, error) { return ParseMax(data, MaxFileBytes) }

// ParseMax reads a rules file of at most maxBytes (MaxFileBytes when
// maxBytes <= 0).
func ParseMax(data []byte, maxBytes int) (*RuleSet, error) {
	if maxBytes <= 0 {
		maxBytes = MaxFileBytes
	}
	if len(data) > maxBytes {
		return nil, &ParseError{Reason: fmt.Sprintf("file is %d bytes, the limit is %d", len(data), maxBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ParseError{Reason: "bad YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &ParseError{Reason: "empty file"}
	}
	root := doc.Content[0]
	var rulesNode *yaml.Node
	version := 0
	if err := eachKey(root, "", func(k string, kn, v *yaml.Node) error {
		switch k {
		case "version":
			n, err := intValue(v, "")
			if err != nil {
				return err
			}
			version = n
		case "rules":
			rulesNode = v
		default:
			return errAt(kn, "", "unknown top-level key %q (want version, rules)", k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if version != 1 {
		return nil, errAt(root, "", "version must be 1")
	}
	if rulesNode == nil || rulesNode.Kind != yaml.SequenceNode {
		return nil, errAt(root, "", "rules: a list of rules is required")
	}
	if len(rulesNode.Content) > MaxRules {
		return nil, errAt(rulesNode, "", "%d rules, the limit is %d", len(rulesNode.Content), MaxRules)
	}
	rs := &RuleSet{}
	seen := map[string]int{}
	for _, rn := range rulesNode.Content {
		r, err := parseRule(rn)
		if err != nil {
			return nil, err
		}
		if l, dup := seen[r.ID]; dup {
			return nil, errAt(rn, r.ID, "duplicate rule id (first at line %d)", l)
		}
		seen[r.ID] = r.Line
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

// Rule returns the rule with the given id.
func (rs *RuleSet) Rule(id string) (*Rule, bool) {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r, true
		}
	}
	return nil, false
}

func eachKey(n *yaml.Node, rule string, fn func(k string, kn, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, rule, "expected a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, v := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return errAt(kn, rule, "keys must be plain strings")
		}
		if v.Kind == yaml.AliasNode {
			return errAt(v, rule, "aliases are not supported")
		}
		if seen[kn.Value] {
			return errAt(kn, rule, "duplicate key %q", kn.Value)
		}
		seen[kn.Value] = true
		if err := fn(kn.Value, kn, v); err != nil {
			return err
		}
	}
	return nil
}

func scalar(v *yaml.Node, rule, what string) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", errAt(v, rule, "%s must be a single value", what)
	}
	return v.Value, nil
}

func intValue(v *yaml.Node, rule string) (int, error) {
	s, err := scalar(v, rule, "value")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errAt(v, rule, "%q is not an integer", s)
	}
	return n, nil
}

func numValue(v *yaml.Node, rule, what string) (float64, error) {
	s, err := scalar(v, rule, what)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errAt(v, rule, "%s %q is not a number", what, s)
	}
	return f, nil
}

func durValue(v *yaml.Node, rule, what string) (time.Duration, error) {
	s, err := scalar(v, rule, what)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errAt(v, rule, "bad duration for %s: %q (want e.g. 60s, 10m)", what, s)
	}
	if d <= 0 {
		return 0, errAt(v, rule, "%s must be positive, got %v", what, d)
	}
	if d%time.Millisecond != 0 {
		return 0, errAt(v, rule, "%s %v is not a whole number of milliseconds", what, d)
	}
	return d, nil
}

func strList(v *yaml.Node, rule, what string) ([]string, error) {
	if v.Kind == yaml.ScalarNode {
		return []string{v.Value}, nil
	}
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, errAt(v, rule, "%s must be a value or a non-empty list", what)
	}
	out := make([]string, 0, len(v.Content))
	for _, c := range v.Content {
		s, err := scalar(c, rule, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

type rawRule struct {
	node                            *yaml.Node
	id, name, desc, kind, sev, ds   string
	field, agg                      string
	key                             []string
	where, steps                    *yaml.Node
	window, slide, within, suppress time.Duration
	threshold                       float64
	hasThreshold, resolve           bool
	lines                           map[string]*yaml.Node
}

func parseRule(n *yaml.Node) (*Rule, error) {
	raw := rawRule{node: n, lines: map[string]*yaml.Node{}}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "", "a rule must be a mapping")
	}
	// Find the id first so that every later error can name the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" && n.Content[i+1].Kind == yaml.ScalarNode {
			raw.id = n.Content[i+1].Value
		}
	}
	id := raw.id
	err := eachKey(n, id, func(k string, kn, v *yaml.Node) error {
		raw.lines[k] = kn
		var err error
		switch k {
		case "id":
			_, err = scalar(v, id, "id")
		case "name":
			raw.name, err = scalar(v, id, "name")
		case "description":
			raw.desc, err = scalar(v, id, "description")
		case "kind":
			raw.kind, err = scalar(v, id, "kind")
		case "severity":
			raw.sev, err = scalar(v, id, "severity")
		case "dataset":
			raw.ds, err = scalar(v, id, "dataset")
		case "field":
			raw.field, err = scalar(v, id, "field")
		case "aggregate":
			raw.agg, err = scalar(v, id, "aggregate")
		case "key":
			raw.key, err = strList(v, id, "key")
		case "where":
			raw.where = v
		case "steps":
			raw.steps = v
		case "window":
			raw.window, err = durValue(v, id, "window")
		case "slide":
			raw.slide, err = durValue(v, id, "slide")
		case "within":
			raw.within, err = durValue(v, id, "within")
		case "suppress":
			raw.suppress, err = durValue(v, id, "suppress")
		case "threshold":
			raw.threshold, err = numValue(v, id, "threshold")
			raw.hasThreshold = true
		case "resolve":
			var s string
			s, err = scalar(v, id, "resolve")
			if err == nil {
				switch s {
				case "true":
					raw.resolve = true
				case "false":
				default:
					err = errAt(v, id, "resolve must be true or false")
				}
			}
		default:
			err = errAt(kn, id, "unknown key %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return raw.compile()
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (raw *rawRule) at(k string) *yaml.Node {
	if n, ok := raw.lines[k]; ok {
		return n
	}
	return raw.node
}

func (raw *rawRule) compile() (*Rule, error) {
	id := raw.id
	if !validID(id) {
		return nil, errAt(raw.at("id"), id, "id is required: 1-64 letters, digits, '_', '-' or '.'")
	}
	r := &Rule{ID: id, Name: raw.name, Description: raw.desc, Kind: Kind(raw.kind), Severity: raw.sev,
		Key: raw.key, Window: raw.window, Slide: raw.slide, Within: raw.within, Suppress: raw.suppress,
		Threshold: raw.threshold, Resolve: raw.resolve, Line: raw.node.Line, Field: raw.field, Dataset: raw.ds}
	if r.Name == "" {
		r.Name = id
	}
	if r.Severity == "" {
		r.Severity = "medium"
	}
	if SeverityID(r.Severity) == 0 {
		return nil, errAt(raw.at("severity"), id, "unknown severity %q (want one of %s)", r.Severity, strings.Join(severities, ", "))
	}
	if r.Suppress == 0 {
		r.Suppress = DefaultSuppress
	}
	switch r.Kind {
	case Threshold, ValueCount, Sequence:
	case "":
		return nil, errAt(raw.node, id, "kind is required (threshold, value_count or sequence)")
	default:
		return nil, errAt(raw.at("kind"), id, "unknown kind %q (want threshold, value_count or sequence)", raw.kind)
	}
	if len(r.Key) == 0 {
		return nil, errAt(raw.at("key"), id, "key is required: the column(s) to group by")
	}
	var b strings.Builder
	switch r.Kind {
	case Threshold, ValueCount:
		for _, k := range []string{"steps", "within"} {
			if _, ok := raw.lines[k]; ok {
				return nil, errAt(raw.at(k), id, "%s is only for sequence rules", k)
			}
		}
		if err := raw.compileWindow(r); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%d|%d", r.Kind, r.Dataset, r.Where, strings.Join(r.Key, ","), r.Aggregate, r.Window, r.Slide)
		b.WriteString("|" + r.Field)
	case Sequence:
		for _, k := range []string{"dataset", "where", "aggregate", "field", "window", "slide", "threshold"} {
			if _, ok := raw.lines[k]; ok {
				return nil, errAt(raw.at(k), id, "%s is not used by sequence rules (put dataset and where in steps)", k)
			}
		}
		if raw.within == 0 {
			return nil, errAt(raw.node, id, "within is required for a sequence rule")
		}
		if raw.steps == nil || raw.steps.Kind != yaml.SequenceNode || len(raw.steps.Content) != 2 {
			return nil, errAt(raw.at("steps"), id, "steps must list exactly two steps")
		}
		for _, sn := range raw.steps.Content {
			st, err := raw.compileStep(sn, r.Key)
			if err != nil {
				return nil, err
			}
			r.Steps = append(r.Steps, st)
		}
		fmt.Fprintf(&b, "%s|%s|%d|%s|%s|%s|%s", r.Kind, strings.Join(r.Key, ","), r.Within,
			r.Steps[0].Dataset, r.Steps[0].Where, r.Steps[1].Dataset, r.Steps[1].Where)
	}
	r.state = b.String()
	return r, nil
}

func lookupDataset(n *yaml.Node, id, name string) (*schemas.Dataset, error) {
	if name == "" {
		return nil, errAt(n, id, "dataset is required")
	}
	d, ok := schemas.Lookup(name)
	if !ok || name == schemas.DatasetQuarantine {
		var names []string
		for _, d := range schemas.Datasets() {
			if d.Name() != schemas.DatasetQuarantine {
				names = append(names, d.Name())
			}
		}
		return nil, errAt(n, id, "unknown dataset %q (want one of %s)", name, strings.Join(names, ", "))
	}
	return d, nil
}

func column(n *yaml.Node, id string, d *schemas.Dataset, col string) (schemas.Accessor, error) {
	a, err := d.Accessor(col)
	if err != nil {
		return schemas.Accessor{}, errAt(n, id, "unknown column %q in dataset %s", col, d.Name())
	}
	return a, nil
}

func keyAccessors(n *yaml.Node, id string, d *schemas.Dataset, key []string) ([]col, error) {
	out := make([]col, len(key))
	for i, k := range key {
		a, err := column(n, id, d, k)
		if err != nil {
			return nil, err
		}
		out[i] = newCol(d, a)
	}
	return out, nil
}

func (raw *rawRule) compileWindow(r *Rule) error {
	id := r.ID
	d, err := lookupDataset(raw.at("dataset"), id, r.Dataset)
	if err != nil {
		return err
	}
	if r.keys, err = keyAccessors(raw.at("key"), id, d, r.Key); err != nil {
		return err
	}
	if raw.where != nil {
		if r.Where, err = compileFilter(raw.where, id, d); err != nil {
			return err
		}
	}
	if !raw.hasThreshold {
		return errAt(raw.node, id, "threshold is missing")
	}
	if r.Threshold <= 0 {
		return errAt(raw.at("threshold"), id, "threshold must be positive, got %v", r.Threshold)
	}
	if r.Window == 0 {
		return errAt(raw.node, id, "window is required (e.g. window: 60s)")
	}
	if r.Slide == 0 {
		r.Slide = r.Window // tumbling
	}
	if r.Slide > r.Window {
		return errAt(raw.at("slide"), id, "slide %v is longer than window %v", r.Slide, r.Window)
	}
	if r.Window > 24*time.Hour {
		return errAt(raw.at("window"), id, "window %v is longer than 24h", r.Window)
	}
	if g := gcd(int64(r.Window), int64(r.Slide)); int64(r.Window)/g > 100_000 {
		return errAt(raw.at("slide"), id, "window %v and slide %v need %d slices per window; the limit is 100000", r.Window, r.Slide, int64(r.Window)/g)
	}
	switch r.Kind {
	case ValueCount:
		if raw.agg != "" && raw.agg != "distinct" {
			return errAt(raw.at("aggregate"), id, "value_count rules count distinct values; drop aggregate %q", raw.agg)
		}
		r.Aggregate = window.Distinct
		if r.Field == "" {
			return errAt(raw.node, id, "field is required: the column whose distinct values are counted")
		}
	case Threshold:
		switch raw.agg {
		case "", "count":
			r.Aggregate = window.Count
			if r.Field != "" {
				return errAt(raw.at("field"), id, "count takes no field")
			}
		case "sum", "min", "max":
			r.Aggregate = map[string]window.Op{"sum": window.Sum, "min": window.Min, "max": window.Max}[raw.agg]
			if r.Field == "" {
				return errAt(raw.node, id, "aggregate %s needs a field", raw.agg)
			}
		case "distinct":
			return errAt(raw.at("aggregate"), id, "distinct counts are value_count rules")
		default:
			return errAt(raw.at("aggregate"), id, "unknown aggregate %q (want count, sum, min or max)", raw.agg)
		}
	}
	if r.Field != "" {
		acc, err := column(raw.at("field"), id, d, r.Field)
		if err != nil {
			return err
		}
		r.value = newCol(d, acc)
		if r.Aggregate != window.Distinct && !numericKind(r.value.kind) {
			return errAt(raw.at("field"), id, "%s of column %s: it is not numeric", raw.agg, r.Field)
		}
	}
	return nil
}

func numericKind(k schemas.Kind) bool {
	switch k {
	case schemas.KindInt64, schemas.KindInt32, schemas.KindUint16, schemas.KindFloat64:
		return true
	}
	return false
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (raw *rawRule) compileStep(n *yaml.Node, key []string) (Step, error) {
	id := raw.id
	var st Step
	var where *yaml.Node
	var dsNode *yaml.Node = n
	err := eachKey(n, id, func(k string, kn, v *yaml.Node) error {
		switch k {
		case "dataset":
			dsNode = v
			s, err := scalar(v, id, "dataset")
			st.Dataset = s
			return err
		case "where":
			where = v
		default:
			return errAt(kn, id, "unknown step key %q (want dataset, where)", k)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	d, err := lookupDataset(dsNode, id, st.Dataset)
	if err != nil {
		return st, err
	}
	if st.keys, err = keyAccessors(dsNode, id, d, key); err != nil {
		return st, err
	}
	if where != nil {
		if st.Where, err = compileFilter(where, id, d); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Datasets returns the datasets the rule reads.
func (r *Rule) Datasets() []string {
	if r.Kind == Sequence {
		out := []string{r.Steps[0].Dataset}
		if r.Steps[1].Dataset != r.Steps[0].Dataset {
			out = append(out, r.Steps[1].Dataset)
		}
		return out
	}
	return []string{r.Dataset}
}

// Columns lists the columns the rule reads (filters, key, field, in
// every step), each once, in first-use order. The service uses it to know
// which columns a forwarded record must carry.
func (r *Rule) Columns() []string {
	var out []string
	add := func(c string) {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	filter := func(f Filter) {
		for i := range f.conds {
			add(f.conds[i].field)
		}
	}
	filter(r.Where)
	for _, k := range r.Key {
		add(k)
	}
	add(r.Field)
	for _, st := range r.Steps {
		filter(st.Where)
	}
	return out
}

// AppendKey appends rec's key to dst: the key columns' values joined by
// 0x1f. ok is false when a key column is empty (the event cannot be
// attributed, e.g. a PAM line without a source address).
func (r *Rule) AppendKey(dst []byte, rec schemas.Record) ([]byte, bool) {
	return appendKey(dst, r.keys, rec)
}

// AppendKey is Rule.AppendKey for a sequence step.
func (s *Step) AppendKey(dst []byte, rec schemas.Record) ([]byte, bool) {
	return appendKey(dst, s.keys, rec)
}

// KeySep separates the values of a multi-column key.
const KeySep = '\x1f'

func appendKey(dst []byte, keys []col, rec schemas.Record) ([]byte, bool) {
	for i := range keys {
		if i > 0 {
			dst = append(dst, KeySep)
		}
		n := len(dst)
		dst = keys[i].appendString(dst, rec)
		if len(dst) == n {
			return dst, false
		}
	}
	return dst, true
}

// Key1 returns rec's key as a string when the key is one string column. For a single string column it is the
// record's own string (no allocation).
func (r *Rule) Key1(rec schemas.Record) (string, bool) {
	if len(r.keys) == 1 && r.keys[0].kind == schemas.KindString {
		s := r.keys[0].str(rec)
		return s, s != ""
	}
	return "", false
}

// Key1 is Rule.Key1 for a sequence step.
func (s *Step) Key1(rec schemas.Record) (string, bool) {
	if len(s.keys) == 1 && s.keys[0].kind == schemas.KindString {
		v := s.keys[0].str(rec)
		return v, v != ""
	}
	return "", false
}

// Value returns the numeric value of the rule's field (0, true for count).
func (r *Rule) Value(rec schemas.Record) (float64, bool) {
	if r.Aggregate == window.Count || r.Aggregate == window.Distinct {
		return 0, true
	}
	return r.value.float64(rec)
}

// Hash returns a 64-bit hash of the field's value for distinct counts; ok
// is false when the value is empty. The hash is fixed across runs, so
// estimates are reproducible.
func (r *Rule) Hash(rec schemas.Record) (uint64, bool) {
	switch r.value.kind {
	case schemas.KindString:
		s := r.value.str(rec)
		if s == "" {
			return 0, false
		}
		return HashString(s), true
	case schemas.KindInt64, schemas.KindInt32, schemas.KindUint16, schemas.KindFloat64:
		v, ok := r.value.int64(rec)
		return mix64(uint64(v)), ok
	}
	var buf [64]byte
	b := r.value.appendString(buf[:0], rec)
	if len(b) == 0 {
		return 0, false
	}
	return HashString(string(b)), true
}

// HashString is FNV-1a followed by a 64-bit finaliser, so that the high
// bits (the HyperLogLog register index) are well mixed.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// Filter is a conjunction of conditions on one dataset's columns.
type Filter struct {
	conds []cond
	ds    string // the dataset the columns were resolved in
}

type condOp uint8

const (
	opEq condOp = iota + 1
	opIn
	opRange
)

type cond struct {
	field string
	acc   col
	op    condOp
	not   bool
	num   bool // compare numerically
	str   string
	strs  []string
	f     float64
	fs    []float64
	lo    float64
	hi    float64
	loInc bool
	hiInc bool
}

// String renders the filter for summaries and state keys.
func (f Filter) String() string {
	var parts []string
	for _, c := range f.conds {
		var s string
		switch c.op {
		case opEq:
			s = fmt.Sprintf("%s = %q", c.field, c.str)
		case opIn:
			s = fmt.Sprintf("%s in (%s)", c.field, strings.Join(c.strs, ", "))
		case opRange:
			s = c.field
			if !math.IsInf(c.lo, -1) {
				s = fmt.Sprintf("%v %s %s", c.lo, map[bool]string{true: "<=", false: "<"}[c.loInc], s)
			}
			if !math.IsInf(c.hi, 1) {
				s = fmt.Sprintf("%s %s %v", s, map[bool]string{true: "<=", false: "<"}[c.hiInc], c.hi)
			}
		}
		if c.not {
			s = "not " + s
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " and ")
}

// Empty reports whether the filter has no condition (it matches every
// record of its dataset).
func (f Filter) Empty() bool { return len(f.conds) == 0 }

// Equal reports whether f and g are the same conditions in the same
// order on the same columns of the same dataset, so that one's result on
// a record is the other's: the engine evaluates such filters once per
// event.
func (f Filter) Equal(g Filter) bool {
	if len(f.conds) != len(g.conds) {
		return false
	}
	if len(f.conds) == 0 {
		return true
	}
	for i := range f.conds {
		a, b := &f.conds[i], &g.conds[i]
		if f.ds != g.ds || a.field != b.field || a.op != b.op || a.not != b.not || a.num != b.num ||
			a.str != b.str || !slices.Equal(a.strs, b.strs) || a.f != b.f || !slices.Equal(a.fs, b.fs) ||
			a.lo != b.lo || a.hi != b.hi || a.loInc != b.loInc || a.hiInc != b.hiInc {
			return false
		}
	}
	return true
}

// Match reports whether rec satisfies every condition. It does not
// allocate for string and integer columns.
func (f Filter) Match(rec schemas.Record) bool {
	for i := range f.conds {
		if f.conds[i].match(rec) == f.conds[i].not {
			return false
		}
	}
	return true
}

func (c *cond) match(rec schemas.Record) bool {
	if c.num {
		v, ok := c.acc.float64(rec)
		if !ok {
			return false
		}
		switch c.op {
		case opEq:
			return v == c.f
		case opIn:
			for _, x := range c.fs {
				if v == x {
					return true
				}
			}
			return false
		}
		if v < c.lo || (v == c.lo && !c.loInc) || v > c.hi || (v == c.hi && !c.hiInc) {
			return false
		}
		return true
	}
	s := c.acc.str(rec)
	switch c.op {
	case opEq:
		return s == c.str
	case opIn:
		for _, x := range c.strs {
			if s == x {
				return true
			}
		}
	}
	return false
}

// compileFilter reads a list of conditions, each a mapping with field and
// one of eq, in, or a range (gt, gte, lt, lte), and optionally not: true.
func compileFilter(n *yaml.Node, id string, d *schemas.Dataset) (Filter, error) {
	f := Filter{ds: d.Name()}
	if n.Kind != yaml.SequenceNode {
		return f, errAt(n, id, "where must be a list of conditions")
	}
	for _, cn := range n.Content {
		c := cond{lo: math.Inf(-1), hi: math.Inf(1)}
		var fieldNode *yaml.Node
		var ops []string
		err := eachKey(cn, id, func(k string, kn, v *yaml.Node) error {
			var err error
			switch k {
			case "field":
				fieldNode = v
				c.field, err = scalar(v, id, "field")
			case "eq":
				ops = append(ops, k)
				c.op = opEq
				c.str, err = scalar(v, id, "eq")
			case "in":
				ops = append(ops, k)
				c.op = opIn
				if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
					return errAt(v, id, "in must be a non-empty list")
				}
				c.strs, err = strList(v, id, "in")
			case "gt", "gte", "lt", "lte":
				if c.op != 0 && c.op != opRange {
					return errAt(kn, id, "a condition has one operator: eq, in or a range")
				}
				c.op = opRange
				var x float64
				x, err = numValue(v, id, k)
				switch k {
				case "gt":
					c.lo, c.loInc = x, false
				case "gte":
					c.lo, c.loInc = x, true
				case "lt":
					c.hi, c.hiInc = x, false
				case "lte":
					c.hi, c.hiInc = x, true
				}
			case "not":
				var s string
				s, err = scalar(v, id, "not")
				if err == nil && s != "true" && s != "false" {
					err = errAt(v, id, "not must be true or false")
				}
				c.not = s == "true"
			default:
				err = errAt(kn, id, "unknown condition key %q (want field, eq, in, gt, gte, lt, lte, not)", k)
			}
			return err
		})
		if err != nil {
			return f, err
		}
		if c.field == "" {
			return f, errAt(cn, id, "condition without field")
		}
		if c.op == 0 || len(ops) > 1 || (c.op == opRange && len(ops) > 0) {
			return f, errAt(cn, id, "condition on %s needs exactly one operator: eq, in or a range (gt/gte/lt/lte)", c.field)
		}
		acc, err := column(fieldNode, id, d, c.field)
		if err != nil {
			return f, err
		}
		c.acc = newCol(d, acc)
		c.num = numericKind(acc.Kind())
		if c.op == opRange && !c.num {
			return f, errAt(cn, id, "range on %s: column is not numeric", c.field)
		}
		if c.op == opRange && (c.lo > c.hi || (c.lo == c.hi && !(c.loInc && c.hiInc))) {
			return f, errAt(cn, id, "empty range on %s", c.field)
		}
		if c.num && c.op == opEq {
			x, err := strconv.ParseFloat(c.str, 64)
			if err != nil {
				return f, errAt(cn, id, "eq on numeric column %s: %q is not a number", c.field, c.str)
			}
			c.f = x
		}
		if c.num && c.op == opIn {
			for _, s := range c.strs {
				x, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return f, errAt(cn, id, "in on numeric column %s: %q is not a number", c.field, s)
				}
				c.fs = append(c.fs, x)
			}
		}
		if c.op == opIn {
			sort.Strings(c.strs)
		}
		f.conds = append(f.conds, c)
	}
	return f, nil
}
