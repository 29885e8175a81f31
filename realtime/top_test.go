package realtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/rules"
)

// TestTopAndWindow checks the live views: the largest current windows of
// a rule, in order, and a window queried by its start.
func TestTopAndWindow(t *testing.T) {
	rs, err := rules.Parse([]byte(`version: 1
rules:
  - id: fails
    kind: threshold
    aggregate: count
    dataset: auth
    where: [{field: event_outcome, eq: failure}]
    key: source_ip
    window: 60s
    threshold: 1000
  - id: seq
    kind: sequence
    key: source_ip
    within: 60s
    steps: [{dataset: ids}, {dataset: auth}]
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Assign("auth", 0, at(0))
	// Source i fails i times (1..9) inside the first minute.
	var out = e.Advance(at(0), nil)
	for i := 1; i <= 9; i++ {
		for j := 0; j < i; j++ {
			out, _ = e.Process(authEv(time.Duration(i*j)*time.Second/4, fmt.Sprintf("10.0.0.%d", i), "u", "failure"), Source{Topic: "auth", Offset: int64(i*10 + j)}, at(0), out)
		}
	}
	if len(out) != 0 {
		t.Fatalf("unexpected alerts %v", out)
	}
	top, ok := e.Top("fails", 3)
	if !ok {
		t.Fatal("rule fails not found")
	}
	var got []string
	for _, kv := range top {
		got = append(got, fmt.Sprintf("%s=%g", kv.Key, kv.Value.V))
	}
	if want := "[10.0.0.9=9 10.0.0.8=8 10.0.0.7=7]"; fmt.Sprint(got) != want {
		t.Fatalf("top 3 = %v, want %s", got, want)
	}
	if all, _ := e.Top("fails", 100); len(all) != 9 {
		t.Fatalf("top 100 has %d keys, want 9", len(all))
	}
	if _, ok := e.Top("seq", 3); ok {
		t.Error("a sequence rule has no window aggregate to rank")
	}
	if _, ok := e.Top("nope", 3); ok {
		t.Error("unknown rule reported ok")
	}
	v, ok := e.Window("fails", "10.0.0.5", at(0))
	if !ok || v.V != 5 || v.N != 5 {
		t.Fatalf("window of 10.0.0.5 at 0 = %+v %v, want 5 events", v, ok)
	}
}
