package gen

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestCutShortInstancesAreInformation stops an unbounded run in the middle
// of attacks: the instances the stop cut short are in Truth().Skipped with
// that reason and logged at INFO (every stopped run has some), not WARN,
// which stays for instances that cannot fit the rate or the run.
func TestCutShortInstancesAreInformation(t *testing.T) {
	var logs bytes.Buffer
	g, err := New(Options{Seed: 1, Rate: 2000, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	tr, err := g.Run(ctx, SinkFunc(func(context.Context, *Line) error {
		if n++; n == 2000*70 { // 70 s of event time: attacks started at 60 s are under way
			cancel()
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	cut := 0
	for _, s := range tr.Skipped {
		if strings.Contains(s.Reason, "cut short by the end of the run") {
			cut++
		}
	}
	if cut == 0 {
		t.Fatalf("no instance cut short by the stop: %+v", tr.Skipped)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "cut short") != strings.Contains(line, "level=INFO") {
			t.Errorf("cut-short instances log at INFO, the others at WARN: %s", line)
		}
	}
}
