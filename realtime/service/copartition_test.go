package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// TestCopartitioningCheckedAtStart: the default ids_then_login rule joins
// the ids and auth topics on the source address, so a service refuses to
// start when they have different partition counts (its instances would
// see the two steps of one address in different processes and miss the
// sequence), and starts with a warning when a single-instance operator
// allows it.
func TestCopartitioningCheckedAtStart(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth", "firewall", "web", "alerts", "late-events"}, Partitions: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(kafkatest.Client(t, b)).CreateTopic(ctx, 2, 1, nil, "ids"); err != nil {
		t.Fatal(err)
	}

	o := testOptions(t, b, "copart", "alerts")
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "co-partitioned") || !strings.Contains(err.Error(), "ids_then_login") ||
		!strings.Contains(err.Error(), "allow_uncopartitioned") {
		t.Fatalf("Run with ids (2 partitions) and auth (3): %v; want a refusal naming the rule, the topics and the override", err)
	}

	o.AllowUncopartitioned = true
	if svc, err = New(o); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	// It runs until it is stopped.
	select {
	case err := <-done:
		t.Fatalf("with AllowUncopartitioned the service stopped at once: %v", err)
	case <-time.After(2 * time.Second):
	}
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
