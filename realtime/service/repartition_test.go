package service

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/alert"
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
