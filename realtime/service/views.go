package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime/rules"
)

// Handler serves the service's HTTP API: the alert stream at
// /api/alerts/stream and the live top keys at /api/windows/top.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/alerts/stream", s.o.Hub)
	mux.HandleFunc("GET /api/windows/top", s.serveTop)
	return mux
}

// TopWindow is one row of /api/windows/top.
type TopWindow struct {
	RuleID      string    `json:"rule_id"`
	Key         string    `json:"key"`
	Value       float64   `json:"value"`
	Events      int64     `json:"event_count"`
	Threshold   float64   `json:"threshold"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Precision   string    `json:"value_precision"`
}

// maxTop bounds n so a request cannot ask for every key.
const maxTop = 1000

// serveTop answers {"windows":[...]} with the n (default 10) keys of rule
// (or metric, its alias) with the largest current window aggregate; with
// no rule, the top keys of every windowed rule, by value over threshold.
func (s *Service) serveTop(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rule := q.Get("rule")
	if rule == "" {
		rule = q.Get("metric")
	}
	n := 10
	for _, k := range []string{"n", "limit"} {
		if v := q.Get(k); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 || x > maxTop {
				writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("%s must be an integer in 1..%d", k, maxTop))
				return
			}
			n = x
		}
	}
	s.mu.Lock()
	rs := s.rs
	var out []TopWindow
	found := false
	for _, ru := range rs.Rules {
		if rule != "" && ru.ID != rule {
			continue
		}
		top, ok := s.engine.Top(ru.ID, n)
		if !ok {
			continue
		}
		found = true
		for _, kv := range top {
			p := "exact"
			if !kv.Value.Exact {
				p = "estimate"
			}
			out = append(out, TopWindow{RuleID: ru.ID, Key: kv.Key, Value: kv.Value.V, Events: kv.Value.N, Threshold: ru.Threshold,
				WindowStart: time.Unix(0, kv.Value.Start).UTC(), WindowEnd: time.Unix(0, kv.Value.End).UTC(), Precision: p})
		}
	}
	s.mu.Unlock()
	if rule != "" && !found {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no windowed rule %q", rule))
		return
	}
	if rule == "" {
		// Across rules, rank by how close each key is to firing.
		sort.SliceStable(out, func(i, j int) bool { return out[i].Value/out[i].Threshold > out[j].Value/out[j].Threshold })
		out = out[:min(n, len(out))]
	}
	if out == nil {
		out = []TopWindow{}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"windows": out})
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Reload reads Options.RulesFile and swaps the rules; windows of rules
// whose definition is unchanged keep their state. A rule keyed by columns
// no rule had so far gets its repartition topic first: created as at
// start, then added to the group's subscription (growTopology); a
// repartition topic no rule reads any more leaves the topology and the
// subscription (shrinkTopology), but not the cluster. A file that does
// not parse, or whose new repartition topic cannot be created, leaves the
// running rules and topics in force and returns the error (an error of
// the latter kind wraps ErrRepartitionTopic).
func (s *Service) Reload(ctx context.Context) error {
	if s.o.RulesFile == "" {
		return fmt.Errorf("realtime/service: reload: no rules file (the shipped defaults are running)")
	}
	rs, err := rules.LoadMax(s.o.RulesFile, s.o.MaxRulesBytes)
	var added, removed []string
	if err == nil {
		added, removed, err = s.setRules(ctx, rs)
	}
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		s.log.Error("rules reload failed; the previous rules stay in force", "file", s.o.RulesFile, "err", err)
		return fmt.Errorf("realtime/service: reload %s: %w", s.o.RulesFile, err)
	}
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("rules reloaded", "file", s.o.RulesFile, "rules", len(rs.Rules))
	if len(added) > 0 {
		s.log.Info("repartition topics added for rules keyed by new columns; the group rebalances to share them",
			"topics", added, "running", s.running())
	}
	if len(removed) > 0 {
		s.log.Info("repartition topics no rule reads any more removed from the subscription; the group rebalances. "+
			"The topics are kept: instances that have not reloaded may still forward to them; delete them (kadm, Kafka CLI) once none does",
			"topics", removed, "running", s.running())
	}
	return nil
}

// ErrRepartitionTopic is wrapped by the error of a reload whose new
// repartition topic could not be created; WatchRules retries such a
// reload at every check.
var ErrRepartitionTopic = errors.New("repartition topic not ready")

// setRules swaps the running rules for rs, first growing the repartition
// topology by the topics of rs's new keys (growTopology), then, once the
// engine runs rs (its new repartitioned rules in their topics' lanes, so
// this instance forwards their records from its next poll on), adding
// those topics to the running group session's subscription: the member
// rejoins, the group rebalances and every instance rebuilds its state
// (recover), registering the new topics' partitions and watermark inputs
// as at any assignment.
// Records forwarded before the assignment wait in the topic, which a
// partition without a committed offset is read from the start of.
//
// With rs running, the topics no rule of rs reads leave the topology
// (shrinkTopology) and are purged from the session's subscription, which
// also makes the member rejoin: with the range balancer's eager protocol
// every partition is revoked first, so the open transaction aborts (the
// session's revoke) and the purged partitions keep the offsets of the
// last committed transaction, whose forwards and alerts they match; the
// rebuild after the rebalance no longer owns them. A later reload that
// brings their rule back adds them again like any new topic, and the
// group resumes them from those offsets.
//
// If the engine refuses rs, the topology is restored and nothing is
// subscribed or purged. It returns the topics added and removed.
func (s *Service) setRules(ctx context.Context, rs *rules.RuleSet) (added, removed []string, err error) {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	prev := s.rp.topo.Load()
	added, err = s.growTopology(ctx, rs)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRepartitionTopic, err)
	}
	s.mu.Lock()
	if err = s.engine.SetRules(rs); err != nil {
		// The rules that would read the new topics do not run: leave
		// the topology as it was (a created topic stays, unused).
		s.rp.topo.Store(prev)
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("realtime/service: engine refused the rules: %w", err)
	}
	s.rs = rs
	removed = s.shrinkTopology(rs)
	s.mu.Unlock()
	if s.rp.cl != nil {
		if len(added) > 0 {
			s.rp.cl.AddConsumeTopics(added...)
		}
		if len(removed) > 0 {
			s.rp.cl.PurgeTopicsFromConsuming(removed...)
		}
	}
	return added, removed, nil
}

// running says whether Run's group session is up.
func (s *Service) running() bool {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	return s.rp.cl != nil
}

// Rules is the running rule set.
func (s *Service) Rules() *rules.RuleSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rs
}

// WatchRules reloads the rules whenever Options.RulesFile's modification
// time or size changes (checked every interval) or a value arrives on
// hup (SIGHUP), until ctx ends.
func (s *Service) WatchRules(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	if s.o.RulesFile == "" {
		return
	}
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(s.o.RulesFile)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	mt, sz := stamp()
	// retry: the last reload failed for want of a repartition topic (a
	// broker problem, unlike a bad file): try again at every check.
	retry := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			mt, sz = stamp()
			retry = errors.Is(s.Reload(ctx), ErrRepartitionTopic)
		case <-t.C:
			m, z := stamp()
			if z >= 0 && (!m.Equal(mt) || z != sz) || retry {
				mt, sz = m, z
				retry = errors.Is(s.Reload(ctx), ErrRepartitionTopic)
			}
		}
	}
}

// checkCopartitioning verifies that the topics of every sequence rule's
// steps have the same partition count: a correlation needs both events of
// a key (keyed by source address) in the same instance. It refuses to
// start unless Options.AllowUncopartitioned, when it warns.
func (s *Service) checkCopartitioning(ctx context.Context) error {
	s.mu.Lock()
	rs := s.rs
	s.mu.Unlock()
	var seq []*rules.Rule
	for _, r := range rs.Rules {
		if r.Kind == rules.Sequence {
			seq = append(seq, r)
		}
	}
	if len(seq) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(s.o.Client...)
	if err != nil {
		return fmt.Errorf("realtime/service: kafka: %w", err)
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(mctx, s.topics()...)
	if err != nil {
		return fmt.Errorf("realtime/service: topic metadata: %w", err)
	}
	count := map[string]int{}
	for _, t := range s.topics() {
		d, ok := details[t]
		if !ok || d.Err != nil {
			continue // consumed once it exists; nothing to compare yet
		}
		count[t] = len(d.Partitions)
	}
	for _, r := range seq {
		var ts []string
		for _, st := range r.Steps {
			for t, ds := range s.topicDataset {
				if ds == st.Dataset || ds == "" {
					ts = append(ts, t)
				}
			}
		}
		sort.Strings(ts)
		for _, t := range ts[1:] {
			if count[t] != 0 && count[ts[0]] != 0 && count[t] != count[ts[0]] {
				msg := fmt.Sprintf("sequence rule %s reads topics %s (%d partitions) and %s (%d partitions): they must be co-partitioned (same partition count, keyed by source address) for its steps to meet in one instance",
					r.ID, ts[0], count[ts[0]], t, count[t])
				if !s.o.AllowUncopartitioned {
					return fmt.Errorf("realtime/service: %s; set realtime.allow_uncopartitioned only for a single instance", msg)
				}
				s.log.Warn(msg + "; running anyway (allow_uncopartitioned): correct only with one instance")
			}
		}
	}
	return nil
}
