package realtime

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

// laneRules are three threshold-2 rules on one dataset, told apart by
// their key, as the service puts them in lanes: by_ip on the source
// topics, by_user and by_host on two repartition topics.
const laneRules = `version: 1
rules:
  - id: by_ip
    kind: threshold
    severity: low
    dataset: auth
    key: source_ip
    aggregate: count
    window: 60s
    threshold: 2
  - id: by_user
    kind: threshold
    severity: low
    dataset: auth
    key: user_name
    aggregate: count
    window: 60s
    threshold: 2
  - id: by_host
    kind: threshold
    severity: low
    dataset: auth
    key: host_name
    aggregate: count
    window: 60s
    threshold: 2
`

// TestLanesBeyondOne feeds each event to lanes 0 to 4 and -1, with the
// rules in lanes 0, 2 and 3 (lane 1 empty): each rule counts it once, from
// its own lane, and the lanes without rules feed none.
func TestLanesBeyondOne(t *testing.T) {
	rs, err := rules.Parse([]byte(laneRules))
	if err != nil {
		t.Fatal(err)
	}
	lane := map[string]int{"by_ip": 0, "by_user": 2, "by_host": 3}
	e, err := New(rs, Options{Lane: func(r *rules.Rule) int { return lane[r.ID] }})
	if err != nil {
		t.Fatal(err)
	}
	var out []alert.Alert
	fired := map[string][]int{} // rule -> lanes it fired in
	for i := range 2 {
		rec := &schemas.Auth{Base: schemas.Common{Timestamp: at(time.Duration(i) * time.Second), Host: "db1"}, SourceIP: "1.1.1.1", User: "root", Outcome: "failure"}
		for l := -1; l <= 4; l++ {
			n := len(out)
			out, _ = e.ProcessLane(rec, Source{Topic: "logs", Offset: int64(i)}, l, rec.EventTime(), out)
			for _, a := range out[n:] {
				fired[a.RuleID] = append(fired[a.RuleID], l)
			}
		}
	}
	want := map[string][]int{"by_ip": {0}, "by_user": {2}, "by_host": {3}}
	if !maps.EqualFunc(fired, want, slices.Equal) {
		t.Fatalf("fired in lanes %v, want %v", fired, want)
	}
	for _, a := range out {
		if a.EventCount != 2 {
			t.Fatalf("%s counted %d events, want 2", a.RuleID, a.EventCount)
		}
	}

	// A lane out of range refuses the rules and leaves them in force.
	lane["by_host"] = -1
	if err := e.SetRules(rs); err == nil || !strings.Contains(err.Error(), "by_host") {
		t.Fatalf("negative lane: err %v", err)
	}
	lane["by_host"] = MaxLanes
	if err := e.SetRules(rs); err == nil {
		t.Fatal("lane MaxLanes accepted")
	}
	if got := len(e.plans); got != 4 {
		t.Fatalf("%d lanes after refused rules, want 4", got)
	}
}
