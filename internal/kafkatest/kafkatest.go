// Package kafkatest starts an in-process Kafka-protocol cluster (kfake, via
// internal/broker) for a test, with topics created and cleanup registered.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/broker"
)

// Options configure a test cluster.
type Options struct {
	Topics     []string // default: the platform's topics
	Partitions int      // default 3
	DataDir    string   // keep the log on disk (restart tests)
	Extra      []kfake.Opt
}

// DefaultTopics are the platform's default topic names.
var DefaultTopics = []string{"auth", "firewall", "ids", "web", "alerts", "late-events", "quarantine"}

// Start starts a cluster that is closed when the test ends.
func Start(t testing.TB, o Options) *broker.Broker {
	t.Helper()
	if o.Topics == nil {
		o.Topics = DefaultTopics
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Listen: "127.0.0.1:0", Topics: o.Topics, Partitions: o.Partitions, DataDir: o.DataDir, Extra: o.Extra})
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Client returns a franz-go client for the cluster, closed with the test.
func Client(t testing.TB, b *broker.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr())}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}
