package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// TestConsumeExitsWhenItFails makes every HDFS complete fail, so the
// consumer's first commit fails for good: the process must exit non-zero
// with the error, not linger with its metrics server up (found by the soak,
// deploy/soak: a failed consumer left its group but never exited, so no
// restart policy brought it back and, when all had failed, nothing
// consumed).
func TestConsumeExitsWhenItFails(t *testing.T) {
	srv := hdfstest.Start(t)
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth", "firewall", "ids", "web"}, Partitions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := lambdalog(ctx, t, "consume", "--brokers", b.Addr(), "--dataset", srv.URL()+"lambdalog", "--http", "127.0.0.1:0",
		"--group", "exit", "--set", "dataset.roll_interval=200ms", "--set", "dataset.hdfs.user=test", "--log-level", "info")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Once it owns its partitions, every HDFS complete fails: the next
	// commit cannot succeed.
	for strings.Count(stderr.String(), "partition claimed") < 4 {
		select {
		case err := <-done:
			t.Fatalf("consume exited before claiming its partitions: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv.FailCall("complete", 0, hdfstest.ExcIO)
	cl := kafkatest.Client(t, b)
	var recs []*kgo.Record
	for i := 0; i < 100; i++ {
		line := fmt.Sprintf("<38>1 2026-11-23T10:00:%02d.000Z host sshd 100 - - Failed password for user%d from 198.18.0.%d port 22 ssh2", i%60, i, i)
		recs = append(recs, &kgo.Record{Topic: "auth", Value: []byte(line)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("consume exited 0 although no commit could succeed\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "complete") {
			t.Errorf("exit without the commit error:\n%s", stderr.String())
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("consume still running 45 s after its commits started failing for good\n%s", stderr.String())
	}
}
