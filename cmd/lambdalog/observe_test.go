package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/httpserve/testcert"
	"github.com/lambdalog/lambdalog/internal/obs"
)

// TestMetricsPortTokenTLSAndRateLimit: the metrics port of every service
// (consume, batch schedule, broker, hdfs) serves HTTPS with
// metrics.tls_cert_file, keeps /healthz and /readyz open, wants
// metrics.token on /metrics (as a bearer token or a basic-auth password,
// the two ways Prometheus sends credentials), and refuses a client over
// metrics.rate_burst with 429; each refusal is counted on /metrics.
func TestMetricsPortTokenTLSAndRateLimit(t *testing.T) {
	const tok = "metrics-tok-8080"
	certFile, keyFile, pool := testcert.Write(t)
	cfg := config.Default()
	cfg.Metrics.Token = tok
	cfg.Metrics.TLSCertFile, cfg.Metrics.TLSKeyFile = certFile, keyFile
	cfg.Metrics.RateLimit, cfg.Metrics.RateBurst = 1, 7
	base, logs := startObserve(t, cfg, map[string]obs.Check{"dep": func(context.Context) error { return nil }})
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("metrics served on %s, want https", base)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(path string, set func(*http.Request)) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	got := []int{}
	for _, c := range []struct {
		path string
		set  func(*http.Request)
	}{
		{"/healthz", nil},
		{"/readyz", nil},
		{"/metrics", nil},
		{"/metrics", func(r *http.Request) { r.SetBasicAuth("prometheus", "wrong") }},
		{"/metrics", func(r *http.Request) { r.SetBasicAuth("prometheus", tok) }},
		{"/metrics", bearer},
		{"/healthz", nil},
		{"/healthz", nil},
	} {
		code, _ := do(c.path, c.set)
		got = append(got, code)
	}
	want := []int{200, 200, 401, 401, 200, 200, 200, 429}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("codes %v, want %v", got, want)
		}
	}
	time.Sleep(1100 * time.Millisecond) // one token back
	code, body := do("/metrics", bearer)
	if code != 200 {
		t.Fatalf("/metrics after a second: %d", code)
	}
	for _, w := range []string{
		`lambdalog_http_rejected_total{reason="unauthorized",server="metrics"} 2`,
		`lambdalog_http_rejected_total{reason="rate_limit",server="metrics"} 1`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token reached the logs:\n%s", logs.String())
	}
}

// startObserve serves the metrics port of cfg (observe) on a free port
// until the test ends, and returns its base URL as announced in the log,
// and the log.
func startObserve(t *testing.T, cfg *config.Config, checks map[string]obs.Check) (base string, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil)), stderr: logs}
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := observe(ctx, e, "127.0.0.1:0", nil, checks)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	m := regexp.MustCompile(`metrics on (https?://\S+)/metrics`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address announced:\n%s", logs.String())
	}
	return m[1], logs
}
