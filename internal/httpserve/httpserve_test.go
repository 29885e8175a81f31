package httpserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lambdalog/lambdalog/internal/httpserve/testcert"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// echo answers 200 "ok" after reading the whole body, or 413 when the
// body is over the limit.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		if IsBodyTooLarge(err) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "ok")
})

func newServer(t *testing.T, o Options) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if o.Name == "" {
		o.Name = "test"
	}
	if o.Handler == nil {
		o.Handler = echo
	}
	o.Registerer = reg
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func do(h http.Handler, method, path, remote string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, body)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func rejected(s *Server, reason string) float64 {
	var m dto.Metric
	if err := s.rejected.WithLabelValues(s.o.Name, reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount is the number of series of a metric family in reg.
func seriesCount(reg *prometheus.Registry, name string) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric()), nil
		}
	}
	return 0, nil
}

func TestRateLimitPerClientWithRetryAfter(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := newServer(t, Options{RateLimit: 2, RateBurst: 5, Now: c.now})
	h := s.Handler()
	for i := range 5 {
		if w := do(h, "GET", "/x", "10.0.0.1:1000", nil); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := do(h, "GET", "/x", "10.0.0.1:1001", nil) // another port, same client
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("6th request: %d, want 429", w.Code)
	}
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want 1 (one token every 0.5 s, rounded up to a second)", ra)
	}
	if w := do(h, "GET", "/x", "10.0.0.2:1000", nil); w.Code != 200 {
		t.Errorf("another client is limited too: %d", w.Code)
	}
	if got := rejected(s, ReasonRateLimit); got != 1 {
		t.Errorf("rate_limit rejections = %v, want 1", got)
	}
	// Open paths are limited as well: a flood on /metrics is a flood.
	if w := do(h, "GET", "/metrics", "10.0.0.1:1000", nil); w.Code != http.StatusTooManyRequests {
		t.Errorf("/metrics over the limit: %d", w.Code)
	}
	c.add(time.Second) // 2 tokens back
	for i := range 2 {
		if w := do(h, "GET", "/x", "10.0.0.1:1000", nil); w.Code != 200 {
			t.Fatalf("after refill, request %d: %d", i, w.Code)
		}
	}
	if w := do(h, "GET", "/x", "10.0.0.1:1000", nil); w.Code != http.StatusTooManyRequests {
		t.Errorf("third request after a 1 s refill at 2/s: %d, want 429", w.Code)
	}
	if got := rejected(s, ReasonRateLimit); got != 3 {
		t.Errorf("rate_limit rejections = %v, want 3", got)
	}
}

func TestLimiterForgetsIdleClientsAndIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := newLimiter(10, 10, 3, c.now)
	for _, ip := range []string{"a", "b", "c"} {
		if ok, _ := l.allow(ip); !ok {
			t.Fatal("first request refused")
		}
	}
	if ok, wait := l.allow("d"); ok || wait != time.Second {
		t.Errorf("a 4th client over a table of 3 busy ones: ok=%v wait=%v, want refused", ok, wait)
	}
	c.add(2 * time.Second) // every bucket refilled: forgettable
	if ok, _ := l.allow("d"); !ok {
		t.Error("new client refused after the others went idle")
	}
	if n := l.size(); n != 1 {
		t.Errorf("tracked clients = %d, want 1 after the sweep", n)
	}
	c.add(2 * time.Minute)
	l.allow("e")
	if n := l.size(); n != 1 {
		t.Errorf("tracked clients = %d, want 1 (periodic sweep)", n)
	}
}

func TestTokenOrBasicAuthWithOpenHealthPaths(t *testing.T) {
	const tok = "s3cret-token-42"
	s, _ := newServer(t, Options{Token: tok, BasicUser: "prometheus"})
	h := s.Handler()
	cases := []struct {
		name, auth string
		want       int
	}{
		{"no header", "", 401},
		{"wrong bearer", "Bearer nope", 401},
		{"bearer prefix of the token", "Bearer s3cret", 401},
		{"right bearer", "Bearer " + tok, 200},
		{"lower-case scheme", "bearer " + tok, 200},
		{"basic with the token", "Basic " + b64("prometheus:"+tok), 200},
		{"basic, wrong user", "Basic " + b64("root:"+tok), 401},
		{"basic, wrong password", "Basic " + b64("prometheus:x"), 401},
		{"basic, not base64", "Basic !!!", 401},
		{"other scheme", "Digest " + tok, 401},
	}
	for _, c := range cases {
		w := do(h, "GET", "/api/x", "10.0.0.1:1", nil, "Authorization", c.auth)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if c.want == 401 && len(w.Header().Values("WWW-Authenticate")) != 2 {
			t.Errorf("%s: WWW-Authenticate = %q, want Bearer and Basic challenges", c.name, w.Header().Values("WWW-Authenticate"))
		}
	}
	if got := rejected(s, ReasonUnauthorized); got != 7 {
		t.Errorf("unauthorized rejections = %v, want 7", got)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := do(h, "GET", p, "10.0.0.1:1", nil); w.Code != 200 {
			t.Errorf("%s without a token: %d, want open", p, w.Code)
		}
	}
	if w := do(h, "GET", "/metrics/../api/x", "10.0.0.1:1", nil); w.Code != 401 {
		t.Errorf("a path that only starts like an open one: %d, want 401", w.Code)
	}
}

func TestPathTokensGuardMetricsWithTheirOwnToken(t *testing.T) {
	const apiTok, metricsTok = "api-token-1", "metrics-token-2"
	for _, api := range []string{apiTok, ""} {
		s, _ := newServer(t, Options{Token: api, PathTokens: map[string]string{"/metrics": metricsTok}})
		h := s.Handler()
		cases := []struct {
			path, auth string
			want       int
		}{
			{"/metrics", "", 401},
			{"/metrics", "Bearer " + apiTok, 401},
			{"/metrics", "Bearer " + metricsTok, 200},
			{"/metrics", "Basic " + b64("prometheus:"+metricsTok), 200},
			{"/healthz", "", 200},
			{"/readyz", "", 200},
		}
		if api != "" {
			cases = append(cases, struct {
				path, auth string
				want       int
			}{"/api/x", "Bearer " + metricsTok, 401}, struct {
				path, auth string
				want       int
			}{"/api/x", "Bearer " + apiTok, 200})
		} else {
			cases = append(cases, struct {
				path, auth string
				want       int
			}{"/api/x", "", 200})
		}
		for _, c := range cases {
			if w := do(h, "GET", c.path, "10.0.0.1:1", nil, "Authorization", c.auth); w.Code != c.want {
				t.Errorf("api token %q: GET %s with %q: %d, want %d", api, c.path, c.auth, w.Code, c.want)
			}
		}
	}
	if _, err := New(Options{Name: "x", Handler: http.NotFoundHandler(), PathTokens: map[string]string{"/metrics": ""}}); err == nil {
		t.Error("an empty path token was accepted")
	}
}

// TestPreviousTokensAcceptedDuringRotation: with a previous token set,
// both the new and the old one pass, as a bearer token and as the
// basic-auth password, on the server's token and on a path token; any
// other is refused, and without the previous token the old one is too.
func TestPreviousTokensAcceptedDuringRotation(t *testing.T) {
	const newTok, oldTok, other = "api-new-1", "api-old-0", "api-other-9"
	const newMetrics, oldMetrics = "metrics-new-1", "metrics-old-0"
	for _, rotating := range []bool{true, false} {
		o := Options{Token: newTok, PathTokens: map[string]string{"/metrics": newMetrics}}
		if rotating {
			o.PreviousToken = oldTok
			o.PathPreviousTokens = map[string]string{"/metrics": oldMetrics}
		}
		s, _ := newServer(t, o)
		old := 401
		if rotating {
			old = 200
		}
		for _, c := range []struct {
			path, tok string
			want      int
		}{
			{"/api/x", newTok, 200},
			{"/api/x", oldTok, old},
			{"/api/x", other, 401},
			{"/api/x", oldMetrics, 401},
			{"/metrics", newMetrics, 200},
			{"/metrics", oldMetrics, old},
			{"/metrics", other, 401},
			{"/metrics", oldTok, 401},
		} {
			for _, auth := range []string{"Bearer " + c.tok, "Basic " + b64("prometheus:"+c.tok)} {
				if w := do(s.Handler(), "GET", c.path, "10.0.0.1:1", nil, "Authorization", auth); w.Code != c.want {
					t.Errorf("rotating=%v: GET %s with %q: %d, want %d", rotating, c.path, auth, w.Code, c.want)
				}
			}
		}
	}
	// A previous token alone would leave the server open.
	for name, o := range map[string]Options{
		"previous token, no token":           {PreviousToken: oldTok},
		"previous path token, no path token": {PathPreviousTokens: map[string]string{"/metrics": oldMetrics}},
	} {
		o.Name, o.Handler = "x", echo
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "previous token") {
			t.Errorf("%s: err %v, want a refusal naming the previous token", name, err)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestBodyLimit(t *testing.T) {
	s, _ := newServer(t, Options{MaxBodyBytes: 100})
	h := s.Handler()
	if w := do(h, "POST", "/x", "10.0.0.1:1", strings.NewReader(strings.Repeat("a", 100))); w.Code != 200 {
		t.Errorf("body at the limit: %d", w.Code)
	}
	if w := do(h, "POST", "/x", "10.0.0.1:1", strings.NewReader(strings.Repeat("a", 101))); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length over the limit: %d, want 413", w.Code)
	}
	// Chunked: no length up front; the handler's read fails at the limit.
	r := httptest.NewRequest("POST", "/x", io.MultiReader(strings.NewReader(strings.Repeat("a", 4096))))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d, want 413", w.Code)
	}
	if got := rejected(s, ReasonBodyTooLarge); got != 2 {
		t.Errorf("body_too_large rejections = %v, want 2", got)
	}
}

func TestRejectionsAreLoggedRateLimitedWithoutSecrets(t *testing.T) {
	const tok = "tok-never-logged-7f3a"
	c := &clock{t: time.Unix(1e9, 0)}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s, _ := newServer(t, Options{Token: tok, Logger: log, LogEvery: 10 * time.Second, Now: c.now})
	h := s.Handler()
	for range 100 {
		do(h, "GET", "/api/x?token="+tok, "10.9.9.9:1", nil, "Authorization", "Bearer "+tok+"x")
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Fatalf("%d log lines for a burst of 100 refusals within LogEvery, want 1:\n%s", n, logs.String())
	}
	c.add(11 * time.Second)
	do(h, "GET", "/api/x", "10.9.9.9:1", nil, "Authorization", "Basic "+b64("u:"+tok+"y"))
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed_since_last":99`) || !strings.Contains(lines[1], `"reason":"unauthorized"`) ||
		!strings.Contains(lines[1], `"client":"10.9.9.9"`) {
		t.Errorf("second line should report the 99 suppressed refusals:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("a token reached the logs:\n%s", logs.String())
	}
	if got := rejected(s, ReasonUnauthorized); got != 101 {
		t.Errorf("every refusal is counted even when not logged: %v, want 101", got)
	}
}

func TestServersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Options{Name: "a", Handler: echo, Registerer: reg, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Name: "b", Handler: echo, Registerer: reg, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	do(a.Handler(), "GET", "/x", "1.1.1.1:1", nil)
	do(b.Handler(), "GET", "/x", "1.1.1.1:1", nil)
	do(b.Handler(), "GET", "/x", "1.1.1.1:1", nil)
	n, err := seriesCount(reg, "lambdalog_http_rejected_total")
	if err != nil || n != 6 {
		t.Fatalf("series = %d (%v), want 2 servers x 3 reasons", n, err)
	}
	if rejected(a, ReasonUnauthorized) != 1 || rejected(b, ReasonUnauthorized) != 2 {
		t.Errorf("per-server counts: a=%v b=%v, want 1 and 2", rejected(a, ReasonUnauthorized), rejected(b, ReasonUnauthorized))
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a pem"), 0o600)
	for name, o := range map[string]Options{
		"no name":       {Handler: echo},
		"no handler":    {Name: "x"},
		"cert, no key":  {Name: "x", Handler: echo, TLSCertFile: bad},
		"bad key pair":  {Name: "x", Handler: echo, TLSCertFile: bad, TLSKeyFile: bad},
		"negative rate": {Name: "x", Handler: echo, RateLimit: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestServeTLS serves HTTPS with a certificate generated here: a client
// trusting it gets its answer over TLS 1.2+, a plain-HTTP client gets
// nothing, and a shutdown returns nil.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := testcert.Write(t)
	s, _ := newServer(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile, Token: "tok"})
	if s.Scheme() != "https" {
		t.Fatalf("scheme %s", s.Scheme())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/api/x", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("HTTPS: %d %q tls=%v", resp.StatusCode, body, resp.TLS)
	}
	resp, err = cl.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("open path over TLS: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
		resp.Body.Close()
	}
	old := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: old}}).Get("https://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after shutdown: %v", err)
	}
}

// TestTimeoutsAndHeaderLimit checks the http.Server gets the limits.
func TestTimeoutsAndHeaderLimit(t *testing.T) {
	s, _ := newServer(t, Options{ReadTimeout: 7 * time.Second})
	hs := s.HTTPServer()
	if hs.ReadHeaderTimeout != 5*time.Second || hs.ReadTimeout != 7*time.Second || hs.WriteTimeout != time.Minute ||
		hs.IdleTimeout != 2*time.Minute || hs.MaxHeaderBytes != 64<<10 {
		t.Errorf("server limits: %+v", hs)
	}
	// A client that never finishes its headers is cut off.
	s, _ = newServer(t, Options{ReadHeaderTimeout: 200 * time.Millisecond})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	_, err = conn.Read(buf)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the server kept a connection with unfinished headers open for 5 s")
	}
}
