package obs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerHealthReadyMetrics(t *testing.T) {
	reg := NewRegistry()
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_test_events_total", Help: "test"})
	reg.MustRegister(events)
	events.Add(42)
	logger, _ := NewLogger(io.Discard, "text", "info")
	s, err := NewServer("127.0.0.1:0", reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	var brokerUp atomic.Bool
	s.AddCheck("kafka", func(context.Context) error {
		if !brokerUp.Load() {
			return errors.New("no broker answered")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "kafka: no broker answered") {
		t.Errorf("readyz before ready = %d %q", code, body)
	}
	brokerUp.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "kafka: ok\n" {
		t.Errorf("readyz when ready = %d %q", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "lambdalog_test_events_total 42") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics missing counters:\n%.400s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) || !strings.Contains(out, `"k":1`) {
		t.Errorf("json logger output %q", out)
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("xml format accepted")
	}
}
