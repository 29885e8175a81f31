package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRestarterRidesOutFailures: a consumer that fails twice and then
// runs is restarted twice, with readiness down only while it waits; one
// that keeps failing is given up after its attempts, returning the error;
// with no attempts the first failure ends it.
func TestRestarterRidesOutFailures(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	boom := errors.New("hdfs: complete failed")

	reg := prometheus.NewRegistry()
	r := newRestarter(log, 5, time.Millisecond, reg)
	runs := 0
	var readyDuringRun []error
	err := r.run(context.Background(), func(context.Context) error {
		runs++
		readyDuringRun = append(readyDuringRun, r.check(context.Background()))
		if runs <= 2 {
			return boom
		}
		return nil
	})
	if err != nil || runs != 3 {
		t.Fatalf("run = %v after %d runs, want nil after 3", err, runs)
	}
	var m dto.Metric
	if err := r.restarts.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Errorf("restarts = %v, want 2", got)
	}
	for i, e := range readyDuringRun {
		if e != nil {
			t.Errorf("run %d: not ready while running: %v", i+1, e)
		}
	}

	r = newRestarter(log, 2, time.Millisecond, nil)
	runs = 0
	err = r.run(context.Background(), func(context.Context) error { runs++; return boom })
	if !errors.Is(err, boom) || runs != 3 {
		t.Errorf("lasting failure: %v after %d runs, want the error after 3 (1 + 2 restarts)", err, runs)
	}

	r = newRestarter(log, 0, time.Millisecond, nil)
	runs = 0
	err = r.run(context.Background(), func(context.Context) error { runs++; return boom })
	if !errors.Is(err, boom) || runs != 1 {
		t.Errorf("restart_attempts 0: %v after %d runs, want the error after 1", err, runs)
	}
}

// TestRestarterStopsCleanlyWhileWaiting: a stop during the back-off ends
// the command without another run and without an error (the failed run
// left nothing buffered), and readiness is down during the wait.
func TestRestarterStopsCleanlyWhileWaiting(t *testing.T) {
	r := newRestarter(slog.New(slog.NewTextHandler(io.Discard, nil)), 5, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	runs := 0
	go func() {
		done <- r.run(ctx, func(context.Context) error { runs++; return errors.New("broker gone") })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for r.check(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("readiness never went down while waiting to restart")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil || runs != 1 {
			t.Errorf("stop while waiting: %v after %d runs, want nil after 1", err, runs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stop during the back-off did not end the run")
	}
	if err := r.check(context.Background()); err != nil {
		t.Errorf("still not ready after the stop: %v", err)
	}
}
