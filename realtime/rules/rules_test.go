package rules

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/window"
	"github.com/lambdalog/lambdalog/schemas"
)

func TestDefaultRulesMatchTheSharedTable(t *testing.T) {
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, ds, key, field string
		kind               Kind
		op                 window.Op
		w, s               time.Duration
		th                 float64
	}
	want := []row{
		{"ssh_bruteforce", "auth", "source_ip", "", Threshold, window.Count, 60 * time.Second, time.Second, 5},
		{"password_spraying", "auth", "source_ip", "user_name", ValueCount, window.Distinct, 300 * time.Second, 10 * time.Second, 8},
		{"distributed_bruteforce", "auth", "user_name", "source_ip", ValueCount, window.Distinct, 300 * time.Second, 10 * time.Second, 10},
		{"port_scan", "firewall", "source_ip", "destination_port", ValueCount, window.Distinct, 10 * time.Second, time.Second, 20},
		{"web_scan", "web", "source_ip", "", Threshold, window.Count, 60 * time.Second, time.Second, 50},
		{"traffic_spike", "firewall", "destination_ip", "", Threshold, window.Count, 10 * time.Second, time.Second, 2000},
	}
	if len(rs.Rules) != 7 {
		t.Fatalf("%d default rules, want 7", len(rs.Rules))
	}
	for i, w := range want {
		r := rs.Rules[i]
		got := row{r.ID, r.Dataset, strings.Join(r.Key, ","), r.Field, r.Kind, r.Aggregate, r.Window, r.Slide, r.Threshold}
		if got != w {
			t.Errorf("rule %d: %+v, want %+v", i, got, w)
		}
	}
	seq := rs.Rules[6]
	if seq.ID != "ids_then_login" || seq.Kind != Sequence || seq.Within != 600*time.Second ||
		seq.Steps[0].Dataset != "ids" || seq.Steps[1].Dataset != "auth" || seq.Key[0] != "source_ip" {
		t.Errorf("sequence rule %+v", seq)
	}
	// The embedded file and the one in the repository are the same.
	onDisk, err := os.ReadFile("default.yaml")
	if err != nil || !bytes.Equal(onDisk, DefaultYAML()) {
		t.Errorf("default.yaml differs from the embedded copy (%v)", err)
	}
}

func TestFiltersOnRecords(t *testing.T) {
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	ssh, _ := rs.Rule("ssh_bruteforce")
	scan, _ := rs.Rule("port_scan")
	web, _ := rs.Rule("web_scan")
	seq, _ := rs.Rule("ids_then_login")
	fail := &schemas.Auth{SourceIP: "10.0.0.1", User: "root", Outcome: schemas.OutcomeFailure}
	ok := &schemas.Auth{SourceIP: "10.0.0.1", User: "root", Outcome: schemas.OutcomeSuccess}
	if !ssh.Where.Match(fail) || ssh.Where.Match(ok) {
		t.Error("ssh_bruteforce filter")
	}
	if !seq.Steps[1].Where.Match(ok) || seq.Steps[1].Where.Match(fail) || !seq.Steps[0].Where.Match(&schemas.IDS{}) {
		t.Error("sequence step filters")
	}
	for _, c := range []struct {
		action string
		want   bool
	}{{"deny", true}, {"drop", true}, {"allow", false}, {"reject", false}} {
		if got := scan.Where.Match(&schemas.Firewall{Action: c.action}); got != c.want {
			t.Errorf("port_scan on %s: %v", c.action, got)
		}
	}
	for _, c := range []struct {
		status uint16
		want   bool
	}{{399, false}, {400, true}, {404, true}, {499, true}, {500, false}} {
		if got := web.Where.Match(&schemas.Web{Status: c.status}); got != c.want {
			t.Errorf("web_scan on %d: %v", c.status, got)
		}
	}
	k, okk := ssh.AppendKey(nil, fail)
	if !okk || string(k) != "10.0.0.1" {
		t.Errorf("key %q %v", k, okk)
	}
	if _, okk := ssh.AppendKey(nil, &schemas.Auth{Outcome: "failure"}); okk {
		t.Error("an empty key must not be attributable")
	}
	h1, _ := scan.Hash(&schemas.Firewall{DestinationPort: 22})
	h2, _ := scan.Hash(&schemas.Firewall{DestinationPort: 23})
	if h1 == h2 {
		t.Error("port hashes collide")
	}
	w404 := &schemas.Web{Status: 404}
	if n := testing.AllocsPerRun(100, func() { ssh.Where.Match(fail); web.Where.Match(w404) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func TestNegationRangesAndMultiKey(t *testing.T) {
	rs, err := Parse([]byte(`version: 1
rules:
  - id: big_transfer
    kind: threshold
    dataset: firewall
    where:
      - {field: event_action, eq: allow}
      - {field: destination_port, in: [22, 443], not: true}
      - {field: network_bytes, gt: 1000}
    key: [source_ip, destination_ip]
    aggregate: sum
    field: network_bytes
    window: 1m
    threshold: 1e6
`))
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Rules[0]
	if r.Slide != time.Minute || r.Aggregate != window.Sum {
		t.Fatalf("tumbling sum expected: %+v", r)
	}
	rec := &schemas.Firewall{Action: "allow", DestinationPort: 80, Bytes: 1001, SourceIP: "a", DestinationIP: "b"}
	if !r.Where.Match(rec) {
		t.Error("should match")
	}
	for _, bad := range []*schemas.Firewall{
		{Action: "allow", DestinationPort: 443, Bytes: 5000},
		{Action: "deny", DestinationPort: 80, Bytes: 5000},
		{Action: "allow", DestinationPort: 80, Bytes: 1000},
	} {
		if r.Where.Match(bad) {
			t.Errorf("should not match %+v", bad)
		}
	}
	k, _ := r.AppendKey(nil, rec)
	if string(k) != "a\x1fb" {
		t.Errorf("key %q", k)
	}
	if v, ok := r.Value(rec); !ok || v != 1001 {
		t.Errorf("value %v %v", v, ok)
	}
}

func TestParseErrorsNameLineAndReason(t *testing.T) {
	head := "version: 1\nrules:\n  - id: r1\n"
	cases := []struct {
		name, body string
		line       int
		reason     string
	}{
		{"unknown kind", "    kind: nope\n", 4, `unknown kind "nope"`},
		{"unknown dataset", "    kind: threshold\n    dataset: dns\n    key: source_ip\n", 5, `unknown dataset "dns"`},
		{"unknown column", "    kind: threshold\n    dataset: auth\n    key: src\n", 6, `unknown column "src" in dataset auth`},
		{"bad duration", "    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 60\n", 7, "bad duration for window"},
		{"threshold missing", "    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 60s\n", 3, "threshold is missing"},
		{"unknown key", "    kind: threshold\n    treshold: 5\n", 5, `unknown key "treshold"`},
		{"where column", "    kind: threshold\n    dataset: web\n    key: source_ip\n    where:\n      - {field: status, eq: 404}\n", 8, `unknown column "status"`},
		{"range on string", "    kind: threshold\n    dataset: web\n    key: source_ip\n    where:\n      - {field: url_path, gte: 4}\n", 8, "not numeric"},
		{"two operators", "    kind: threshold\n    dataset: web\n    key: source_ip\n    where:\n      - {field: url_path, eq: a, in: [b]}\n", 8, "exactly one operator"},
		{"slide > window", "    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 1s\n    slide: 2s\n    threshold: 1\n", 8, "longer than window"},
		{"sum of string", "    kind: threshold\n    dataset: auth\n    key: source_ip\n    aggregate: sum\n    field: user_name\n    window: 1s\n    threshold: 1\n", 8, "not numeric"},
		{"sequence steps", "    kind: sequence\n    key: source_ip\n    within: 10m\n    steps:\n      - dataset: ids\n", 7, "exactly two steps"},
		{"sequence with window", "    kind: sequence\n    key: source_ip\n    within: 10m\n    window: 1m\n", 7, "not used by sequence"},
		{"severity", "    kind: threshold\n    severity: urgent\n", 5, `unknown severity "urgent"`},
		{"value_count field", "    kind: value_count\n    dataset: auth\n    key: source_ip\n    window: 1m\n    threshold: 3\n", 3, "field is required"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(head + c.body))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: error %v, want a ParseError", c.name, err)
			continue
		}
		if pe.Line != c.line || !strings.Contains(pe.Reason, c.reason) || (pe.Rule != "r1") {
			t.Errorf("%s: got line %d rule %q reason %q; want line %d and %q", c.name, pe.Line, pe.Rule, pe.Reason, c.line, c.reason)
		}
	}
	for _, bad := range []string{"", "version: 2\nrules: []\n", "rules: {}\nversion: 1\n", "version: 1\nrules:\n  - id: a\n    kind: threshold\n  - id: a\n", "version: 1\nfoo: 1\n", "[1, 2"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	big := append([]byte("version: 1\nrules: []\n#"), bytes.Repeat([]byte("x"), MaxFileBytes)...)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestLoadAndCheck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(p)
	if err != nil || len(rs.Rules) != 7 {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	var out bytes.Buffer
	if err := Check(DefaultYAML(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "ok: 7 rules\n") || !strings.Contains(out.String(), "port_scan (value_count, medium): firewall[event_action in (deny, drop)] by source_ip: distinct(destination_port) over 10s sliding 1s >= 20") {
		t.Errorf("check output:\n%s", out.String())
	}
	if err := Check([]byte("version: 1\nrules:\n  - id: x\n    kind: what\n"), &out); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("Check on a bad file: %v", err)
	}
}

func TestStateKeyIgnoresPresentation(t *testing.T) {
	a, _ := Parse([]byte("version: 1\nrules:\n  - id: r\n    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 1m\n    threshold: 5\n"))
	b, _ := Parse([]byte("version: 1\nrules:\n  - id: r\n    name: renamed\n    severity: low\n    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 1m\n    threshold: 9\n"))
	c, _ := Parse([]byte("version: 1\nrules:\n  - id: r\n    kind: threshold\n    dataset: auth\n    key: source_ip\n    window: 2m\n    threshold: 5\n"))
	if a.Rules[0].StateKey() != b.Rules[0].StateKey() || a.Rules[0].StateKey() == c.Rules[0].StateKey() {
		t.Errorf("state keys: %q %q %q", a.Rules[0].StateKey(), b.Rules[0].StateKey(), c.Rules[0].StateKey())
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\nrules:\n  - id: r\n    kind: threshold\n    dataset: web\n    key: source_ip\n    where:\n      - {field: http_response_status_code, gte: 400, lt: 500, not: true}\n    window: 1m\n    threshold: 5\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("version: 1\nrules:\n  - id: s\n    kind: sequence\n    key: [source_ip]\n    within: 1m\n    steps: [{dataset: ids}, {dataset: auth, where: [{field: event_outcome, in: [success]}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		for _, r := range rs.Rules {
			_ = r.Summary()
			rec := &schemas.Auth{SourceIP: "1.2.3.4", User: "u", Outcome: "failure"}
			r.AppendKey(nil, rec)
			if r.Kind != Sequence {
				r.Where.Match(rec)
			}
		}
	})
}

// TestLoadMaxRefusesOversizedFiles: the configured limit
// (realtime.max_rules_bytes) is enforced both ways: a file over it is
// refused with ErrTooLarge, and a limit above MaxFileBytes admits files
// the default would refuse.
func TestLoadMaxRefusesOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.yaml")
	body := append(DefaultYAML(), []byte("\n# "+strings.Repeat("pad ", 600)+"\n")...) // default rules + a comment
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadMax(p, len(body)-1)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, over the limit of %d", len(body), len(body)-1)) {
		t.Fatalf("LoadMax one byte under the size: %v", err)
	}
	rs, err := LoadMax(p, len(body))
	if err != nil || len(rs.Rules) != 7 {
		t.Fatalf("LoadMax at the size: %v", err)
	}
	big := append(append([]byte(nil), body...), []byte("#"+strings.Repeat("x", MaxFileBytes))...)
	if err := os.WriteFile(p, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load of %d bytes with the default limit: %v", len(big), err)
	}
	if rs, err := LoadMax(p, 2*MaxFileBytes); err != nil || len(rs.Rules) != 7 {
		t.Errorf("LoadMax with a 2 MiB limit: %v", err)
	}
}

// TestColumns: every column a rule reads, each once, from its filter, key,
// field and sequence steps.
func TestColumns(t *testing.T) {
	rs, err := Parse([]byte(`version: 1
rules:
  - id: a
    kind: value_count
    dataset: firewall
    where: [{field: event_action, eq: deny}, {field: destination_port, gte: 1}, {field: event_action, eq: drop, not: true}]
    key: [destination_ip, network_transport]
    field: source_ip
    window: 10s
    threshold: 3
  - id: b
    kind: sequence
    key: source_ip
    within: 60s
    steps:
      - dataset: ids
        where: [{field: rule_category, eq: x}]
      - dataset: auth
        where: [{field: event_outcome, eq: success}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{
		{"event_action", "destination_port", "destination_ip", "network_transport", "source_ip"},
		{"source_ip", "rule_category", "event_outcome"},
	} {
		if got := rs.Rules[i].Columns(); !slices.Equal(got, want) {
			t.Errorf("rule %s: columns %v, want %v", rs.Rules[i].ID, got, want)
		}
	}
}
