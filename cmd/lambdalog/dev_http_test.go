package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/obs"
)

// TestDevHTTPServersHaveProductionLimits starts dev's metrics port and
// speed-layer port as runDev does (no broker needed: the HTTP side does
// not consume) and checks that both are internal/httpserve servers with
// the production commands' limits: a request body over 1 KiB is refused
// with 413, a client past the burst gets 429 with Retry-After, both are
// counted on /metrics, a client that never finishes its headers is cut
// by the read-header timeout, and a configured realtime.http_token is
// required on the speed layer's API.
func TestDevHTTPServersHaveProductionLimits(t *testing.T) {
	const tok = "dev-rt-tok-never-logged"
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // never dialled by the HTTP side
	cfg.Realtime.Minutes = false
	cfg.Realtime.HTTPToken = tok
	logs := &syncBuffer{}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil)), stdout: io.Discard, stderr: io.Discard}
	reg := obs.NewRegistry()
	rt, err := newRealtime(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.close)
	ctx, cancel := context.WithCancel(context.Background())
	checks := map[string]obs.Check{"always": func(context.Context) error { return nil }}
	metricsURL, metricsWait, err := devMetricsHTTP(ctx, e, reg, checks)
	if err != nil {
		t.Fatal(err)
	}
	rtURL, rtWait, err := devRealtimeHTTP(ctx, e, rt, reg, checks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		for _, wait := range []func() error{metricsWait, rtWait} {
			if err := wait(); err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	cl := &http.Client{Timeout: 10 * time.Second}

	// Slow-loris first, on both ports at once (the read-header timeout is
	// the production 5 s), while the other checks run.
	cut := make(chan error, 2)
	for _, base := range []string{metricsURL, rtURL} {
		go func() { cut <- slowHeaders(base, 9*time.Second) }()
	}

	// The speed layer's API needs the configured token; health does not.
	if resp, _ := get(t, cl, rtURL+"/api/windows/top", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dev realtime /api without the token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, cl, rtURL+"/api/windows/top", tok); resp.StatusCode != http.StatusOK {
		t.Errorf("dev realtime /api with the token: %d, want 200", resp.StatusCode)
	}

	for _, c := range []struct {
		name, base string
		burst      int
	}{{"metrics", metricsURL, cfg.Metrics.RateBurst}, {"realtime", rtURL, cfg.Realtime.HTTPRateBurst}} {
		req, _ := http.NewRequest(http.MethodPost, c.base+"/healthz", strings.NewReader(strings.Repeat("x", 2<<10)))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: a 2 KiB body: %d, want 413", c.name, resp.StatusCode)
		}
		// One client asking twice its burst in a row must be refused
		// (the refill during the loop is far less than a burst).
		limited := 0
		for range 2 * c.burst {
			resp, _ := get(t, cl, c.base+"/healthz", "")
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
				limited++
			}
		}
		if limited == 0 {
			t.Errorf("%s: %d requests at once, over a burst of %d: never 429 with Retry-After", c.name, 2*c.burst, c.burst)
		}
	}

	// Both refusals are counted on dev's metrics port, by server.
	time.Sleep(1100 * time.Millisecond) // a token back for this client
	resp, body := get(t, cl, metricsURL+"/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`lambdalog_http_rejected_total{reason="body_too_large",server="metrics"} 1`,
		`lambdalog_http_rejected_total{reason="body_too_large",server="realtime"} 1`,
		`lambdalog_http_rejected_total{reason="unauthorized",server="realtime"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, name := range []string{"metrics", "realtime"} {
		if !strings.Contains(body, `lambdalog_http_rejected_total{reason="rate_limit",server="`+name+`"}`) ||
			strings.Contains(body, `lambdalog_http_rejected_total{reason="rate_limit",server="`+name+`"} 0`) {
			t.Errorf("/metrics counts no rate_limit refusal of %s", name)
		}
	}

	for range 2 {
		if err := <-cut; err != nil {
			t.Error(err)
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the realtime token reached the logs")
	}
}

// slowHeaders opens a connection to base, sends half a request's headers
// and no more, and returns nil when the server closes the connection
// within limit (its read-header timeout), an error otherwise.
func slowHeaders(base string, limit time.Duration) error {
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		return err
	}
	conn.SetReadDeadline(start.Add(limit))
	_, err = bufio.NewReader(conn).ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New(base + ": a client that never finished its headers was still connected after " + limit.String())
	}
	// Closed (EOF, or a 408 answer then EOF): the timeout cut it.
	return nil
}
