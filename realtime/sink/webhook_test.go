package sink

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
)

func testAlert(id string) alert.Alert {
	return alert.Alert{ID: id, Kind: "alert", Type: alert.TypeStart, RuleID: "ssh_bruteforce", KeyFields: []string{"source_ip"}, KeyValues: []string{"198.18.0.1"},
		Timestamp: time.Date(2026, 3, 2, 0, 1, 2, 0, time.UTC), Value: 7, Threshold: 5}
}

func readDeadLetters(t *testing.T, path string) []deadLetterRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadLetterRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r deadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead letter line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestWebhookRetriesThenDelivers: the endpoint fails twice, then accepts;
// the alert arrives once with the bearer token and its JSON intact.
func TestWebhookRetriesThenDelivers(t *testing.T) {
	var calls atomic.Int32
	got := make(chan alert.Alert, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad headers", http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var a alert.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- a
	}))
	defer srv.Close()
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	w, err := NewWebhook(WebhookOptions{URL: srv.URL, Token: "s3cret", Backoff: time.Millisecond, MaxAttempts: 5, DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	w.Send(testAlert("a1"))
	select {
	case a := <-got:
		if a.ID != "a1" || a.RuleID != "ssh_bruteforce" || a.KeyValues[0] != "198.18.0.1" || a.Value != 7 {
			t.Errorf("delivered %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alert not delivered")
	}
	for deadline := time.Now().Add(5 * time.Second); w.Stats().Delivered == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if s := w.Stats(); s.Delivered != 1 || s.Retries != 2 || s.DeadLetter != 0 || calls.Load() != 3 {
		t.Errorf("stats %+v after %d calls, want 1 delivered after 2 retries (3 calls)", s, calls.Load())
	}
	if _, err := os.Stat(dl); !os.IsNotExist(err) {
		t.Errorf("dead-letter file written for a delivered alert: %v", err)
	}
}

// TestWebhookDeadLettersAfterMaxAttempts: an endpoint that always fails
// gets exactly MaxAttempts POSTs per alert, then the alert is in the
// dead-letter file with the reason.
func TestWebhookDeadLettersAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	w, err := NewWebhook(WebhookOptions{URL: srv.URL, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxAttempts: 3, DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	w.Send(testAlert("a1"))
	w.Send(testAlert("a2"))
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().DeadLetter < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() != 6 {
		t.Errorf("%d POSTs, want 3 per alert", calls.Load())
	}
	recs := readDeadLetters(t, dl)
	if len(recs) != 2 || recs[0].Alert.ID != "a1" || recs[1].Alert.ID != "a2" {
		t.Fatalf("dead letters %+v", recs)
	}
	if recs[0].Reason != "sink: webhook answered 500 Internal Server Error" {
		t.Errorf("reason %q", recs[0].Reason)
	}
}

// TestWebhookQueueOverflowNeverBlocks: with a stuck endpoint and a queue
// of 2, Send returns at once; alerts beyond the queue (and the one in
// flight) are dead-lettered as overflow, the queued ones at shutdown.
func TestWebhookQueueOverflowNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		http.Error(w, "slow", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	defer once.Do(func() { close(release) })
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	w, err := NewWebhook(WebhookOptions{URL: srv.URL, Queue: 2, MaxAttempts: 1, DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	w.Send(testAlert("first")) // taken by the worker, stuck in POST
	for len(w.queue) != 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for _, id := range []string{"q1", "q2", "o1", "o2", "o3"} {
		w.Send(testAlert(id))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send blocked for %v", d)
	}
	if s := w.Stats(); s.Overflow != 3 || s.DeadLetter != 3 {
		t.Errorf("stats %+v, want 3 overflows dead-lettered", s)
	}
	once.Do(func() { close(release) })
	cancel()
	<-done
	reasons := map[string]string{}
	for _, r := range readDeadLetters(t, dl) {
		reasons[r.Alert.ID] = r.Reason
	}
	for _, id := range []string{"o1", "o2", "o3"} {
		if reasons[id] != "queue full" {
			t.Errorf("%s: reason %q, want queue full", id, reasons[id])
		}
	}
	// The queued ones are either dead-lettered at shutdown or after their
	// one failed attempt; none is lost.
	for _, id := range []string{"first", "q1", "q2"} {
		if reasons[id] == "" {
			t.Errorf("%s lost: not delivered and not dead-lettered", id)
		}
	}
}
