package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/httpserve"
	"github.com/lambdalog/lambdalog/internal/httpserve/testcert"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/server"
)

// TestServeHTTPLimits wires the serving API as startServe does (minus
// ClickHouse, which these checks do not reach): HTTPS from
// serve.tls_cert_file, the client over serve.rate_burst gets 429 with
// Retry-After, a body over 1 KiB 413, a wrong token 401, and /metrics
// counts each refusal by reason.
func TestServeHTTPLimits(t *testing.T) {
	const tok = "serve-tok-4242"
	certFile, keyFile, pool := testcert.Write(t)
	cfg := config.Default()
	cfg.Serve.TLSCertFile, cfg.Serve.TLSKeyFile = certFile, keyFile
	cfg.Serve.RateLimit, cfg.Serve.RateBurst = 1, 6
	logs := &syncBuffer{}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil))}
	cat, err := catalog.Load(queries.Reports, "reports")
	if err != nil {
		t.Fatal(err)
	}
	reg := obs.NewRegistry()
	var hs *httpserve.Server
	srv, err := server.New(server.Options{Catalog: cat, Token: tok, Registry: reg,
		Reject: func(r *http.Request, reason string) { hs.Count(r, reason) }})
	if err != nil {
		t.Fatal(err)
	}
	if hs, err = serveHTTP(e, srv, reg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	base := "https://" + ln.Addr().String()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method, path, tk string, body io.Reader) *http.Response {
		req, _ := http.NewRequest(method, base+path, body)
		if tk != "" {
			req.Header.Set("Authorization", "Bearer "+tk)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	codes := []int{
		do("GET", "/api/reports", tok, nil).StatusCode,
		do("GET", "/api/reports", "wrong", nil).StatusCode,
		do("POST", "/api/stream-ticket", tok, strings.NewReader(strings.Repeat("x", 2048))).StatusCode,
		do("GET", "/healthz", "", nil).StatusCode,
		do("GET", "/api/reports", tok, nil).StatusCode,
		do("GET", "/api/reports", tok, nil).StatusCode,
		do("GET", "/api/reports", tok, nil).StatusCode,
	}
	want := []int{200, 401, 413, 200, 200, 200, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	time.Sleep(1100 * time.Millisecond) // one token back
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{
		`lambdalog_http_rejected_total{reason="unauthorized",server="serve"} 1`,
		`lambdalog_http_rejected_total{reason="body_too_large",server="serve"} 1`,
		`lambdalog_http_rejected_total{reason="rate_limit",server="serve"} 1`,
	} {
		if !strings.Contains(string(b), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token reached the logs:\n%s", logs.String())
	}
}
