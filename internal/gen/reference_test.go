package gen

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// This file is a deliberately naive, test-local implementation of the
// shared detection table, run over every event of a generation. It shares
// nothing with the generator's own ruleHit/crossing code.

// refEvent is what the detections need from one line, whoever parsed it.
type refEvent struct {
	dataset string // "auth", "firewall", "ids", "web"
	t       int64  // event time, ns
	srcIP   string
	dstIP   string
	dport   int
	user    string
	outcome string // auth: success, failure, unknown
	action  string // firewall: allow, deny, drop, flow, ...
	status  int    // web
}

type refDetection struct {
	rule, key string
	crossed   int64 // event time at which the condition first holds
}

type refWindowRule struct {
	id            string
	dataset       string
	filter        func(e *refEvent) bool
	key           func(e *refEvent) string
	value         func(e *refEvent) string // nil: count
	window, slide time.Duration
	threshold     int
}

func refRules() []refWindowRule {
	failure := func(e *refEvent) bool { return e.outcome == "failure" }
	src := func(e *refEvent) string { return e.srcIP }
	return []refWindowRule{
		{id: "ssh_bruteforce", dataset: "auth", filter: failure, key: src, window: 60 * time.Second, slide: time.Second, threshold: 5},
		{id: "password_spraying", dataset: "auth", filter: failure, key: src, value: func(e *refEvent) string { return e.user }, window: 300 * time.Second, slide: 10 * time.Second, threshold: 8},
		{id: "distributed_bruteforce", dataset: "auth", filter: failure, key: func(e *refEvent) string { return e.user }, value: src, window: 300 * time.Second, slide: 10 * time.Second, threshold: 10},
		{id: "port_scan", dataset: "firewall", filter: func(e *refEvent) bool { return e.action == "deny" || e.action == "drop" }, key: src,
			value: func(e *refEvent) string { return fmt.Sprint(e.dport) }, window: 10 * time.Second, slide: time.Second, threshold: 20},
		{id: "web_scan", dataset: "web", filter: func(e *refEvent) bool { return e.status >= 400 && e.status <= 499 }, key: src, window: 60 * time.Second, slide: time.Second, threshold: 50},
		{id: "traffic_spike", dataset: "firewall", filter: func(*refEvent) bool { return true }, key: func(e *refEvent) string { return e.dstIP }, window: 10 * time.Second, slide: time.Second, threshold: 2000},
	}
}

// refDetect runs every detection over events and returns what fires, one
// detection per (rule, key) with its earliest crossing.
func refDetect(events []refEvent) []refDetection {
	var out []refDetection
	for _, r := range refRules() {
		byKey := map[string][]*refEvent{}
		for i := range events {
			e := &events[i]
			if e.dataset == r.dataset && r.filter(e) {
				k := r.key(e)
				byKey[k] = append(byKey[k], e)
			}
		}
		for k, evs := range byKey {
			if len(evs) < r.threshold {
				continue
			}
			if at, ok := refCrossing(r, evs); ok {
				out = append(out, refDetection{rule: r.id, key: k, crossed: at})
			}
		}
	}
	// ids_then_login: an ids record from X, then a successful login from X
	// within 600 s.
	alerts := map[string][]int64{}
	for i := range events {
		if e := &events[i]; e.dataset == "ids" {
			alerts[e.srcIP] = append(alerts[e.srcIP], e.t)
		}
	}
	first := map[string]int64{}
	for i := range events {
		e := &events[i]
		if e.dataset != "auth" || e.outcome != "success" || e.srcIP == "" {
			continue
		}
		for _, a := range alerts[e.srcIP] {
			if a <= e.t && e.t-a <= int64(600*time.Second) {
				if f, ok := first[e.srcIP]; !ok || e.t < f {
					first[e.srcIP] = e.t
				}
			}
		}
	}
	for k, t := range first {
		out = append(out, refDetection{rule: "ids_then_login", key: k, crossed: t})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].rule != out[j].rule {
			return out[i].rule < out[j].rule
		}
		return out[i].key < out[j].key
	})
	return out
}

// refCrossing checks every aligned window [k*slide, k*slide+window) that
// holds an event, in the plainest way: bucket the key's events per slide,
// then for each window walk its buckets in time order.
func refCrossing(r refWindowRule, evs []*refEvent) (int64, bool) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].t < evs[j].t })
	s, w := int64(r.slide), int64(r.window)
	buckets := map[int64][]*refEvent{}
	for _, e := range evs {
		b := e.t / s
		if e.t < 0 && e.t%s != 0 {
			b--
		}
		buckets[b] = append(buckets[b], e)
	}
	per := w / s
	best, found := int64(0), false
	starts := map[int64]bool{}
	for b := range buckets {
		for j := int64(0); j < per; j++ {
			starts[b-j] = true
		}
	}
	for k := range starts {
		var in []*refEvent
		total := 0
		for j := int64(0); j < per; j++ {
			total += len(buckets[k+j])
		}
		if total < r.threshold {
			continue
		}
		for j := int64(0); j < per; j++ {
			in = append(in, buckets[k+j]...)
		}
		sort.SliceStable(in, func(a, b int) bool { return in[a].t < in[b].t })
		seen := map[string]bool{}
		n := 0
		for _, e := range in {
			if r.value != nil {
				v := r.value(e)
				if seen[v] {
					continue
				}
				seen[v] = true
			}
			n++
			if n == r.threshold {
				if !found || e.t < best {
					best, found = e.t, true
				}
				break
			}
		}
	}
	return best, found
}

// refFromMeaning turns the generator's intent into reference events.
func refFromMeaning(l *Line) refEvent {
	m := &l.Meaning
	e := refEvent{dataset: l.Dataset.String(), t: l.EventTime.UnixNano(), user: string(m.User), status: m.Status, action: m.Action, dport: int(m.DestPort)}
	if m.SourceIP.IsValid() {
		e.srcIP = m.SourceIP.String()
	}
	if m.DestIP.IsValid() {
		e.dstIP = m.DestIP.String()
	}
	if l.Dataset == Auth {
		e.outcome = m.Outcome.String()
	}
	if l.Dataset == IDS && m.Action == "flow" {
		// A flow summary is firewall-shaped traffic wherever a parser files
		// it; count it against the destination too, the stricter reading.
		e.dataset, e.action = "firewall", "flow"
	}
	return e
}

// compareWithTruth checks that the detections are exactly the truth: same
// (rule, key) set and the same crossing times.
func compareWithTruth(t *testing.T, got []refDetection, truth *Truth) {
	t.Helper()
	want := map[string]TruthRecord{}
	for _, r := range truth.Records {
		k := r.Rule + " " + r.Key
		if _, dup := want[k]; dup {
			t.Errorf("truth has two records for %s", k)
		}
		want[k] = r
	}
	for _, d := range got {
		k := d.rule + " " + d.key
		r, ok := want[k]
		if !ok {
			t.Errorf("false positive: %s fires on %s at %s, not in the truth", d.rule, d.key, time.Unix(0, d.crossed).UTC().Format(time.RFC3339Nano))
			continue
		}
		delete(want, k)
		crossed := time.Unix(0, d.crossed).UTC().Truncate(time.Millisecond)
		if !crossed.Equal(r.ThresholdCrossedAt) {
			t.Errorf("%s: threshold crossed at %s by the reference, truth says %s", k, crossed.Format(time.RFC3339Nano), r.ThresholdCrossedAt.Format(time.RFC3339Nano))
		}
	}
	for k := range want {
		t.Errorf("missed: truth has %s but no detection fires", k)
	}
}

func TestReferenceDetectionsMatchTruth(t *testing.T) {
	cases := []struct {
		rate     float64
		duration time.Duration
		seed     uint64
		attacks  []Attack
		kinds    int // distinct attack kinds expected in the truth
	}{
		{rate: 5000, duration: 330 * time.Second, seed: 1, kinds: 7},
		{rate: 5000, duration: 330 * time.Second, seed: 2, kinds: 7},
		{rate: 200_000, duration: 12 * time.Second, seed: 1, kinds: 6}, // too short for spraying
		{rate: 200_000, duration: 12 * time.Second, seed: 7, kinds: 6},
		{rate: 1_000_000, duration: 3 * time.Second, seed: 3, attacks: []Attack{}}, // background only, at the top rate
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("rate=%.0f/seed=%d", c.rate, c.seed), func(t *testing.T) {
			g, err := New(Options{Seed: c.seed, Rate: c.rate, Duration: c.duration, Attacks: c.attacks,
				MaxSkew: time.Second, LateFraction: 0.001, LateBy: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			var l Line
			var events []refEvent
			for g.Next(&l) {
				events = append(events, refFromMeaning(&l))
			}
			truth := g.Truth()
			got := refDetect(events)
			compareWithTruth(t, got, truth)
			kinds := map[string]int{}
			for _, r := range truth.Records {
				kinds[r.Attack]++
			}
			if len(kinds) != c.kinds {
				t.Errorf("truth covers %d attack kinds %v, want %d (skipped: %v)", len(kinds), kinds, c.kinds, truth.Skipped)
			}
			t.Logf("%d events, %d detections, %v", len(events), len(got), kinds)
		})
	}
}
