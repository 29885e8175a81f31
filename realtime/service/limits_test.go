package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lambdalog/lambdalog/realtime/rules"
)

// TestReloadRefusesOversizedRulesFile: a reload of a rules file over
// Options.MaxRulesBytes (realtime.max_rules_bytes) fails with
// rules.ErrTooLarge, counts as a failed reload, and the running rules keep
// firing at their threshold.
func TestReloadRefusesOversizedRulesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	ruleYAML := func(threshold int, pad int) string {
		return fmt.Sprintf("version: 1\nrules:\n  - id: ssh_fail\n    kind: threshold\n    dataset: auth\n    where: [{field: event_outcome, eq: failure}]\n    key: source_ip\n    aggregate: count\n    window: 60s\n    threshold: %d\n# %s\n", threshold, strings.Repeat("p", pad))
	}
	small := ruleYAML(3, 0)
	if err := os.WriteFile(file, []byte(small), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	limit := len(small) + 100
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: testSources, Rules: rs, RulesFile: file, MaxRulesBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	s.engine.Assign("auth", 0, time.Now())
	if err := os.WriteFile(file, []byte(ruleYAML(100, 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Reload(t.Context())
	if !errors.Is(err, rules.ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("over the limit of %d", limit)) {
		t.Fatalf("reload of an oversized file: %v", err)
	}
	if s.Rules() != rs {
		t.Fatal("an oversized file replaced the running rules")
	}
	if got := counterValue(t, s.m.reloads.WithLabelValues("error")); got != 1 {
		t.Errorf("failed reloads counted = %v, want 1", got)
	}
	out := feedLines(s, "auth", sshFail(1, "198.18.0.7"), sshFail(2, "198.18.0.7"), sshFail(3, "198.18.0.7"))
	if len(out) != 1 || out[0].Threshold != 3 {
		t.Fatalf("the running rule (threshold 3) should fire on the 3rd failure; got %+v", out)
	}
	// The same content within the limit is taken.
	if err := os.WriteFile(file, []byte(ruleYAML(100, 50)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatalf("reload within the limit: %v", err)
	}
	if s.Rules().Rules[0].Threshold != 100 {
		t.Errorf("threshold after reload = %v, want 100", s.Rules().Rules[0].Threshold)
	}
}

// TestLongLinesAreParseFailures: lines over Options.MaxLineBytes
// (topics.max_line_size) never reach the windows and are counted as parse
// failures, while a line within the limit counts.
func TestLongLinesAreParseFailures(t *testing.T) {
	rs, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: testSources, Rules: rs, MaxLineBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	s.engine.Assign("auth", 0, time.Now())
	long := sshFail(1, "198.18.0.8") + " " + strings.Repeat("A", 300)
	feedLines(s, "auth", sshFail(0, "198.18.0.8"), long)
	if st := s.Stats(); st.Events != 1 || st.ParseFailures != 1 {
		t.Errorf("events %d, parse failures %d; want 1 and 1 (the long line refused)", st.Events, st.ParseFailures)
	}
	if got := counterValue(t, s.m.parseFail.WithLabelValues("auth")); got != 1 {
		t.Errorf("lambdalog_realtime_parse_failures_total{topic=auth} = %v, want 1", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
