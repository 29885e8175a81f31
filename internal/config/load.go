package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable that overrides a key:
// kafka.sasl.password is LAMBDALOG_KAFKA_SASL_PASSWORD.
const EnvPrefix = "LAMBDALOG_"

// Problem is one thing wrong with a configuration: the key it is about, where
// it came from, what is wrong, and how to fix it.
type Problem struct {
	Key     string // dotted key path, e.g. "kafka.tls.ca_file"
	Source  string // "FILE:LINE", "env LAMBDALOG_X", "flag --x" or "" for defaults
	Message string
	Fix     string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Key)
	if p.Source != "" {
		b.WriteString(" (" + p.Source + ")")
	}
	b.WriteString(": " + p.Message)
	if p.Fix != "" {
		b.WriteString("; fix: " + p.Fix)
	}
	return b.String()
}

// Error is a configuration that cannot be used; it lists every problem found,
// not just the first.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("config: %d problem(s):\n  %s", len(e.Problems), strings.Join(lines, "\n  "))
}

// Loader builds a Config from the defaults, a YAML file, environment
// variables and explicit key=value settings (flags), in that order of
// precedence, and validates the result.
type Loader struct {
	// File is the YAML file to read; empty means defaults only.
	File string
	// Env is the environment as os.Environ returns it; only LAMBDALOG_* is read.
	Env []string
	// Sets are overrides applied last, e.g. from flags; Source names them in problems.
	Sets []Setting
}

// Setting is one explicit override of a key.
type Setting struct {
	Key, Value, Source string
}

// Load builds and validates the configuration. The returned error is an
// *Error listing every problem when the configuration is invalid.
func (l Loader) Load() (*Config, error) {
	cfg := Default()
	var probs []Problem
	lines := map[string]string{}
	if l.File != "" {
		data, err := os.ReadFile(l.File)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", l.File, err)
		}
		probs = append(probs, decodeYAML(data, l.File, cfg, lines)...)
	}
	probs = append(probs, applyEnv(cfg, l.Env)...)
	for _, s := range l.Sets {
		if err := cfg.Set(s.Key, s.Value); err != nil {
			probs = append(probs, Problem{Key: s.Key, Source: s.Source, Message: err.Error(), Fix: fixFor(s.Key)})
		}
	}
	cfg.normalize()
	for _, p := range cfg.Validate() {
		if p.Source == "" {
			p.Source = lines[p.Key]
		}
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		return cfg, &Error{Problems: probs}
	}
	return cfg, nil
}

// Problems returns the problems of err when it is a configuration *Error.
func Problems(err error) []Problem {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Problems
	}
	return nil
}

// decodeYAML walks the document against the Config struct so that every
// unknown key and every wrongly typed value is reported with its path and
// line, instead of stopping at the first one.
func decodeYAML(data []byte, file string, cfg *Config, lines map[string]string) []Problem {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []Problem{{Key: "(file)", Source: file, Message: "not valid YAML: " + err.Error(), Fix: "check indentation and quoting"}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: defaults
	}
	d := decoder{file: file, lines: lines}
	d.value(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	return d.probs
}

type decoder struct {
	file  string
	lines map[string]string
	probs []Problem
}

func (d *decoder) problem(n *yaml.Node, key, msg, fix string) {
	d.probs = append(d.probs, Problem{Key: key, Source: fmt.Sprintf("%s:%d", d.file, n.Line), Message: msg, Fix: fix})
}

var (
	durationType = reflect.TypeOf(Duration(0))
	secretType   = reflect.TypeOf(Secret(""))
)

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if path != "" {
		d.lines[path] = fmt.Sprintf("%s:%d", d.file, n.Line)
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch {
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problem(n, keyOr(path), "expected a mapping of keys, got "+describe(n), "indent the keys of "+keyOr(path)+" under it")
			return
		}
		fields := structFields(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			idx, ok := fields[k.Value]
			if !ok {
				d.problem(k, sub, "unknown key", suggest(k.Value, fields, path))
				continue
			}
			d.value(val, v.Field(idx), sub)
		}
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(n, path, "expected a list, got "+describe(n), "write it as a YAML list, e.g. ["+exampleFor(v.Type().Elem())+"]")
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
	default:
		if n.Kind != yaml.ScalarNode {
			d.problem(n, path, "expected "+kindName(v.Type())+", got "+describe(n), fixFor(path))
			return
		}
		if err := setScalar(v, n.Value); err != nil {
			d.problem(n, path, err.Error(), fixFor(path))
		}
	}
}

// setScalar parses text into a leaf field.
func setScalar(v reflect.Value, text string) error {
	switch {
	case v.Type() == durationType:
		dur, err := time.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("expected a duration like 10s or 5m, got %q", text)
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		v.SetString(text)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", text)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(text), "_", ""), 10, 64)
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", text)
		}
		v.SetInt(i)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(text, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts).Convert(v.Type()))
	default:
		return fmt.Errorf("cannot be set from text")
	}
	return nil
}

// Set overrides one key, given as its dotted path, from text: scalars as
// written, string lists comma-separated, lists of mappings as YAML flow
// (e.g. [{topic: auth, format: sshd}]).
func (c *Config) Set(key, text string) error {
	v, ok := lookup(reflect.ValueOf(c).Elem(), key)
	if !ok {
		return errors.New("unknown key")
	}
	if v.Kind() == reflect.Struct && v.Type() != durationType {
		return errors.New("is a section; set one of its keys")
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) == 0 {
			return fmt.Errorf("expected a YAML list like [%s]", exampleFor(v.Type().Elem()))
		}
		d := decoder{file: "value", lines: map[string]string{}}
		d.value(doc.Content[0], v, key)
		if len(d.probs) > 0 {
			return errors.New(d.probs[0].Message)
		}
		return nil
	}
	return setScalar(v, text)
}

func lookup(v reflect.Value, key string) (reflect.Value, bool) {
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct || v.Type() == durationType {
			return reflect.Value{}, false
		}
		idx, ok := structFields(v.Type())[part]
		if !ok {
			return reflect.Value{}, false
		}
		v = v.Field(idx)
	}
	return v, true
}

// applyEnv applies LAMBDALOG_* variables; an unknown one is a problem, since
// a misspelt override that silently does nothing is worse than an error.
func applyEnv(cfg *Config, env []string) []Problem {
	known := map[string]string{}
	for _, k := range Keys() {
		known[EnvName(k.Path)] = k.Path
	}
	var probs []Problem
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, ok := known[name]
		if !ok {
			if ignoredEnv[name] {
				continue
			}
			fix := "remove it, or use one of the variables listed in docs/configuration.md"
			if best := closest(name, keysOf(known)); best != "" {
				fix = "did you mean " + best + "?"
			}
			probs = append(probs, Problem{Key: name, Source: "env " + name, Message: "unknown environment variable", Fix: fix})
			continue
		}
		if err := cfg.Set(key, val); err != nil {
			probs = append(probs, Problem{Key: key, Source: "env " + name, Message: err.Error(), Fix: fixFor(key)})
		}
	}
	return probs
}

// ignoredEnv are LAMBDALOG_* variables that are not configuration keys.
var ignoredEnv = map[string]bool{
	"LAMBDALOG_CONFIG": true, // the config file path itself
}

// EnvName is the environment variable that overrides a key path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// Key describes one configuration key for documentation and checks.
type Key struct {
	Path    string // dotted path
	Type    string // human-readable type
	Doc     string
	Default string
}

// Keys lists every leaf key of the configuration with its default value.
func Keys() []Key {
	var out []Key
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			p := join(path, name)
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct && fv.Type() != durationType {
				walk(fv, p)
				continue
			}
			out = append(out, Key{Path: p, Type: kindName(f.Type), Doc: f.Tag.Get("doc"), Default: defaultText(fv)})
		}
	}
	walk(reflect.ValueOf(Default()).Elem(), "")
	return out
}

func defaultText(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Type() == secretType:
		return v.Interface().(Secret).String()
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
		b, _ := yaml.Marshal(v.Interface())
		var flow yaml.Node
		_ = yaml.Unmarshal(b, &flow)
		setFlow(&flow)
		out, _ := yaml.Marshal(&flow)
		return strings.TrimSpace(string(out))
	default:
		return fmt.Sprint(v.Interface())
	}
}

func setFlow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		setFlow(c)
	}
}

func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		m[yamlName(t.Field(i))] = i
	}
	return m
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == secretType:
		return "secret string"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice:
		return "list of mappings"
	default:
		return t.Kind().String()
	}
}

func exampleFor(t reflect.Type) string {
	if t.Kind() != reflect.Struct {
		return `"a", "b"`
	}
	var parts []string
	for i := 0; i < t.NumField(); i++ {
		parts = append(parts, yamlName(t.Field(i))+": ...")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func keyOr(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func suggest(key string, fields map[string]int, path string) string {
	names := keysOf(fields)
	if best := closest(key, names); best != "" {
		return fmt.Sprintf("did you mean %q? (valid keys of %s: %s)", best, keyOr(path), strings.Join(names, ", "))
	}
	return fmt.Sprintf("remove it; valid keys of %s: %s", keyOr(path), strings.Join(names, ", "))
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// closest returns the candidate within a small edit distance of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	if len(s) > 12 {
		bestD = 4
	}
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// MarkdownTable renders every key as a Markdown table (path, type, default,
// environment variable, meaning), for docs/configuration.md and `lambdalog
// config keys`.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| key | type | default | environment | meaning |\n|---|---|---|---|---|\n")
	for _, k := range Keys() {
		def := k.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | `%s` | %s |\n", k.Path, k.Type, strings.ReplaceAll(def, "|", "\\|"), EnvName(k.Path), k.Doc)
	}
	return b.String()
}
