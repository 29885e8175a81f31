package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/httpserve/testcert"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

// startRealtimeHTTP serves the speed layer's port exactly as `lambdalog
// realtime` wires it (service routes, health, metrics, httpserve), without
// consuming from Kafka: the HTTP side needs no broker.
func startRealtimeHTTP(t *testing.T, cfg *config.Config) (base string, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil)), stdout: io.Discard, stderr: io.Discard}
	reg := obs.NewRegistry()
	rt, err := newRealtime(e, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := obs.NewServer("127.0.0.1:0", reg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/api/", rt.svc.Handler())
	hs, err := realtimeHTTP(e, rt, srv.Handler(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ctx, srv.Listener()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return hs.Scheme() + "://" + srv.Addr(), logs
}

func get(t *testing.T, cl *http.Client, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, "" // a stream: the caller keeps it open
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestRealtimeHTTPTokenTLSAndSSECap: with realtime.http_token and TLS
// configured, the speed layer's API and alert stream refuse a missing or
// wrong token (401), serve the right one over HTTPS, keep /healthz and
// /metrics open, refuse an alert stream client over
// realtime.sse_max_clients (503), count every refusal by reason on
// /metrics, and never log the token.
func TestRealtimeHTTPTokenTLSAndSSECap(t *testing.T) {
	const tok = "rt-tok-5150-never-logged"
	certFile, keyFile, pool := testcert.Write(t)
	cfg := config.Default()
	cfg.Realtime.HTTPToken = tok
	cfg.Realtime.HTTPTLSCertFile, cfg.Realtime.HTTPTLSKeyFile = certFile, keyFile
	cfg.Realtime.SSEMaxClients = 1
	base, logs := startRealtimeHTTP(t, cfg)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %s, want https", base)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	for _, path := range []string{"/api/windows/top", "/api/alerts/stream"} {
		for _, bad := range []string{"", "wrong", tok + "x"} {
			if resp, _ := get(t, cl, base+path, bad); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %d, want 401", path, bad, resp.StatusCode)
			}
		}
	}
	if resp, body := get(t, cl, base+"/api/windows/top", tok); resp.StatusCode != 200 || !strings.Contains(body, `"windows":[]`) {
		t.Errorf("top with the token: %d %s", resp.StatusCode, body)
	}
	stream, _ := get(t, cl, base+"/api/alerts/stream", tok)
	if stream.StatusCode != 200 {
		t.Fatalf("stream with the token: %d", stream.StatusCode)
	}
	defer stream.Body.Close()
	if resp, _ := get(t, cl, base+"/api/alerts/stream", tok); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second stream over sse_max_clients=1: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := get(t, cl, base+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz without a token: %d", resp.StatusCode)
	}
	resp, metrics := get(t, cl, base+"/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics without a token: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`lambdalog_http_rejected_total{reason="unauthorized",server="realtime"} 6`,
		`lambdalog_http_rejected_total{reason="sse_clients",server="realtime"} 1`,
		`lambdalog_realtime_sse_rejected_total 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(logs.String(), "reason=unauthorized") || !strings.Contains(logs.String(), "reason=sse_clients") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token reached the logs:\n%s", logs.String())
	}
}

// TestRealtimeHTTPRateLimit: over realtime.http_rate_burst requests at
// once, a client gets 429 with Retry-After, counted.
func TestRealtimeHTTPRateLimit(t *testing.T) {
	cfg := config.Default()
	cfg.Realtime.HTTPRateLimit, cfg.Realtime.HTTPRateBurst = 1, 3
	base, _ := startRealtimeHTTP(t, cfg)
	cl := &http.Client{Timeout: 10 * time.Second}
	codes := []int{}
	for range 4 {
		resp, _ := get(t, cl, base+"/api/windows/top", "")
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || codes[3] != 429 {
		t.Fatalf("codes %v, want three 200 then 429", codes)
	}
	time.Sleep(1100 * time.Millisecond) // one token back at 1/s
	if resp, _ := get(t, cl, base+"/api/windows/top", ""); resp.StatusCode != 200 {
		t.Errorf("after a second: %d, want 200", resp.StatusCode)
	}
	resp, _ := get(t, cl, base+"/api/windows/top", "")
	if resp.StatusCode != 429 {
		t.Errorf("second request within the second: %d, want 429", resp.StatusCode)
	}
}

// TestRealtimeRefusesOversizedRulesFile: a rules file over
// realtime.max_rules_bytes stops the start with an error naming the key.
func TestRealtimeRefusesOversizedRulesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	body := append(rules.DefaultYAML(), []byte("# "+strings.Repeat("x", 4096)+"\n")...)
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Realtime.Rules, cfg.Realtime.MaxRulesBytes = p, 4096
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, err := newRealtime(e, nil)
	if err == nil || !strings.Contains(err.Error(), "realtime.max_rules_bytes") || !strings.Contains(err.Error(), "over the limit of 4096") {
		t.Fatalf("oversized rules file: %v", err)
	}
	cfg.Realtime.MaxRulesBytes = len(body)
	if _, err := newRealtime(e, nil); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

// TestAPIPortsGuardMetricsWithMetricsToken: with metrics.token set, /metrics
// on the speed layer's API port takes that token (the scrapers' secret),
// not the API's, and stays closed without it; health stays open. Without
// metrics.token the port's /metrics is open as before.
func TestAPIPortsGuardMetricsWithMetricsToken(t *testing.T) {
	const apiTok, metricsTok = "rt-api-tok-77", "scrape-tok-88"
	cfg := config.Default()
	cfg.Realtime.HTTPToken = apiTok
	cfg.Metrics.Token = metricsTok
	base, _ := startRealtimeHTTP(t, cfg)
	cl := &http.Client{Timeout: 10 * time.Second}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", apiTok, http.StatusUnauthorized},
		{"/metrics", metricsTok, http.StatusOK},
		{"/api/windows/top", metricsTok, http.StatusUnauthorized},
		{"/api/windows/top", apiTok, http.StatusOK},
		{"/healthz", "", http.StatusOK},
	} {
		if resp, _ := get(t, cl, base+c.path, c.tok); resp.StatusCode != c.want {
			t.Errorf("%s with token %q: %d, want %d", c.path, c.tok, resp.StatusCode, c.want)
		}
	}

	open := config.Default()
	open.Realtime.HTTPToken = apiTok
	base, _ = startRealtimeHTTP(t, open)
	if resp, body := get(t, cl, base+"/metrics", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, "lambdalog_") {
		t.Errorf("/metrics without metrics.token configured: %d", resp.StatusCode)
	}
}
