package server

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/querytest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

const token = "s3cret-token-for-tests"

func loadCatalog(t testing.TB) *catalog.Catalog {
	c, err := catalog.Load(queries.Reports, "reports")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestServer(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	if o.Catalog == nil {
		o.Catalog = loadCatalog(t)
	}
	if o.Token == "" && !o.InsecureNoAuth {
		o.Token = token
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

func get(t *testing.T, url, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewRefusesToRunWithoutToken(t *testing.T) {
	_, err := New(Options{Catalog: loadCatalog(t)})
	if err == nil || !strings.Contains(err.Error(), "no bearer token") {
		t.Fatalf("got %v", err)
	}
	if _, err := New(Options{Catalog: loadCatalog(t), InsecureNoAuth: true}); err != nil {
		t.Fatalf("insecure-no-auth: %v", err)
	}
}

func TestAuthAndSecurityHeaders(t *testing.T) {
	speed := newFakeSpeedLayer(t)
	_, ts := newTestServer(t, Options{RealtimeURL: speed.URL})
	protected := []string{"/", "/api/reports", "/api/reports/events_per_day", "/api/series", "/api/series/web_4xx_per_client_1h",
		"/api/health", "/api/alerts/stream", "/api/windows/top", "/api/nope"}
	for _, p := range protected {
		for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
			r := get(t, ts.URL+p, tok)
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %d, want 401", p, tok, r.StatusCode)
			}
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: no WWW-Authenticate", p)
			}
		}
	}
	// The ticket endpoint needs the header too.
	resp, err := http.Post(ts.URL+"/api/stream-ticket", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stream-ticket without token: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/assets/app.js", "/assets/app.css"} {
		if r := get(t, ts.URL+p, ""); r.StatusCode != http.StatusOK {
			t.Errorf("%s without token: %d, want 200", p, r.StatusCode)
		}
	}
	// The page takes the token once in the query; the API does not.
	if r := get(t, ts.URL+"/?token="+token, ""); r.StatusCode != http.StatusOK || !strings.Contains(body(t, r), `<script src="/assets/app.js"`) {
		t.Errorf("page with ?token=: %d", r.StatusCode)
	}
	if r := get(t, ts.URL+"/api/reports?token="+token, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with ?token=: %d, want 401", r.StatusCode)
	}
	r := get(t, ts.URL+"/api/reports", token)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("with token: %d", r.StatusCode)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	csp := r.Header.Get("Content-Security-Policy")
	for _, d := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %s", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline: %s", csp)
	}
	// The page has no inline script for the CSP to block.
	page := body(t, get(t, ts.URL+"/", token))
	if strings.Contains(page, "<script>") || strings.Contains(page, " on") && strings.Contains(page, "onclick") {
		t.Error("page has inline script")
	}
	// No response echoes the token.
	for _, p := range []string{"/api/reports", "/api/health", "/metrics"} {
		if strings.Contains(body(t, get(t, ts.URL+p, token)), token) {
			t.Errorf("%s echoes the token", p)
		}
	}
	if r := get(t, ts.URL+"/api/reports?x="+strings.Repeat("a", 5000), token); r.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("long query: %d", r.StatusCode)
	}
}

// TestPreviousTokenDuringRotation: with serve.previous_token set, the old
// token works wherever the new one does (API header, the page's ?token=,
// a stream ticket and the stream it opens); any other token is refused,
// and a previous token without a token is refused at start.
// streamTicket asks the server at base for a stream ticket with bearer
// token tok and returns the status and the ticket (empty on refusal).
func streamTicket(t *testing.T, base, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/stream-ticket", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tk struct{ Ticket string }
	json.NewDecoder(resp.Body).Decode(&tk)
	return resp.StatusCode, tk.Ticket
}

func TestPreviousTokenDuringRotation(t *testing.T) {
	const newTok, oldTok = "serve-new-tok", "serve-old-tok"
	speed := newFakeSpeedLayer(t)
	_, ts := newTestServer(t, Options{Token: newTok, PreviousToken: oldTok, RealtimeURL: speed.URL})
	for _, c := range []struct {
		tok  string
		want int
	}{{newTok, 200}, {oldTok, 200}, {"serve-other-tok", 401}, {oldTok + "x", 401}, {"", 401}} {
		if r := get(t, ts.URL+"/api/reports", c.tok); r.StatusCode != c.want {
			t.Errorf("/api/reports with %q: %d, want %d", c.tok, r.StatusCode, c.want)
		}
		if c.tok != "" {
			if r := get(t, ts.URL+"/?token="+c.tok, ""); r.StatusCode != c.want {
				t.Errorf("page with ?token=%s: %d, want %d", c.tok, r.StatusCode, c.want)
			}
		}
		code, ticket := streamTicket(t, ts.URL, c.tok)
		if code != c.want {
			t.Errorf("stream-ticket with %q: %d, want %d", c.tok, code, c.want)
		}
		if c.want != 200 {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/alerts/stream?ticket="+ticket, nil)
		sresp, err := http.DefaultClient.Do(sreq)
		if err != nil {
			t.Fatal(err)
		}
		if sresp.StatusCode != http.StatusOK {
			t.Errorf("stream with the ticket of %q: %d", c.tok, sresp.StatusCode)
		}
		cancel()
		sresp.Body.Close()
	}
	_, err := New(Options{Catalog: loadCatalog(t), PreviousToken: oldTok})
	if err == nil || !strings.Contains(err.Error(), "no bearer token") {
		t.Errorf("previous token only: %v, want no bearer token", err)
	}
	_, err = New(Options{Catalog: loadCatalog(t), PreviousToken: oldTok, InsecureNoAuth: true})
	if err == nil || !strings.Contains(err.Error(), "serve.previous_token") {
		t.Errorf("previous token, insecure-no-auth: %v, want a refusal naming serve.previous_token", err)
	}
}

func TestStreamTicketAndAlertProxy(t *testing.T) {
	speed := newFakeSpeedLayer(t)
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, ts := newTestServer(t, Options{RealtimeURL: speed.URL, Now: clock})

	_, ticket := streamTicket(t, ts.URL, token)
	if ticket == "" || strings.Contains(ticket, token) {
		t.Fatalf("ticket %q", ticket)
	}
	// A ticket opens the stream only.
	if r := get(t, ts.URL+"/api/reports?ticket="+ticket, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("ticket on /api/reports: %d", r.StatusCode)
	}
	// Tampered tickets are refused.
	b := []byte(ticket)
	b[3] ^= 1
	if r := get(t, ts.URL+"/api/alerts/stream?ticket="+string(b), ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered ticket: %d", r.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/alerts/stream?ticket="+ticket, nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || sresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	<-speed.connected
	speed.Send(alert("a1", "ssh_bruteforce", "high", "198.18.0.9"))
	lines := bufio.NewScanner(sresp.Body)
	deadline := time.AfterFunc(5*time.Second, cancel)
	defer deadline.Stop()
	var got map[string]any
	for lines.Scan() {
		if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(d), &got); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got["event_id"] != "a1" || got["rule_id"] != "ssh_bruteforce" {
		t.Fatalf("proxied alert %v", got)
	}
	// After TicketTTL the same ticket no longer opens a stream.
	now = now.Add(TicketTTL + time.Second)
	if r := get(t, ts.URL+"/api/alerts/stream?ticket="+ticket, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired ticket: %d", r.StatusCode)
	}
	_ = s
}

func TestWindowsTopProxy(t *testing.T) {
	speed := newFakeSpeedLayer(t)
	_, ts := newTestServer(t, Options{RealtimeURL: speed.URL})
	r := get(t, ts.URL+"/api/windows/top", token)
	if b := body(t, r); r.StatusCode != http.StatusOK || !strings.Contains(b, `"198.18.0.9"`) {
		t.Fatalf("top: %d %s", r.StatusCode, b)
	}
	speed.Close()
	if r := get(t, ts.URL+"/api/windows/top", token); r.StatusCode != http.StatusBadGateway {
		t.Errorf("speed layer down: %d, want 502", r.StatusCode)
	}
	_, noRT := newTestServer(t, Options{})
	if r := get(t, noRT.URL+"/api/alerts/stream", token); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no realtime URL: %d, want 503", r.StatusCode)
	}
}

// TestReportsAndSeriesOverHTTP runs reports through the API against a
// loaded ClickHouse: JSON equals the catalog's own result, CSV is a
// download with the same rows, mistakes are 4xx with the reason.
func TestReportsAndSeriesOverHTTP(t *testing.T) {
	fx := querytest.Load(t, chtest.Shared(t), querytest.Options{})
	if err := merge.Migrate(context.Background(), fx.DB); err != nil {
		t.Fatal(err)
	}
	from, to := fx.Days()
	c := loadCatalog(t)
	_, ts := newTestServer(t, Options{Catalog: c, DB: fx.DB, MaxRows: 50})
	q := "?from=" + from + "&to=" + to
	direct, err := c.Run(context.Background(), fx.DB, "auth_failures_by_ip", map[string]string{"from": from, "to": to, "limit": "10"}, catalog.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}

	r := get(t, ts.URL+"/api/reports/auth_failures_by_ip"+q+"&limit=10", token)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("json: %d %s", r.StatusCode, body(t, r))
	}
	var res catalog.Result
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 10 || len(direct.Rows) != 10 {
		t.Fatalf("%d rows over HTTP, %d direct", len(res.Rows), len(direct.Rows))
	}
	for i := range res.Rows {
		if res.Rows[i][0] != direct.Rows[i][0] || res.Rows[i][1] != float64(direct.Rows[i][1].(uint64)) {
			t.Errorf("row %d: %v, direct %v", i, res.Rows[i], direct.Rows[i])
		}
	}

	r = get(t, ts.URL+"/api/reports/auth_failures_by_ip"+q+"&limit=10&format=csv", token)
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="auth_failures_by_ip_`+from+`_`+to+`.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(r.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 11 || strings.Join(recs[0], ",") != "source_ip,failures,first_seen,last_seen" || recs[1][0] != direct.Rows[0][0] || recs[1][1] != catalog.Cell(direct.Rows[0][1]) {
		t.Errorf("csv %v", recs)
	}

	for path, want := range map[string]int{
		"/api/reports/nope" + q:                                     http.StatusNotFound,
		"/api/reports/auth_failures_by_ip?from=2026-13-01":          http.StatusBadRequest,
		"/api/reports/auth_failures_by_ip?from=x' OR 1=1--":         http.StatusBadRequest,
		"/api/reports/auth_failures_by_ip" + q + "&table=users":     http.StatusBadRequest,
		"/api/reports/auth_failures_by_ip" + q + "&limit=1&limit=2": http.StatusBadRequest,
		"/api/reports/auth_failures_by_ip" + q + "&format=xml":      http.StatusBadRequest,
		"/api/reports/ip_activity" + q:                              http.StatusBadRequest,
		// Over MaxRows (50) is refused, not silently cut.
		"/api/reports/auth_failures_by_ip" + q + "&limit=100000": http.StatusUnprocessableEntity,
		"/api/series/nope": http.StatusNotFound,
		"/api/series/ssh_failed_logins_per_source_1h?from=" + from + "T00:30:00Z&to=" + to:    http.StatusBadRequest,
		"/api/series/ssh_failed_logins_per_source_1h?from=" + from + "&to=" + to + "&step=7m": http.StatusBadRequest,
		"/api/series/ssh_failed_logins_per_source_1h?since=" + from:                           http.StatusBadRequest,
	} {
		r := get(t, ts.URL+strings.ReplaceAll(path, " ", "%20"), token)
		b := body(t, r)
		if r.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", path, r.StatusCode, b, want)
			continue
		}
		var e struct{ Error string }
		if json.Unmarshal([]byte(b), &e) != nil || e.Error == "" {
			t.Errorf("%s: no reason in %s", path, b)
		}
	}

	r = get(t, ts.URL+"/api/series/ssh_failed_logins_per_source_1h?from="+from+"&to="+to+"&step=1h", token)
	var s struct {
		Points []struct {
			Value  int64
			Source string
		}
		Watermark time.Time
	}
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("series: %d %v", r.StatusCode, err)
	}
	var total int64
	for _, p := range s.Points {
		total += p.Value
		if p.Source != "batch" {
			t.Errorf("point from %s, want batch (both days were batched)", p.Source)
		}
	}
	if len(s.Points) != 24 || total == 0 {
		t.Errorf("%d points, total %d", len(s.Points), total)
	}
}

// TestRealtimeTokenAndRejectHook: with a speed layer that requires its
// token, serve passes RealtimeToken on both proxied routes (and fails
// with 502, not a leak, without it); every refusal for a missing token or
// an overlong query reaches the Reject hook with its reason.
func TestRealtimeTokenAndRejectHook(t *testing.T) {
	speed := newFakeSpeedLayer(t)
	speed.Token = "rt-upstream-tok"
	var mu sync.Mutex
	reasons := map[string]int{}
	hook := func(r *http.Request, reason string) { mu.Lock(); reasons[reason]++; mu.Unlock() }
	_, ts := newTestServer(t, Options{RealtimeURL: speed.URL, RealtimeToken: "rt-upstream-tok", Reject: hook})
	if r := get(t, ts.URL+"/api/windows/top", token); r.StatusCode != http.StatusOK {
		t.Errorf("top with the realtime token: %d", r.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stream with the realtime token: %d", resp.StatusCode)
	}
	cancel()
	resp.Body.Close()
	_, noTok := newTestServer(t, Options{RealtimeURL: speed.URL})
	if r := get(t, noTok.URL+"/api/windows/top", token); r.StatusCode != http.StatusBadGateway {
		t.Errorf("top without the realtime token: %d, want 502", r.StatusCode)
	}
	get(t, ts.URL+"/api/reports", "")
	get(t, ts.URL+"/api/reports", "wrong")
	get(t, ts.URL+"/", "")
	get(t, ts.URL+"/api/reports?x="+strings.Repeat("a", 5000), token)
	mu.Lock()
	defer mu.Unlock()
	if reasons["unauthorized"] != 3 || reasons["uri_too_long"] != 1 || len(reasons) != 2 {
		t.Errorf("refusals told to the hook: %v, want 3 unauthorized and 1 uri_too_long", reasons)
	}
}
