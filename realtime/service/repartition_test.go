package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

// TestTwoInstancesRepartitioned runs two instances of one group on
// generated traffic with every kind of attack, the second one stopped
// after the first half of the traffic and restarted once the second half
// is on the topics: every attack of the ground truth, including those of
// distributed_bruteforce (distinct sources per user) and traffic_spike
// (per destination), whose events the source topics (keyed by source
// address) spread over both instances, raised its alert exactly once on
// the alerts topic (read committed), and nothing else alerted.
func TestTwoInstancesRepartitioned(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	recs, truth := genLines(t, gen.Options{Seed: 7, Rate: 2000, Duration: 5 * time.Minute})
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	half := len(recs) / 2
	produce(t, prod, recs[:half])

	opts := func(id string) Options {
		o := testOptions(t, b, "rt", "alerts")
		o.TransactionalID = "test-rt-" + id
		o.SessionTimeout = 6 * time.Second
		return o
	}
	a := start(t, opts("a"))
	b1 := start(t, opts("b"))
	waitCaughtUp(t, b, "rt", 2*time.Minute)
	b1.shutdown(t)
	produce(t, prod, recs[half:])
	b2 := start(t, opts("b"))
	waitCaughtUp(t, b, "rt", 2*time.Minute)
	a.shutdown(t)
	b2.shutdown(t)

	want := map[string]gen.TruthRecord{}
	for _, tr := range truth.Records {
		want[tr.Rule+"|"+tr.Key] = tr
	}
	byRule := map[string]int{}
	for _, tr := range want {
		byRule[tr.Rule]++
	}
	if byRule["distributed_bruteforce"] == 0 || byRule["traffic_spike"] == 0 {
		t.Fatalf("the traffic has no attack of a rule keyed by something else than the source address: %v", byRule)
	}
	all := readAlerts(t, b, "alerts")
	byID(t, all) // fails on an id published twice
	count := map[string]int{}
	for _, al := range all {
		if al.Type != alert.TypeStart {
			continue
		}
		k := al.RuleID + "|" + strings.Join(al.KeyValues, ",")
		count[k]++
		if _, ok := want[k]; !ok {
			t.Errorf("alert outside the ground truth: %s", k)
		}
	}
	for _, k := range sortedKeys(want) {
		if n := count[k]; n != 1 {
			t.Errorf("attack %s (%s): %d alerts, want 1", k, want[k].Attack, n)
		}
	}
	sa, sb1, sb2 := a.svc.Stats(), b1.svc.Stats(), b2.svc.Stats()
	t.Logf("ground truth %d attacks %v; instance a: %d events, %d forwarded, %d repartitioned, %d alerts; b before its restart: %d/%d/%d/%d; after: %d/%d/%d/%d, %d replayed",
		len(want), byRule, sa.Events, sa.Forwarded, sa.Repartitioned, sa.Alerts, sb1.Events, sb1.Forwarded, sb1.Repartitioned, sb1.Alerts,
		sb2.Events, sb2.Forwarded, sb2.Repartitioned, sb2.Alerts, sb2.Replayed)
	if sa.Events == 0 || sb1.Events == 0 || sb2.Events == 0 {
		t.Errorf("an instance read no source record: the group did not share the input")
	}
	if sa.Events+sb1.Events+sb2.Events < int64(len(recs)) {
		t.Errorf("%d source records processed, %d produced", sa.Events+sb1.Events+sb2.Events, len(recs))
	}
	if sa.Repartitioned+sb1.Repartitioned+sb2.Repartitioned == 0 {
		t.Error("nothing was read from the repartition topics")
	}
}

// rulesBySource keys its one rule by the source topics' key;
// rulesByUser adds a rule keyed by user_name, which is repartitioned
// (the reload tests switch between the two).
const rulesBySource = `version: 1
rules:
  - id: ssh_bruteforce
    kind: threshold
    dataset: auth
    where:
      - {field: event_outcome, eq: failure}
    key: source_ip
    aggregate: count
    window: 60s
    threshold: 5
    suppress: 10m
`

const rulesByUser = rulesBySource + `  - id: user_sources
    kind: value_count
    dataset: auth
    where:
      - {field: event_outcome, eq: failure}
    key: user_name
    field: source_ip
    window: 300s
    slide: 10s
    threshold: 12
    suppress: 10m
`

// TestReloadRepartitionsNewKey: two instances of one group start with
// rules that repartition nothing; a reload on the first instance only
// brings a rule keyed by user_name (distinct sources per user), whose
// repartition topic the reload creates and adds to that instance's
// subscription: the group rebalances and the instance that subscribed owns
// every partition of the new topic, while the other, still on the old
// rules, forwards nothing. Failed logins as root then come from one new
// source address per record on every source partition. Then the second
// instance reloads too and takes its share of the topic, and more such
// logins follow. The rule's threshold needs sources of both instances'
// source partitions (either instance alone sees at most 10 of the 12
// needed), and it fires exactly once on the alerts topic (read
// committed); a restart of the second instance, which replays the new
// topic, publishes nothing again.
func TestReloadRepartitionsNewKey(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	file := filepath.Join(t.TempDir(), "rules.yaml")
	const bySource, byUser = rulesBySource, rulesByUser
	if err := os.WriteFile(file, []byte(bySource), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(id string) Options {
		o := testOptions(t, b, "rt", "alerts")
		o.Rules, o.RulesFile = rs, file
		o.TransactionalID = "test-rt-" + id
		o.SessionTimeout = 6 * time.Second
		return o
	}
	const topic = "rt-repartition-user_name"
	// owns waits until instances x and y own na and nb partitions of
	// topic (-1: at least one) and some of auth each: the group settled.
	owns := func(x, y *running, na, nb int, what string) {
		t.Helper()
		match := func(got, want int) bool { return got == want || want < 0 && got > 0 }
		deadline := time.Now().Add(time.Minute)
		for {
			px, py := x.svc.ownedPartitions(), y.svc.ownedPartitions()
			if match(len(px[topic]), na) && match(len(py[topic]), nb) && len(px["auth"]) > 0 && len(py["auth"]) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: partitions owned %v and %v", what, px, py)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := start(t, opts("a"))
	b1 := start(t, opts("b"))
	owns(a, b1, 0, 0, "at start")
	if err := os.WriteFile(file, []byte(byUser), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	owns(a, b1, 3, 0, "after the first instance's reload")

	// One failed login as root per new source address, on partition i%3
	// of auth: the source topics are keyed by source address, so the
	// sources of one user are spread over the instances.
	prod := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	logins := func(from, n int) {
		t.Helper()
		recs := make([]kgo.Record, n)
		for i := range recs {
			ip := fmt.Sprintf("198.51.100.%d", from+i)
			recs[i] = kgo.Record{Topic: "auth", Partition: int32((from + i) % 3), Key: []byte(ip), Value: []byte(sshFail(from+i, ip))}
		}
		produce(t, prod, recs)
	}
	logins(0, 3)
	waitCaughtUp(t, b, "rt", time.Minute)
	if st := b1.svc.Stats(); st.Forwarded != 0 || st.Events == 0 {
		t.Fatalf("instance b, on the old rules, read %d source records and forwarded %d, want some and none", st.Events, st.Forwarded)
	}
	if st := a.svc.Stats(); st.Forwarded == 0 {
		t.Fatal("instance a forwarded nothing after its reload")
	}

	if err := b1.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	owns(a, b1, -1, -1, "after both reloads")
	if !slices.Equal(a.svc.repartitionTopics(), []string{topic}) || !slices.Equal(b1.svc.repartitionTopics(), []string{topic}) {
		t.Fatalf("repartition topics %v and %v, want [%s]", a.svc.repartitionTopics(), b1.svc.repartitionTopics(), topic)
	}
	logins(3, 12)
	waitCaughtUp(t, b, "rt", time.Minute)
	if st := b1.svc.Stats(); st.Forwarded == 0 {
		t.Fatal("instance b forwarded nothing after its reload")
	}
	count := func() int {
		t.Helper()
		all := readAlerts(t, b, "alerts")
		byID(t, all) // fails on an id published twice
		n := 0
		for _, al := range all {
			if al.RuleID != "user_sources" || strings.Join(al.KeyValues, ",") != "root" {
				t.Errorf("unexpected alert %s %v", al.RuleID, al.KeyValues)
				continue
			}
			if al.Type == alert.TypeStart {
				n++
			}
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d alerts of user_sources for root, want 1", n)
	}

	// A restart replays the new topic: the rebuilt window of root is over
	// the threshold again, and the published id keeps it from a second
	// publication.
	b1.shutdown(t)
	ob := opts("b")
	if ob.Rules, err = rules.Load(file); err != nil {
		t.Fatal(err)
	}
	b2 := start(t, ob)
	owns(a, b2, -1, -1, "after the restart")
	logins(15, 3)
	waitCaughtUp(t, b, "rt", time.Minute)
	a.shutdown(t)
	b2.shutdown(t)
	if n := count(); n != 1 {
		t.Fatalf("after a restart: %d alerts of user_sources for root, want 1", n)
	}
	sa, sb1, sb2 := a.svc.Stats(), b1.svc.Stats(), b2.svc.Stats()
	t.Logf("instance a: %d events, %d forwarded, %d repartitioned, %d alerts; b: %d/%d/%d/%d; b restarted: %d/%d/%d/%d, %d replayed",
		sa.Events, sa.Forwarded, sa.Repartitioned, sa.Alerts, sb1.Events, sb1.Forwarded, sb1.Repartitioned, sb1.Alerts,
		sb2.Events, sb2.Forwarded, sb2.Repartitioned, sb2.Alerts, sb2.Replayed)
	if sb2.Replayed == 0 {
		t.Error("the restarted instance replayed nothing")
	}
}

// TestReloadRetriesUncreatableRepartitionTopic: while the repartition
// topic of a reloaded rule's new key cannot be created (here a topic whose
// name differs only by "." from it exists, which the broker refuses as a
// collision), the reload fails with ErrRepartitionTopic and the running
// rules stay, so the rule never runs unrepartitioned; WatchRules retries
// without a new change of the file, and once the topic can be created the
// rule runs in lane 1 and the instance consumes the topic.
func TestReloadRetriesUncreatableRepartitionTopic(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	adm := kadm.NewClient(kafkatest.Client(t, b))
	const blocker = "rt1-repartition-user.name"
	if _, err := adm.CreateTopic(t.Context(), 1, -1, nil, blocker); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	rule := func(id, key string) string {
		return fmt.Sprintf("  - id: %s\n    kind: threshold\n    dataset: auth\n    key: %s\n    aggregate: count\n    window: 60s\n    threshold: 100\n", id, key)
	}
	if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+rule("by_src", "source_ip")), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, b, "rt1", "alerts")
	o.Rules, o.RulesFile = rs, file
	r := start(t, o)
	for len(r.svc.ownedPartitions()["auth"]) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.svc.WatchRules(ctx, 50*time.Millisecond, nil)
	time.Sleep(200 * time.Millisecond) // WatchRules took the file's stamp
	if err := os.WriteFile(file, []byte("version: 1\nrules:\n"+rule("by_src", "source_ip")+rule("by_user", "user_name")), 0o600); err != nil {
		t.Fatal(err)
	}
	// The change fails, and so do the retries at the next checks.
	failed := r.svc.m.reloads.WithLabelValues("error")
	for deadline := time.Now().Add(time.Minute); counterValue(t, failed) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%v failed reloads, want retries", counterValue(t, failed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.svc.Reload(t.Context()); !errors.Is(err, ErrRepartitionTopic) {
		t.Fatalf("reload with an uncreatable topic: %v, want ErrRepartitionTopic", err)
	}
	if r.svc.Rules() != rs || len(r.svc.repartitionTopics()) != 0 {
		t.Fatalf("a failed reload changed the rules (%d) or the topics %v", len(r.svc.Rules().Rules), r.svc.repartitionTopics())
	}
	if _, err := adm.DeleteTopic(t.Context(), blocker); err != nil {
		t.Fatal(err)
	}
	const topic = "rt1-repartition-user_name"
	deadline := time.Now().Add(time.Minute)
	for len(r.svc.ownedPartitions()[topic]) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("rules %d, topics %v, owned %v: the reload was not retried", len(r.svc.Rules().Rules), r.svc.repartitionTopics(), r.svc.ownedPartitions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ru := range r.svc.Rules().Rules {
		if want := map[string]int{"by_src": 0, "by_user": 1}[ru.ID]; r.svc.laneOf(ru) != want {
			t.Errorf("rule %s in lane %d, want %d", ru.ID, r.svc.laneOf(ru), want)
		}
	}
	r.shutdown(t)
}

// TestReloadPurgesUnusedRepartitionTopic: an instance runs a rule keyed by
// user_name, which reads its repartition topic, next to one keyed by the
// source address; failed logins from 12 sources fire it once. A reload
// that drops it takes the topic out of the instance's topology, out of
// its client's subscription and out of the group's assignment, and the
// failed logins produced after it are forwarded to the topic no more (its
// end offsets do not move) while the rule keyed by the source address
// still fires exactly once on the alerts topic (read committed). A reload
// that brings the rule back subscribes the topic again: the group assigns
// it, the instance forwards to it, and the rule fires for a new user.
func TestReloadPurgesUnusedRepartitionTopic(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	file := filepath.Join(t.TempDir(), "rules.yaml")
	const bySource, byUser = rulesBySource, rulesByUser
	write := func(rs string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(rs), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(byUser)
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, b, "rt", "alerts")
	o.Rules, o.RulesFile = rs, file
	r := start(t, o)
	const topic = "rt-repartition-user_name"
	adm := kadm.NewClient(kafkatest.Client(t, b))

	// subscribed says whether the instance's group client consumes topic.
	subscribed := func() bool {
		r.svc.rp.mu.Lock()
		cl := r.svc.rp.cl
		r.svc.rp.mu.Unlock()
		return cl != nil && slices.Contains(cl.GetConsumeTopics(), topic)
	}
	// settled waits until the group is stable with every partition of
	// auth assigned, and the topic's (all or none) too, and the instance
	// owns them.
	settled := func(with bool, what string) {
		t.Helper()
		want := 0
		if with {
			want = 3
		}
		deadline := time.Now().Add(time.Minute)
		for {
			var assigned kadm.TopicsSet
			state := "?"
			if gs, err := adm.DescribeGroups(t.Context(), "rt"); err == nil && gs["rt"].Err == nil {
				g := gs["rt"]
				state, assigned = g.State, g.AssignedPartitions()
			}
			owned := r.svc.ownedPartitions()
			if state == "Stable" && len(assigned["auth"]) == 3 && len(assigned[topic]) == want &&
				len(owned["auth"]) == 3 && len(owned[topic]) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: group %s, assigned %v, owned %v", what, state, assigned.Sorted(), owned)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	prod := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// fails produces one failed login of user from each of the sources,
	// source i on partition i%3 of auth, a second apart from at on.
	fails := func(at time.Duration, user string, sources ...string) {
		t.Helper()
		recs := make([]kgo.Record, len(sources))
		for i, ip := range sources {
			ts := at + time.Duration(i)*time.Second
			line := fmt.Sprintf("Mar  2 00:%02d:%02d host sshd[1]: Failed password for %s from %s port 22 ssh2", int(ts.Minutes()), int(ts.Seconds())%60, user, ip)
			recs[i] = kgo.Record{Topic: "auth", Partition: int32(i % 3), Key: []byte(ip), Value: []byte(line)}
		}
		produce(t, prod, recs)
	}
	sources := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s.%d", prefix, i)
		}
		return out
	}
	ends := func() map[int32]int64 {
		t.Helper()
		l, err := adm.ListEndOffsets(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out
	}
	// alerts counts the committed start alerts by rule and key, failing
	// on an id published twice.
	alerts := func() map[string]int {
		t.Helper()
		all := readAlerts(t, b, "alerts")
		byID(t, all)
		n := map[string]int{}
		for _, al := range all {
			if al.Type == alert.TypeStart {
				n[al.RuleID+"|"+strings.Join(al.KeyValues, ",")]++
			}
		}
		return n
	}
	expect := func(want map[string]int, what string) {
		t.Helper()
		if got := alerts(); !maps.Equal(got, want) {
			t.Fatalf("%s: alerts %v, want %v", what, got, want)
		}
	}

	settled(true, "at start")
	fails(0, "root", sources("198.51.100", 12)...)
	waitCaughtUp(t, b, "rt", time.Minute)
	want := map[string]int{"user_sources|root": 1}
	expect(want, "before the reloads")

	write(bySource)
	if err := r.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if subscribed() {
		t.Fatal("after dropping the rule the client still consumes the topic")
	}
	settled(false, "after dropping the rule")
	if got := r.svc.repartitionTopics(); len(got) != 0 {
		t.Fatalf("after dropping the rule: repartition topics %v", got)
	}
	before, fwd := ends(), r.svc.Stats().Forwarded
	// Five failures from one address, and failures of root from twelve
	// more, which the dropped rule would have counted.
	fails(time.Minute, "admin", "203.0.113.9", "203.0.113.9", "203.0.113.9", "203.0.113.9", "203.0.113.9")
	fails(time.Minute+5*time.Second, "root", sources("198.51.101", 12)...)
	waitCaughtUp(t, b, "rt", time.Minute)
	if after := ends(); !maps.Equal(after, before) {
		t.Fatalf("the repartition topic's end offsets moved from %v to %v: records were forwarded to it after the rule was dropped", before, after)
	}
	if got := r.svc.Stats().Forwarded; got != fwd {
		t.Fatalf("%d records forwarded after the rule was dropped", got-fwd)
	}
	want["ssh_bruteforce|203.0.113.9"] = 1
	expect(want, "after dropping the rule")

	write(byUser)
	if err := r.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := r.svc.repartitionTopics(); !slices.Equal(got, []string{topic}) {
		t.Fatalf("after bringing the rule back: repartition topics %v", got)
	}
	if !subscribed() {
		t.Fatal("after bringing the rule back the client does not consume the topic")
	}
	settled(true, "after bringing the rule back")
	fails(2*time.Minute, "alice", sources("192.0.2", 12)...)
	waitCaughtUp(t, b, "rt", time.Minute)
	if got := r.svc.Stats().Forwarded; got < fwd+12 {
		t.Fatalf("%d records forwarded after the rule came back, want 12", got-fwd)
	}
	r.shutdown(t)
	want["user_sources|alice"] = 1
	expect(want, "after bringing the rule back")
	st := r.svc.Stats()
	t.Logf("%d events, %d forwarded, %d repartitioned, %d alerts, %d rebuilds, %d aborts", st.Events, st.Forwarded, st.Repartitioned, st.Alerts, st.Rebuilds, st.Aborts)
}

// TestRepartitionedRulesOfOneDataset: two rules on auth keyed by
// different columns (user_name, host_name) read two repartition topics,
// to both of which a failed login is forwarded; each rule must count it
// once, from its own topic only. Five failed logins of root on web1 and
// five of admin on web2, from one new source address each over every
// source partition, fire nothing at a threshold of 6; a sixth of root on
// web1 fires both rules for root and web1 with 6 events. A restart, whose
// rebuild replays both topics, keeps the counts: a sixth of admin on web2
// fires both rules for them with 6 events. The alerts topic (read
// committed) holds exactly those four alerts.
func TestRepartitionedRulesOfOneDataset(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	rs, err := rules.Parse([]byte(`version: 1
rules:
  - id: by_user
    kind: threshold
    dataset: auth
    where:
      - {field: event_outcome, eq: failure}
    key: user_name
    aggregate: count
    window: 300s
    threshold: 6
    suppress: 10m
  - id: by_host
    kind: threshold
    dataset: auth
    where:
      - {field: event_outcome, eq: failure}
    key: host_name
    aggregate: count
    window: 300s
    threshold: 6
    suppress: 10m
`))
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, b, "rt", "alerts")
	o.Rules = rs
	r := start(t, o)
	if got, want := r.svc.repartitionTopics(), []string{"rt-repartition-host_name", "rt-repartition-user_name"}; !slices.Equal(got, want) {
		t.Fatalf("repartition topics %v, want %v", got, want)
	}

	prod := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	n := 0 // logins so far: the source address and the second
	login := func(user, host string) kgo.Record {
		ip := fmt.Sprintf("198.51.100.%d", n)
		line := fmt.Sprintf("Mar  2 00:00:%02d %s sshd[1]: Failed password for %s from %s port 22 ssh2", n, host, user, ip)
		n++
		return kgo.Record{Topic: "auth", Partition: int32(n % 3), Key: []byte(ip), Value: []byte(line)}
	}
	// alerts checks the alerts topic holds exactly want (rule key events),
	// each once.
	alerts := func(what string, want ...string) {
		t.Helper()
		all := readAlerts(t, b, "alerts")
		byID(t, all) // fails on an id published twice
		var got []string
		for _, al := range all {
			if al.Type == alert.TypeStart {
				got = append(got, fmt.Sprintf("%s %s %d", al.RuleID, strings.Join(al.KeyValues, ","), al.EventCount))
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: alerts %q, want %q", what, got, want)
		}
	}

	var recs []kgo.Record
	for range 5 {
		recs = append(recs, login("root", "web1"), login("admin", "web2"))
	}
	produce(t, prod, recs)
	waitCaughtUp(t, b, "rt", time.Minute)
	alerts("after five logins of each")

	produce(t, prod, []kgo.Record{login("root", "web1")})
	waitCaughtUp(t, b, "rt", time.Minute)
	alerts("after a sixth of root on web1", "by_host web1 6", "by_user root 6")

	r.shutdown(t)
	r2 := start(t, o)
	produce(t, prod, []kgo.Record{login("admin", "web2")})
	waitCaughtUp(t, b, "rt", time.Minute)
	r2.shutdown(t)
	alerts("after a restart and a sixth of admin on web2", "by_host web1 6", "by_host web2 6", "by_user admin 6", "by_user root 6")
	if st := r2.svc.Stats(); st.Replayed == 0 {
		t.Error("the restarted instance replayed nothing")
	}
}

// TestTopologyLanes: each repartition topic gets a lane of its own, the
// lowest free one, and keeps it while it exists: a reload's grow (before
// its shrink) never gives a new topic the lane of one the running rules
// still read there.
func TestTopologyLanes(t *testing.T) {
	lanes := func(tp *topology, want map[string]int) {
		t.Helper()
		if !maps.Equal(tp.lanes, want) {
			t.Fatalf("lanes %v, want %v", tp.lanes, want)
		}
		for c, name := range tp.topics {
			if _, ok := tp.lanes[name]; !ok {
				t.Fatalf("topic %s of %s has no lane", name, c)
			}
		}
	}
	t0 := (&topology{topics: map[string]string{}, lanes: map[string]int{}}).with(map[string]string{"user_name": "u", "host_name": "h"})
	lanes(t0, map[string]int{"h": 1, "u": 2})
	t1 := t0.with(map[string]string{"destination_ip": "d"})
	lanes(t1, map[string]int{"h": 1, "u": 2, "d": 3})
	t2 := t1.without(map[string]string{"host_name": "h"})
	lanes(t2, map[string]int{"u": 2, "d": 3})
	t3 := t2.with(map[string]string{"source_port": "p", "event_action": "a"})
	lanes(t3, map[string]int{"a": 1, "u": 2, "d": 3, "p": 4})
	lanes(t0, map[string]int{"h": 1, "u": 2}) // copies: t0 is unchanged
}

// TestReloadDropsRepartitionedRuleTwoInstances: two instances of one
// group run the default rules plus host_failures, keyed by host_name,
// which reads its own repartition topic, while failed logins flow all
// along (a producer goroutine, one round per tick, each round one second
// of event time): source j fails five times as user j/12 on host h<j>, in
// rounds j to j+4, so ssh_bruteforce fires for every source and
// distributed_bruteforce for every user of ten sources or more, while
// alerts and forwards straddle both reloads. The transactions last 250
// ms and a round comes every 40 ms, so each reload's purge, and the
// rebalance it causes, almost always finds an open transaction holding
// forwards to the dropped topic and aborts it (likely, not asserted: the
// test cannot see the loop's transaction). Eight failed logins on one
// host from eight new sources fire host_failures (threshold 8), nothing
// else.
//
// Instance a reloads a file without host_failures, then b. Expected:
//   - before the reloads, host_failures fires for probe0, whose sources
//     span every auth partition (both instances forward);
//   - between the reloads, a no longer subscribes to the topic, and b,
//     still on the old rules and its only subscriber, owns all its
//     partitions and still runs the rule, but on b's forwards only: eight
//     failures on host probeb from b's auth partitions fire it, eight on
//     host probea from a's fire nothing (a forwards nothing any more);
//   - after both reloads no member subscribes to or is assigned the
//     topic, and its end offsets stay put while failures that the rule
//     would count (probes c and d, the continuous traffic) are
//     processed;
//   - throughout, every alert of the alerts topic (read committed) is
//     there exactly once: ssh_bruteforce per source, distributed_bruteforce
//     per user of ten sources or more, host_failures for probe0 and probeb;
//     none missing, none duplicated, nothing else.
func TestReloadDropsRepartitionedRuleTwoInstances(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	file := filepath.Join(t.TempDir(), "rules.yaml")
	const byHost = `  - id: host_failures
    kind: threshold
    dataset: auth
    where:
      - {field: event_outcome, eq: failure}
    key: host_name
    aggregate: count
    window: 60s
    threshold: 8
    suppress: 10m
`
	write := func(withHost bool) {
		t.Helper()
		rs := rules.DefaultYAML()
		if withHost {
			rs = append(rs, byHost...)
		}
		if err := os.WriteFile(file, rs, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	rs, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(id string) Options {
		o := testOptions(t, b, "rt", "alerts")
		o.Rules, o.RulesFile = rs, file
		o.TransactionalID = "test-rt-" + id
		o.SessionTimeout = 6 * time.Second
		o.TransactionInterval = 250 * time.Millisecond
		return o
	}
	const topic = "rt-repartition-host_name"
	adm := kadm.NewClient(kafkatest.Client(t, b, kgo.MetadataMinAge(10*time.Millisecond)))

	// consumes says whether r's group client consumes topic.
	consumes := func(r *running) bool {
		r.svc.rp.mu.Lock()
		defer r.svc.rp.mu.Unlock()
		return r.svc.rp.cl != nil && slices.Contains(r.svc.rp.cl.GetConsumeTopics(), topic)
	}
	// settled waits until the group is stable with every auth partition
	// assigned, some to each instance, and instances x and y subscribe to
	// topic and are assigned and own nx and ny of its partitions (-1: at
	// least one; 0: neither subscribe nor own any), per the group's
	// description and the instances' own view.
	settled := func(x, y *running, nx, ny int, what string) {
		t.Helper()
		match := func(got, want int) bool { return got == want || want < 0 && got > 0 }
		deadline := time.Now().Add(time.Minute)
		for {
			state, desc := "?", ""
			ok := false
			if gs, err := adm.DescribeGroups(t.Context(), "rt"); err == nil && gs["rt"].Err == nil {
				g := gs["rt"]
				state, ok = g.State, g.State == "Stable" && len(g.Members) == 2 && len(g.AssignedPartitions()["auth"]) == 3
				for _, m := range g.Members {
					want := map[string]int{x.svc.o.TransactionalID: nx, y.svc.o.TransactionalID: ny}
					if m.InstanceID == nil {
						ok = false
						continue
					}
					n, known := want[*m.InstanceID]
					var subs []string
					if j, isC := m.Join.AsConsumer(); isC {
						subs = j.Topics
					}
					assigned := map[string]int{}
					if a, isC := m.Assigned.AsConsumer(); isC {
						for _, tp := range a.Topics {
							assigned[tp.Topic] = len(tp.Partitions)
						}
					}
					desc += fmt.Sprintf(" %s: subscribes %v, assigned %v;", *m.InstanceID, slices.Sorted(slices.Values(subs)), assigned)
					ok = ok && known && match(assigned[topic], n) && assigned["auth"] > 0 && slices.Contains(subs, topic) == (n != 0)
				}
			}
			ox, oy := x.svc.ownedPartitions(), y.svc.ownedPartitions()
			if ok && match(len(ox[topic]), nx) && match(len(oy[topic]), ny) && len(ox["auth"]) > 0 && len(oy["auth"]) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: group %s,%s owned %v and %v", what, state, desc, ox, oy)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	prod := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fail := func(p int32, sec int, host, user, ip string) kgo.Record {
		line := fmt.Sprintf("Mar  2 00:%02d:%02d %s sshd[1]: Failed password for %s from %s port 22 ssh2", sec/60, sec%60, host, user, ip)
		return kgo.Record{Topic: "auth", Partition: p, Key: []byte(ip), Value: []byte(line)}
	}
	srcIP := func(j int) string { return fmt.Sprintf("10.0.%d.%d", j/256, j%256) }
	// The producer: round sec (every 40 ms) is at second sec of event
	// time and holds the failures of the sources active then, and the
	// records injected since the last round. Stopped, it starts no new
	// source, ends the active ones and reports how many it started. It
	// starts none past second 540: every event of the test stays in one
	// 10-minute suppression period.
	type injection struct {
		recs func(sec int) []kgo.Record
		done chan []*kgo.Record // the records produced, with their offsets
	}
	inject, stop, started := make(chan injection), make(chan struct{}), make(chan int, 1)
	var stopOnce sync.Once
	halt := func() int {
		stopOnce.Do(func() { close(stop) })
		n := <-started
		started <- n
		return n
	}
	go func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		n, stopping, quit := 0, false, stop
		var pending []injection
		for sec := 0; ; sec++ {
			if !stopping && sec <= 540 {
				n = sec + 1 // source sec starts now
			}
			if stopping && sec-4 >= n && len(pending) == 0 {
				started <- n
				return
			}
			var recs []kgo.Record
			for j := max(0, sec-4); j < n; j++ {
				recs = append(recs, fail(int32(j%3), sec, fmt.Sprintf("h%d", j), fmt.Sprintf("user%d", j/12), srcIP(j)))
			}
			var injected [][]*kgo.Record
			for _, in := range pending {
				injected = append(injected, nil)
				for _, r := range in.recs(sec) {
					recs = append(recs, r)
					injected[len(injected)-1] = append(injected[len(injected)-1], nil)
				}
			}
			ptrs := make([]*kgo.Record, len(recs))
			for i := range recs {
				recs[i].Timestamp = time.Now()
				ptrs[i] = &recs[i]
			}
			if err := prod.ProduceSync(context.Background(), ptrs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
			}
			// The injected records are the last ones of the round.
			k := len(ptrs)
			for i := len(pending) - 1; i >= 0; i-- {
				k -= len(injected[i])
				pending[i].done <- ptrs[k : k+len(injected[i])]
			}
			pending = pending[:0]
		wait:
			for {
				select {
				case <-quit:
					stopping, quit = true, nil
				case in := <-inject:
					pending = append(pending, in)
				case <-tick.C:
					break wait
				}
			}
		}
	}()
	t.Cleanup(func() { halt() }) // before the cluster stops
	// send has the producer produce recs(sec) in its next round and
	// returns them as produced.
	send := func(recs func(sec int) []kgo.Record) []*kgo.Record {
		in := injection{recs, make(chan []*kgo.Record, 1)}
		inject <- in
		return <-in.done
	}
	// probe sends eight failed logins as user on host, from eight new
	// sources, on partitions parts of auth in turn.
	probes := 0
	probe := func(host, user string, parts []int32) []*kgo.Record {
		return send(func(sec int) []kgo.Record {
			out := make([]kgo.Record, 8)
			for i := range out {
				probes++
				out[i] = fail(parts[i%len(parts)], sec, host, user, fmt.Sprintf("192.0.2.%d", probes))
			}
			return out
		})
	}
	// committedPast waits until the group has committed offsets past
	// every record of recs.
	committedPast := func(recs []*kgo.Record, what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			c, err := adm.FetchOffsets(t.Context(), "rt")
			behind := ""
			for _, r := range recs {
				if o, _ := c.Lookup(r.Topic, r.Partition); err != nil || o.At <= r.Offset {
					behind = fmt.Sprintf("%s/%d committed %d, record at %d (%v)", r.Topic, r.Partition, o.At, r.Offset, err)
					break
				}
			}
			if behind == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, behind)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// ends are the end offsets of the dropped topic, as records so that
	// committedPast can wait for them to be consumed.
	ends := func() []*kgo.Record {
		t.Helper()
		l, err := adm.ListEndOffsets(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		var out []*kgo.Record
		l.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 {
				out = append(out, &kgo.Record{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset - 1})
			}
		})
		slices.SortFunc(out, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
		return out
	}
	// alerts counts the committed start alerts by rule and key, failing
	// on an id published twice or a rule and key alerted twice.
	alerts := func(what string) map[string]int {
		t.Helper()
		all := readAlerts(t, b, "alerts")
		byID(t, all)
		n := map[string]int{}
		for _, al := range all {
			if al.Type == alert.TypeStart {
				k := al.RuleID + "|" + strings.Join(al.KeyValues, ",")
				if n[k]++; n[k] == 2 {
					t.Errorf("%s: %s alerted twice", what, k)
				}
			}
		}
		return n
	}
	// fired waits until key has alerted.
	fired := func(key, what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for alerts(what)[key] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no alert %s", what, key)
			}
		}
	}

	a := start(t, opts("a"))
	b1 := start(t, opts("b"))
	settled(a, b1, -1, -1, "at start")
	all := []int32{0, 1, 2}
	probe("probe0", "p0", all)
	fired("host_failures|probe0", "before the reloads")

	// a drops the rule.
	write(false)
	if err := a.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if consumes(a) || !consumes(b1) {
		t.Fatalf("after a's reload: a consumes the topic %v, b %v; want false, true", consumes(a), consumes(b1))
	}
	settled(a, b1, 0, 3, "after a's reload")
	pa, pb := a.svc.ownedPartitions()["auth"], b1.svc.ownedPartitions()["auth"]
	// probea's failures are read by a, which forwards them nowhere; probeb's
	// by b, which forwards them to the topic, all of whose partitions it
	// reads: its windows of host_failures count them.
	recs := append(probe("probea", "pa", pa), probe("probeb", "pb", pb)...)
	fired("host_failures|probeb", "between the reloads")
	committedPast(recs, "probea and probeb processed")
	committedPast(ends(), "the topic consumed past probeb")
	if n := alerts("between the reloads")["host_failures|probea"]; n != 0 {
		t.Fatalf("between the reloads: host_failures fired for probea, whose failures only a, which dropped the rule, read")
	}
	if got := b1.svc.ownedPartitions()[topic]; len(got) != 3 {
		t.Fatalf("between the reloads: b owns partitions %v of the topic, want all", got)
	}

	// b drops it too.
	if err := b1.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if consumes(a) || consumes(b1) {
		t.Fatalf("after both reloads: a consumes the topic %v, b %v", consumes(a), consumes(b1))
	}
	settled(a, b1, 0, 0, "after both reloads")
	if gs, err := adm.DescribeGroups(t.Context(), "rt"); err != nil {
		t.Fatal(err)
	} else if g := gs["rt"]; g.Err != nil || len(g.AssignedPartitions()[topic]) != 0 {
		t.Fatalf("after both reloads: group %v assigns %v", g.Err, g.AssignedPartitions().Sorted())
	}
	// Once both instances have committed input produced after the
	// rebalance, the transaction the purge aborted is over: from then on
	// nothing is written to the topic.
	committedPast(probe("probec", "pc", all), "probec processed")
	before := ends()
	committedPast(probe("probed", "pd", all), "probed processed")
	if after := ends(); !slices.EqualFunc(before, after, func(x, y *kgo.Record) bool { return x.Partition == y.Partition && x.Offset == y.Offset }) {
		t.Fatalf("the topic's end offsets moved after both reloads, from %v to %v", offsets(before), offsets(after))
	}

	n := halt()
	// A last failed login on each partition of the user_name topic (by
	// the murmur2 hash of the user, as the service's producer partitions
	// them), so that each ends with committed forwards: one whose tail a
	// rebalance aborted costs waitCaughtUp a 3 s look per check.
	part := kgo.StickyKeyPartitioner(nil).ForTopic("rt-repartition-user_name")
	var tail []kgo.Record
	for i, seen := 0, map[int]bool{}; len(seen) < 3; i++ {
		u := fmt.Sprintf("tail%d", i)
		if p := part.Partition(&kgo.Record{Key: []byte(u)}, 3); !seen[p] {
			seen[p] = true
			tail = append(tail, fail(int32(p), n+4, "tail", u, fmt.Sprintf("192.0.2.%d", 200+p)))
		}
	}
	produce(t, prod, tail)
	waitCaughtUpExcept(t, b, "rt", time.Minute, topic)
	a.shutdown(t)
	b1.shutdown(t)
	want := map[string]int{"host_failures|probe0": 1, "host_failures|probeb": 1}
	users := map[int]int{}
	for j := range n {
		want["ssh_bruteforce|"+srcIP(j)] = 1
		users[j/12]++
	}
	for u, k := range users {
		if k >= 10 {
			want[fmt.Sprintf("distributed_bruteforce|user%d", u)] = 1
		}
	}
	got := alerts("at the end")
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			t.Errorf("%s: %d alerts, want %d", k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected alert %s (%d)", k, got[k])
		}
	}
	sa, sb := a.svc.Stats(), b1.svc.Stats()
	t.Logf("%d sources over %d s of event time, %d alerts; instance a: %d events, %d forwarded, %d repartitioned, %d alerts, %d duplicates, %d aborts, %d rebuilds, %d late; b: %d/%d/%d/%d/%d/%d/%d/%d",
		n, n+4, len(want), sa.Events, sa.Forwarded, sa.Repartitioned, sa.Alerts, sa.Duplicates, sa.Aborts, sa.Rebuilds, sa.Late,
		sb.Events, sb.Forwarded, sb.Repartitioned, sb.Alerts, sb.Duplicates, sb.Aborts, sb.Rebuilds, sb.Late)
}

// offsets lists records' partitions and offsets, for messages.
func offsets(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%d:%d", r.Partition, r.Offset)
	}
	return out
}
