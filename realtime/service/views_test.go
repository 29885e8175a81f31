package service

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

// sseClient reads one stream; events arrive on ch as "id|data".
func sseClient(t *testing.T, ctx context.Context, url, lastID string) (*http.Response, chan string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 100)
	if resp.StatusCode != http.StatusOK {
		return resp, ch
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		id := ""
		for sc.Scan() {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "id: "):
				id = l[4:]
			case strings.HasPrefix(l, "data: "):
				ch <- id + "|" + l[6:]
			case strings.HasPrefix(l, ": heartbeat"):
				ch <- "heartbeat"
			}
		}
	}()
	return resp, ch
}

func next(t *testing.T, ch chan string, within time.Duration) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(within):
		t.Fatalf("nothing on the stream within %v", within)
		return ""
	}
}

// TestHubStreamResumeAndLimit: a live client gets a committed alert within
// 2 s; a client resuming with Last-Event-ID gets exactly the alerts after
// that id; past MaxClients the stream answers 503 (counted); idle streams
// get heartbeats.
func TestHubStreamResumeAndLimit(t *testing.T) {
	h := NewHub(HubOptions{History: 3, MaxClients: 2, Heartbeat: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, live := sseClient(t, ctx, srv.URL, "")
	for h.clientCount() != 1 {
		time.Sleep(time.Millisecond)
	}
	sent := time.Now()
	h.Send(alert.Alert{ID: "a1", RuleID: "r"})
	for {
		got := next(t, live, 2*time.Second)
		if got == "heartbeat" {
			continue
		}
		if !strings.HasPrefix(got, "a1|") || !strings.Contains(got, `"rule_id":"r"`) {
			t.Fatalf("live client got %q", got)
		}
		break
	}
	t.Logf("alert reached the live client in %v", time.Since(sent))
	for _, id := range []string{"a2", "a3", "a4"} {
		h.Send(alert.Alert{ID: id, RuleID: "r"})
	}
	// History holds a2..a4: resuming after a2 gives a3, a4.
	_, resumed := sseClient(t, ctx, srv.URL, "a2")
	var ids []string
	for len(ids) < 2 {
		if s := next(t, resumed, 2*time.Second); s != "heartbeat" {
			ids = append(ids, strings.SplitN(s, "|", 2)[0])
		}
	}
	if fmt.Sprint(ids) != "[a3 a4]" {
		t.Errorf("resume after a2 gave %v, want [a3 a4]", ids)
	}
	resp, _ := sseClient(t, ctx, srv.URL, "")
	if resp.StatusCode != http.StatusServiceUnavailable || h.Rejected() != 1 {
		t.Errorf("third client: status %d, rejected %d; want 503 and 1", resp.StatusCode, h.Rejected())
	}
	resp.Body.Close()
	for next(t, resumed, time.Second) != "heartbeat" {
	}
}

func (h *Hub) clientCount() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.clients) }

// feedLines parses raw lines of topic and runs them through the service's
// engine as one poll would.
func feedLines(s *Service, topic string, lines ...string) []alert.Alert {
	var b batch
	for i, l := range lines {
		b.recs = append(b.recs, &kgo.Record{Topic: topic, Value: []byte(l), Offset: int64(i)})
	}
	b.n = len(b.recs)
	b.parsed = make([]schemas.Record, b.n)
	b.orig = make([]origin, b.n)
	s.parseRange(s.workers[0], &b, 0, b.n)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.feed(&b, time.Now())
}

func sshFail(sec int, ip string) string {
	return fmt.Sprintf("Mar  2 00:00:%02d host sshd[1]: Failed password for root from %s port 22 ssh2", sec, ip)
}

// TestReloadKeepsStateAndTopKeys: reloading a rules file that only
// raises the threshold keeps the window counts (the next failure fires at
// the new threshold); a broken file keeps the running rules; the live
// top-keys view answers the window counts.
func TestReloadKeepsStateAndTopKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	ruleYAML := func(threshold int) string {
		return fmt.Sprintf("version: 1\nrules:\n  - id: ssh_fail\n    kind: threshold\n    dataset: auth\n    where: [{field: event_outcome, eq: failure}]\n    key: source_ip\n    aggregate: count\n    window: 60s\n    threshold: %d\n", threshold)
	}
	if err := os.WriteFile(file, []byte(ruleYAML(100)), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: testSources, Rules: rs, RulesFile: file})
	if err != nil {
		t.Fatal(err)
	}
	s.engine.Assign("auth", 0, time.Now())
	var lines []string
	for i := range 6 {
		lines = append(lines, sshFail(i, "198.18.0.9"))
	}
	lines = append(lines, sshFail(7, "198.18.0.5"), sshFail(8, "198.18.0.5"))
	if out := feedLines(s, "auth", lines...); len(out) != 0 {
		t.Fatalf("alerts under threshold 100: %v", out)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/windows/top?rule=ssh_fail&n=5")
	if err != nil {
		t.Fatal(err)
	}
	var top struct{ Windows []TopWindow }
	if err := json.NewDecoder(resp.Body).Decode(&top); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(top.Windows) != 2 || top.Windows[0].Key != "198.18.0.9" || top.Windows[0].Value != 6 || top.Windows[1].Value != 2 {
		t.Fatalf("top = %+v, want 198.18.0.9=6 then 198.18.0.5=2", top.Windows)
	}
	if r, _ := http.Get(srv.URL + "/api/windows/top?rule=nope"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown rule: status %d", r.StatusCode)
	}

	if err := os.WriteFile(file, []byte("version: 1\nrules:\n  - id: ssh_fail\n    kind: bogus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "line") {
		t.Fatalf("bad file: err %v, want a parse error with its line", err)
	}
	if s.Rules() != rs {
		t.Fatal("a bad file replaced the running rules")
	}
	if err := os.WriteFile(file, []byte(ruleYAML(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := feedLines(s, "auth", sshFail(9, "198.18.0.9"))
	if len(out) != 1 || out[0].Value != 7 || out[0].Threshold != 7 {
		t.Fatalf("after reload to threshold 7, the 7th failure gave %+v; the window state was not kept", out)
	}
}

// TestReloadAddsRepartitionTopicBeforeRun: a reload that brings a rule
// keyed by a column no rule had puts it behind a new repartition topic,
// in a lane of its own, with the start's naming, which Run then creates
// and subscribes (the service is not running, so nothing is created yet);
// a reload whose keys all have topics adds none. Two instances of a group
// reloading while running: TestReloadRepartitionsNewKey.
func TestReloadAddsRepartitionTopicBeforeRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	rule := func(id, key string) string {
		return fmt.Sprintf("  - id: %s\n    kind: threshold\n    dataset: firewall\n    key: %s\n    aggregate: count\n    window: 10s\n    threshold: 100\n", id, key)
	}
	if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+rule("by_dst", "destination_ip")), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: testSources, Rules: rs, RulesFile: file, Logger: testLogger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+rule("by_dst", "destination_ip")+rule("by_dst2", "destination_ip")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.repartitionTopics(); !slices.Equal(got, []string{"g-repartition-destination_ip"}) {
		t.Fatalf("after a reload with no new key: topics %v", got)
	}
	if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+rule("by_dst", "destination_ip")+rule("by_if", "observer_ingress_interface_name")+rule("by_src", "source_ip")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := s.repartitionTopics(), []string{"g-repartition-destination_ip", "g-repartition-observer_ingress_interface_name"}; !slices.Equal(got, want) {
		t.Fatalf("topics %v, want %v", got, want)
	}
	for _, r := range s.Rules().Rules {
		if want := map[string]int{"by_dst": 1, "by_if": 2, "by_src": 0}[r.ID]; s.laneOf(r) != want {
			t.Errorf("rule %s in lane %d, want %d", r.ID, s.laneOf(r), want)
		}
	}
	if !slices.Equal(s.inputs(), append(slices.Clone(s.topics()), "g-repartition-destination_ip", "g-repartition-observer_ingress_interface_name")) {
		t.Errorf("Run would consume %v", s.inputs())
	}
}

// TestReloadDropsRepartitionTopicBeforeRun: a reload whose new key's
// repartition topic cannot be made (its name is a source topic's) fails
// and leaves the rules and the topics as they were, although it also
// dropped the only rule of another key; a reload that drops every rule of
// a key drops its topic from what Run would consume, and one that brings
// a rule of that key back adds the topic again, in lane 1.
func TestReloadDropsRepartitionTopicBeforeRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	rule := func(id, ds, key string) string {
		return fmt.Sprintf("  - id: %s\n    kind: threshold\n    dataset: %s\n    key: %s\n    aggregate: count\n    window: 10s\n    threshold: 100\n", id, ds, key)
	}
	write := func(rs ...string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+strings.Join(rs, "")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(rule("by_dst", "firewall", "destination_ip"))
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	const dst = "g-repartition-destination_ip"
	srcs := append(slices.Clone(testSources), Source{"g-repartition-user_name", "sshd"})
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: srcs, Rules: rs, RulesFile: file, Logger: testLogger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	topics := func(want ...string) {
		t.Helper()
		if got := s.repartitionTopics(); !slices.Equal(got, want) {
			t.Fatalf("repartition topics %v, want %v", got, want)
		}
		if got := s.inputs(); !slices.Equal(got, append(s.topics(), want...)) {
			t.Fatalf("Run would consume %v", got)
		}
	}

	write(rule("by_user", "auth", "user_name"))
	if err := s.Reload(t.Context()); !errors.Is(err, ErrRepartitionTopic) {
		t.Fatalf("reload to a key whose topic is a source topic: %v, want ErrRepartitionTopic", err)
	}
	if s.Rules() != rs {
		t.Fatal("a failed reload changed the rules")
	}
	topics(dst)

	write(rule("by_src", "firewall", "source_ip"))
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	topics()

	write(rule("by_src", "firewall", "source_ip"), rule("by_dst", "firewall", "destination_ip"))
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	topics(dst)
	for _, r := range s.Rules().Rules {
		if want := map[string]int{"by_src": 0, "by_dst": 1}[r.ID]; s.laneOf(r) != want {
			t.Errorf("rule %s in lane %d, want %d", r.ID, s.laneOf(r), want)
		}
	}
}

// TestDroppedRepartitionTopicFeedsNothing: a repartition record parsed
// before a reload that drops its topic, and fed after it (a poll in
// flight across the reload), counts for no rule: not for the dropped
// rule, and not, as if it were a source record, for the rules of the
// source topics, which already counted the source record it copies.
func TestDroppedRepartitionTopicFeedsNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	const bySource = "version: 1\nrules:\n  - id: by_src\n    kind: threshold\n    dataset: auth\n    key: source_ip\n    aggregate: count\n    window: 60s\n    threshold: 2\n"
	const byUser = bySource + "  - id: by_user\n    kind: threshold\n    dataset: auth\n    key: user_name\n    aggregate: count\n    window: 60s\n    threshold: 1\n"
	if err := os.WriteFile(file, []byte(byUser), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Group: "g", AlertsTopic: "alerts", Sources: testSources, Rules: rs, RulesFile: file, Logger: testLogger(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	var src batch
	src.recs = []*kgo.Record{{Topic: "auth", Value: []byte(sshFail(1, "198.18.0.1"))}}
	src.n, src.parsed, src.orig = 1, make([]schemas.Record, 1), make([]origin, 1)
	s.parseRange(s.workers[0], &src, 0, 1)
	s.mu.Lock()
	out := s.feed(&src, time.Now())
	s.mu.Unlock()
	if len(out) != 0 || len(src.fwd) != 1 || src.fwd[0].Topic != "g-repartition-user_name" {
		t.Fatalf("the source record raised %v and was forwarded as %v, want nothing and one record", out, src.fwd)
	}

	// The forwarded copy, as the next poll brings it: parsed, then the
	// reload, then fed.
	var rp batch
	rp.recs = []*kgo.Record{src.fwd[0]}
	rp.n, rp.parsed, rp.orig = 1, make([]schemas.Record, 1), make([]origin, 1)
	s.parseRange(s.workers[0], &rp, 0, 1)
	if rp.parsed[0] == nil {
		t.Fatal("the repartition record does not parse")
	}
	if err := os.WriteFile(file, []byte(bySource), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	out = s.feed(&rp, time.Now())
	s.mu.Unlock()
	if len(out) != 0 {
		t.Fatalf("the repartition record of a dropped topic raised %+v", out)
	}
	if st := s.Stats(); st.Events != 1 || st.Repartitioned != 0 || st.ParseFailures != 0 {
		t.Fatalf("stats %+v, want the source record only", st)
	}
}
