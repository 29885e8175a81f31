package gen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// TruthRecord is one attack instance and the detection it must trip. It is
// written as one JSON line of the ground-truth file.
type TruthRecord struct {
	Attack string `json:"attack"`
	Rule   string `json:"rule"`
	// Key is the value of the rule's key column (an IP, or a user name
	// for distributed_bruteforce).
	Key string `json:"key"`
	// Start and End are the event times of the first and last line of the
	// attack (millisecond precision, UTC).
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Events int       `json:"events"`
	// Dataset is the dataset of the rule's key column.
	Dataset string `json:"dataset"`
	// ThresholdCrossedAt is the event time at which the rule's condition
	// first holds.
	ThresholdCrossedAt time.Time `json:"threshold_crossed_at"`
	// Instance numbers the attack instances of the run from 1.
	Instance int `json:"instance"`
}

// Truth is the ground truth of a run plus its totals.
type Truth struct {
	// Records, sorted by start time, rule and key.
	Records []TruthRecord
	// Skipped lists instances that were planned but could not be generated
	// or did not reach their threshold; they are not in Records.
	Skipped []Skip
	// Events emitted, per dataset, and of them attack lines.
	Events       int64
	PerDataset   [NumDatasets]int64
	AttackEvents int64
	// Total is the planned number of events, -1 when unbounded.
	Total int64
}

func (t *Truth) sort() {
	slices.SortFunc(t.Records, func(a, b TruthRecord) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// WriteJSONL writes the records as JSON lines.
func (t *Truth) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range t.Records {
		if err := enc.Encode(&t.Records[i]); err != nil {
			return fmt.Errorf("gen: write truth: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gen: write truth: %w", err)
	}
	return nil
}

// ReadTruth reads a ground-truth file written by WriteJSONL.
func ReadTruth(r io.Reader) ([]TruthRecord, error) {
	var out []TruthRecord
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var rec TruthRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("gen: truth line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gen: read truth: %w", err)
	}
	return out, nil
}
