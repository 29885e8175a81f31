// Package alert is the speed layer's alert record: what a rule reports
// when it fires (or resolves), with a deterministic id so that a replay of
// the same input cannot mint a second alert. Field names follow ECS
// (flattened with '_' like the event model) and OCSF where ECS has none;
// docs/alerts.md is the schema reference.
package alert

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event types (ECS event.type): an alert opens with start; a resolve alert
// closes it with end.
const (
	TypeStart = "start"
	TypeEnd   = "end"
)

// Precision of a value.
const (
	Exact    = "exact"
	Estimate = "estimate"
)

// Ref references one event by where it was read.
type Ref struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
}

// Alert is one alert or resolve record.
type Alert struct {
	// ID is deterministic: see NewID.
	ID string `json:"event_id"`
	// Kind is always "alert" (ECS event.kind).
	Kind string `json:"event_kind"`
	// Type is TypeStart for an alert, TypeEnd for a resolve.
	Type string `json:"event_type"`
	// Timestamp is the event time the alert is about: the triggering
	// event for alerts, the window end for resolves.
	Timestamp   time.Time `json:"@timestamp"`
	RuleID      string    `json:"rule_id"`
	RuleName    string    `json:"rule_name"`
	RuleKind    string    `json:"rule_category"`
	Description string    `json:"rule_description,omitempty"`
	// Severity is the rule's severity name, SeverityID its OCSF id (1-5).
	Severity   string `json:"severity"`
	SeverityID int    `json:"severity_id"`
	// Datasets the rule read.
	Datasets []string `json:"event_dataset"`
	// KeyFields and KeyValues are the grouping columns and their values.
	KeyFields []string `json:"key_fields"`
	KeyValues []string `json:"key_values"`
	// WindowStart and WindowEnd bound the window that crossed the
	// threshold, [start, end); for sequences, the first step's event time
	// and that time plus the rule's within.
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Aggregate is count, sum, min, max, distinct or sequence;
	// AggregateField the column aggregated.
	Aggregate      string  `json:"aggregate"`
	AggregateField string  `json:"aggregate_field,omitempty"`
	Value          float64 `json:"value"`
	Threshold      float64 `json:"threshold"`
	// Precision is Exact, or Estimate for a HyperLogLog distinct count.
	Precision string `json:"value_precision"`
	// EventCount is the number of events in the window.
	EventCount int64 `json:"event_count"`
	// FirstEvent and LastEvent are the event times of the window's first
	// and last events (ECS event.start/event.end).
	FirstEvent time.Time `json:"event_start"`
	LastEvent  time.Time `json:"event_end"`
	// Samples are up to N of the window's events, oldest first.
	Samples []Ref `json:"samples"`
	// Suppressed counts the re-triggers swallowed by suppression since the
	// previous alert of this rule and key.
	Suppressed int64 `json:"suppressed_count"`
	// GeneratedAt is the engine caller's clock when the alert was made
	// (ECS event.created).
	GeneratedAt time.Time `json:"event_created"`
	// Resolves is, on a resolve record, the id of the alert it closes.
	Resolves string `json:"resolves,omitempty"`
}

// NewID derives an alert id from the rule, the key (values joined by
// 0x1f), the record type and the suppression period the trigger falls in
// (trigger event time / suppression period). Everything that can differ in
// a replay (arrival order within the period, processing time) is left out,
// so re-processing the same input yields the same id.
func NewID(ruleID, key, typ string, period int64) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{ruleID, key, typ} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(period))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// MarshalJSON encodes times in UTC.
func (a Alert) MarshalJSON() ([]byte, error) {
	type plain Alert
	p := plain(a)
	for _, t := range []*time.Time{&p.Timestamp, &p.WindowStart, &p.WindowEnd, &p.FirstEvent, &p.LastEvent, &p.GeneratedAt} {
		*t = t.UTC()
	}
	p.Samples = make([]Ref, len(a.Samples))
	for i, r := range a.Samples {
		r.Timestamp = r.Timestamp.UTC()
		p.Samples[i] = r
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("alert: encode %s: %w", a.ID, err)
	}
	return b, nil
}
