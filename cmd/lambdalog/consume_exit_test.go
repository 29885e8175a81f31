package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
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
		"--group", "exit", "--set", "dataset.roll_interval=200ms", "--set", "dataset.hdfs.user=test", "--log-level", "info",
		// No in-process restart: the failure must end the process. (A
		// restarted consumer, like a restarted process, then retries its
		// claims until HDFS answers; TestConsumeRidesOutHDFSOutageInProcess
		// covers that path.)
		"--set", "consumer.restart_attempts=0")
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
	produceSSHFailures(ctx, t, b, 100)
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("consume exited 0 although no commit could succeed\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "complete") {
			t.Errorf("exit without the commit error:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String(), "restarting it in the process") {
			t.Errorf("restarted in the process with consumer.restart_attempts=0:\n%s", stderr.String())
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("consume still running 45 s after its commits started failing for good\n%s", stderr.String())
	}
}

// TestConsumeRidesOutHDFSOutageInProcess: every HDFS complete fails until
// the consumer has failed and restarted itself once; then HDFS heals. The
// process must not exit, and every produced record must end up in the
// dataset exactly once (the soak used to see consumers exit and be
// restarted by it on 3 s outages).
func TestConsumeRidesOutHDFSOutageInProcess(t *testing.T) {
	srv := hdfstest.Start(t)
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth", "firewall", "ids", "web"}, Partitions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	datasetURL := srv.URL() + "lambdalog"
	cmd := lambdalog(ctx, t, "consume", "--brokers", b.Addr(), "--dataset", datasetURL, "--http", "127.0.0.1:0",
		"--group", "outage", "--set", "dataset.roll_interval=200ms", "--set", "dataset.hdfs.user=test", "--log-level", "info")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			select {
			case err := <-done:
				t.Fatalf("consume exited (%v) while waiting for %s\n%s", err, what, stderr.String())
			case <-ctx.Done():
				cmd.Process.Kill()
				t.Fatalf("timed out waiting for %s\n%s", what, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor("the claims", func() bool { return strings.Count(stderr.String(), "partition claimed") >= 4 })
	fault := srv.FailCall("complete", 0, hdfstest.ExcIO)
	const total = 100
	produceSSHFailures(ctx, t, b, total)
	waitFor("an in-process restart", func() bool { return strings.Contains(stderr.String(), "restarting it in the process") })
	// While HDFS refuses, the consumer waits to restart and then retries
	// claims it cannot make: /readyz must say so, not answer ready.
	m := regexp.MustCompile(`metrics on (http://[0-9.:]+)/metrics`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the output\n%s", stderr.String())
	}
	readyz := func() int {
		resp, err := http.Get(m[1] + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor("/readyz to report the outage", func() bool { return readyz() == http.StatusServiceUnavailable })
	time.Sleep(3 * time.Second) // past the back-off: the restarted consumer's claims fail too
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage, after the restart: %d, want 503\n%s", code, stderr.String())
	}
	fault.Remove()
	waitFor("/readyz ready again", func() bool { return readyz() == http.StatusOK })

	fsys, err := storage.Open(ctx, datasetURL, storage.Options{User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	waitFor("every record committed", func() bool {
		st, err := consumer.ReadState(ctx, fsys)
		if err != nil {
			return false
		}
		var next int64
		for _, p := range st.Partitions {
			next += p.Next
		}
		return next == total
	})
	rep, err := consumer.Verify(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, p := range rep.Partitions {
		rows += p.Rows
	}
	if !rep.OK || rows != total {
		t.Fatalf("after the outage: ok=%v rows=%d, want %d exactly once: %+v", rep.OK, rows, total, rep)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consume did not stop cleanly after riding out the outage: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("consume did not stop on SIGINT")
	}
}

// produceSSHFailures produces n sshd failure lines to the auth topic.
func produceSSHFailures(ctx context.Context, t *testing.T, b *broker.Broker, n int) {
	t.Helper()
	cl := kafkatest.Client(t, b)
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		line := fmt.Sprintf("<38>1 2026-11-23T10:00:%02d.000Z host sshd 100 - - Failed password for user%d from 198.18.0.%d port 22 ssh2", i%60, i, i)
		recs = append(recs, &kgo.Record{Topic: "auth", Value: []byte(line)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
