package alert

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestIDIsDeterministicAndDistinct(t *testing.T) {
	a := NewID("ssh_bruteforce", "10.0.0.1", TypeStart, 2833333)
	if a != NewID("ssh_bruteforce", "10.0.0.1", TypeStart, 2833333) || len(a) != 32 {
		t.Fatalf("id %q not stable", a)
	}
	for _, b := range []string{
		NewID("ssh_bruteforce", "10.0.0.2", TypeStart, 2833333),
		NewID("ssh_bruteforce", "10.0.0.1", TypeEnd, 2833333),
		NewID("ssh_bruteforce", "10.0.0.1", TypeStart, 2833334),
		NewID("ssh_bruteforc", "e10.0.0.1", TypeStart, 2833333),
	} {
		if a == b {
			t.Errorf("ids collide: %s", b)
		}
	}
}

func TestJSONFieldNames(t *testing.T) {
	loc := time.FixedZone("x", 3600)
	a := Alert{ID: "id", Kind: "alert", Type: TypeStart, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, loc),
		RuleID: "r", KeyFields: []string{"source_ip"}, KeyValues: []string{"1.2.3.4"}, Precision: Exact,
		Samples: []Ref{{Topic: "logs.auth", Partition: 3, Offset: 42, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, loc)}}}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"event_id":"id"`, `"@timestamp":"2026-01-02T02:04:05.000006Z"`, `"key_values":["1.2.3.4"]`,
		`"samples":[{"topic":"logs.auth","partition":3,"offset":42,"timestamp":"2026-01-02T02:04:05Z"}]`, `"value_precision":"exact"`, `"suppressed_count":0`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s:\n%s", want, s)
		}
	}
	var back Alert
	if err := json.Unmarshal(b, &back); err != nil || back.Samples[0].Offset != 42 || !back.Timestamp.Equal(a.Timestamp) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}
