package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/internal/config"
)

// Tokens of a rotation: the clients move from old to new while the
// servers accept both; other is never accepted.
const (
	rotOld, rotNew, rotOther        = "rot-old-api-tok", "rot-new-api-tok", "rot-other-tok"
	rotOldMetrics, rotNewMetrics    = "rot-old-metrics-tok", "rot-new-metrics-tok"
	rotOtherMetrics, rotOldMetricsF = "rot-other-metrics", "rot-old-metrics-file"
)

// checkRotation asks path on base with each token and wants 200 for the
// accepted ones, 401 for the rest, as a bearer token and as the
// basic-auth password when basic is set.
func checkRotation(t *testing.T, cl *http.Client, base, path string, basic bool, accepted []string, refused ...string) {
	t.Helper()
	ask := func(tok string, asBasic bool) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if asBasic {
			req.SetBasicAuth("prometheus", tok)
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, asBasic := range []bool{false, basic} {
		for _, tok := range accepted {
			if code := ask(tok, asBasic); code != http.StatusOK {
				t.Errorf("%s with %q (basic %v): %d, want 200", path, tok, asBasic, code)
			}
		}
		for _, tok := range refused {
			if code := ask(tok, asBasic); code != http.StatusUnauthorized {
				t.Errorf("%s with %q (basic %v): %d, want 401", path, tok, asBasic, code)
			}
		}
	}
}

func writeSecret(t *testing.T, name, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealtimeHTTPAcceptsPreviousTokens: the speed layer's port, wired as
// `lambdalog realtime` wires it, accepts realtime.http_previous_token_file
// beside http_token on /api and metrics.previous_token beside
// metrics.token on /metrics; without the previous keys the old tokens
// are refused.
func TestRealtimeHTTPAcceptsPreviousTokens(t *testing.T) {
	cl := &http.Client{Timeout: 10 * time.Second}
	for _, rotating := range []bool{true, false} {
		cfg := config.Default()
		cfg.Realtime.HTTPToken = rotNew
		cfg.Metrics.Token = rotNewMetrics
		if rotating {
			cfg.Realtime.HTTPPreviousTokenFile = writeSecret(t, "rt-old", rotOld)
			cfg.Metrics.PreviousToken = rotOldMetrics
		}
		base, logs := startRealtimeHTTP(t, cfg)
		if rotating {
			checkRotation(t, cl, base, "/api/windows/top", false, []string{rotNew, rotOld}, rotOther, rotOldMetrics)
			checkRotation(t, cl, base, "/metrics", true, []string{rotNewMetrics, rotOldMetrics}, rotOtherMetrics, rotOld)
		} else {
			checkRotation(t, cl, base, "/api/windows/top", false, []string{rotNew}, rotOld)
			checkRotation(t, cl, base, "/metrics", true, []string{rotNewMetrics}, rotOldMetrics)
		}
		for _, secret := range []string{rotOld, rotNew, rotOldMetrics, rotNewMetrics} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("a token reached the logs:\n%s", logs.String())
			}
		}
	}
}

// TestMetricsPortAcceptsPreviousToken: the metrics port of consume, batch
// schedule, broker and hdfs accepts metrics.previous_token_file beside
// metrics.token, as Prometheus sends either (bearer or basic auth).
func TestMetricsPortAcceptsPreviousToken(t *testing.T) {
	cfg := config.Default()
	cfg.Metrics.Token = rotNewMetrics
	cfg.Metrics.PreviousTokenFile = writeSecret(t, "metrics-old", rotOldMetricsF)
	base, _ := startObserve(t, cfg, nil)
	checkRotation(t, &http.Client{Timeout: 10 * time.Second}, base, "/metrics", true,
		[]string{rotNewMetrics, rotOldMetricsF}, rotOtherMetrics, rotOldMetrics)
}

// TestServeBinaryAcceptsPreviousToken runs `lambdalog serve` (the real
// binary, against a private ClickHouse) with LAMBDALOG_SERVE_TOKEN=new and
// LAMBDALOG_SERVE_PREVIOUS_TOKEN_FILE holding the old token: /api, the
// page's ?token= and the stream ticket take either; any other token is
// 401. /metrics takes the previous metrics token as well.
func TestServeBinaryAcceptsPreviousToken(t *testing.T) {
	ch := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := lambdalog(ctx, t, "serve", "--listen", "127.0.0.1:0", "--clickhouse", ch.DSN(""), "--brokers", "127.0.0.1:1")
	cmd.Env = append(cmd.Env,
		"LAMBDALOG_SERVE_TOKEN="+rotNew,
		"LAMBDALOG_SERVE_PREVIOUS_TOKEN_FILE="+writeSecret(t, "serve-old", rotOld),
		"LAMBDALOG_METRICS_TOKEN="+rotNewMetrics,
		"LAMBDALOG_METRICS_PREVIOUS_TOKEN="+rotOldMetrics,
	)
	base, stderr := runServeBinary(t, cmd)
	cl := &http.Client{Timeout: 10 * time.Second}
	checkRotation(t, cl, base, "/api/reports", false, []string{rotNew, rotOld}, rotOther, rotOldMetrics)
	checkRotation(t, cl, base, "/metrics", true, []string{rotNewMetrics, rotOldMetrics}, rotOtherMetrics, rotOld)
	for tok, want := range map[string]int{rotOld: 200, rotOther: 401} {
		resp, err := cl.Get(base + "/?token=" + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("page with ?token=%s: %d, want %d", tok, resp.StatusCode, want)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/api/stream-ticket", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err = cl.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("stream-ticket with %s: %d, want %d", tok, resp.StatusCode, want)
		}
	}
	if strings.Contains(stderr.String(), rotOld) || strings.Contains(stderr.String(), rotNew) {
		t.Errorf("a token reached the logs:\n%s", stderr.String())
	}
}
