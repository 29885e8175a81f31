package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// TestConsumeAppliesMaxLineSize: the consumer quarantines a line over
// topics.max_line_size with reason line_too_long, counted, even when the
// limit is below the parser's built-in 64 KiB; a line under it is not
// refused for its length.
func TestConsumeAppliesMaxLineSize(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 1})
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr()}
	cfg.Topics.MaxLineSize = 400
	cfg.Dataset.URL = "file://" + t.TempDir()
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	c, fsys, err := newConsumer(ctx, e, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ok := "Mar  2 00:00:01 host sshd[1]: Failed password for root from 198.18.0.1 port 22 ssh2"
	long := ok + " " + strings.Repeat("A", 500)
	cl := kafkatest.Client(t, b)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "auth", Value: []byte(ok)}, &kgo.Record{Topic: "auth", Value: []byte(long)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := quarantinedByReason(t, reg)
		if got["line_too_long"] == 1 {
			if len(got) != 1 {
				t.Errorf("quarantined %v, want only the long line", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("quarantined %v after 30 s, want line_too_long 1", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func quarantinedByReason(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "lambdalog_consumer_quarantined_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && m.GetCounter().GetValue() > 0 {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
