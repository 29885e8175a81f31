// Package server is lambdalog's serving layer over HTTP: the report API
// (/api/reports), merged metric series (/api/series), the speed layer's
// live alert stream and top keys proxied to the browser, pipeline health,
// and the embedded dashboard.
//
// It is read-only by design. Every /api/ route and the page require the
// bearer token (compared in constant time); /healthz, /readyz, /metrics
// and the static assets (public code, no data) are open. EventSource
// cannot send headers, so the alert stream also accepts a ticket: an
// authenticated POST /api/stream-ticket returns an HMAC-signed expiry
// valid for TicketTTL, good for opening /api/alerts/stream only.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/web"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// TicketTTL is how long a stream ticket may be used to open the stream.
const TicketTTL = time.Minute

// maxQuery bounds the query string of any request.
const maxQuery = 4096

// Options configure a Server.
type Options struct {
	// Catalog holds the reports (required).
	Catalog *catalog.Catalog
	// DB is ClickHouse; nil answers report and series requests with 503.
	DB catalog.Querier
	// Token is the bearer token; it must be set unless InsecureNoAuth.
	Token string
	// PreviousToken, when set, is accepted wherever Token is (header, page
	// token; stream tickets do not depend on the token), so serve.token can
	// be rotated without a window of 401s. It needs Token.
	PreviousToken  string
	InsecureNoAuth bool
	// RealtimeURL is the speed layer's HTTP base URL (e.g.
	// http://127.0.0.1:9465); empty answers the live routes with 503.
	RealtimeURL string
	// RealtimeToken is sent as a bearer token to the speed layer
	// (realtime.http_token), when it asks for one.
	RealtimeToken string
	// Reject, when set, is told of every request refused for a missing
	// token or an overlong query (reason "unauthorized", "uri_too_long"),
	// so the HTTP server counts and logs it with its other refusals.
	Reject func(r *http.Request, reason string)
	// Health reports pipeline health; nil answers /api/health with 503.
	Health HealthSource
	// QueryTimeout bounds each ClickHouse query (default 30s).
	QueryTimeout time.Duration
	// MaxRows caps report results (default 100000).
	MaxRows int
	// Registry receives the server's metrics and is served on /metrics
	// (a new one when nil).
	Registry *prometheus.Registry
	// Ready checks dependencies for /readyz (always ready when nil).
	Ready func(ctx context.Context) error
	// Logger receives request errors (discarded when nil).
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server is the HTTP serving layer.
type Server struct {
	o         Options
	mux       *http.ServeMux
	ticketKey []byte
	tokenSums [][32]byte // Token's digest, then PreviousToken's
	series    *merge.Reader
	upstream  *http.Client
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// New checks o and builds the server's routes.
func New(o Options) (*Server, error) {
	if o.Catalog == nil {
		return nil, errors.New("server: no catalog")
	}
	if o.Token == "" && !o.InsecureNoAuth {
		return nil, errors.New("server: no bearer token; set serve.token or serve.token_file (or --insecure-no-auth for development)")
	}
	if o.PreviousToken != "" && o.Token == "" {
		return nil, errors.New("server: a previous token without a token; set serve.token to the new token, or remove serve.previous_token")
	}
	if o.RealtimeURL != "" {
		u, err := url.Parse(o.RealtimeURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server: realtime URL %q: want http(s)://host:port", o.RealtimeURL)
		}
		o.RealtimeURL = strings.TrimSuffix(o.RealtimeURL, "/")
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 100_000
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux(), ticketKey: make([]byte, 32),
		// No overall timeout: the alert stream lives as long as the
		// browser's request; each request carries its own context.
		upstream: &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second, MaxIdleConns: 4}},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_serve_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lambdalog_serve_request_seconds", Help: "HTTP request latency by route (streams excluded).",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}, []string{"route"}),
	}
	for _, t := range []string{o.Token, o.PreviousToken} {
		if t != "" {
			s.tokenSums = append(s.tokenSums, sha256.Sum256([]byte(t)))
		}
	}
	if _, err := rand.Read(s.ticketKey); err != nil {
		return nil, fmt.Errorf("server: ticket key: %w", err)
	}
	if o.DB != nil {
		s.series = merge.NewReader(o.DB)
	}
	if err := o.Registry.Register(s.requests); err != nil {
		return nil, fmt.Errorf("server: register metrics: %w", err)
	}
	if err := o.Registry.Register(s.latency); err != nil {
		return nil, fmt.Errorf("server: register metrics: %w", err)
	}
	s.routes()
	return s, nil
}

type authMode int

const (
	authHeader authMode = iota // Authorization header only
	authPage                   // header or ?token= (the page's first load)
	authStream                 // header or ?ticket=
)

func (s *Server) routes() {
	assets := http.FileServerFS(web.Assets())
	s.mux.Handle("GET /assets/", s.instrument("assets", http.StripPrefix("/assets/", assets)))
	s.mux.Handle("GET /{$}", s.instrument("page", s.auth(authPage, http.HandlerFunc(s.page))))
	s.mux.Handle("GET /api/reports", s.instrument("reports", s.auth(authHeader, http.HandlerFunc(s.listReports))))
	s.mux.Handle("GET /api/reports/{name}", s.instrument("report", s.auth(authHeader, http.HandlerFunc(s.runReport))))
	s.mux.Handle("GET /api/series", s.instrument("series_list", s.auth(authHeader, http.HandlerFunc(s.listMetrics))))
	s.mux.Handle("GET /api/series/{metric}", s.instrument("series", s.auth(authHeader, http.HandlerFunc(s.getSeries))))
	s.mux.Handle("GET /api/health", s.instrument("health", s.auth(authHeader, http.HandlerFunc(s.health))))
	s.mux.Handle("POST /api/stream-ticket", s.instrument("ticket", s.auth(authHeader, http.HandlerFunc(s.ticket))))
	s.mux.Handle("GET /api/alerts/stream", s.instrument("alerts_stream", s.auth(authStream, http.HandlerFunc(s.alertStream))))
	s.mux.Handle("GET /api/windows/top", s.instrument("windows_top", s.auth(authHeader, http.HandlerFunc(s.windowsTop))))
	s.mux.Handle("/api/", s.instrument("api_unknown", s.auth(authHeader, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	}))))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Registry, promhttp.HandlerOpts{Registry: s.o.Registry}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
}

// Handler is the server's whole HTTP handler, security headers included.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if len(r.URL.RawQuery) > maxQuery {
			s.reject(r, "uri_too_long")
			writeError(w, http.StatusRequestURITooLong, "query string too long")
			return
		}
		// The API is read-only: no request carries a body worth more
		// than a few bytes.
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		s.mux.ServeHTTP(w, r)
	})
}

// HTTPServer returns an http.Server for Handler with timeouts suited to
// it: short header and read limits, a write limit that the alert stream
// lifts for itself.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      s.o.QueryTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully. With
// certFile and keyFile it serves HTTPS.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	hs := s.HTTPServer()
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- hs.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Streams never finish on their own; Shutdown waits for them only
		// until the deadline, then Close ends them.
		if err := hs.Shutdown(shut); err != nil {
			hs.Close()
		}
		return nil
	}
}

// statusWriter records the status code for metrics and keeps Flush and
// the ResponseController working (Unwrap).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		if route != "alerts_stream" {
			s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

// auth admits a request carrying the token (or, per mode, a page token or
// stream ticket).
func (s *Server) auth(mode authMode, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.o.InsecureNoAuth || s.authorized(r, mode) {
			h.ServeHTTP(w, r)
			return
		}
		s.reject(r, "unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdalog"`)
		if mode == authPage {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "lambdalog: open this page with ?token=YOUR_TOKEN once (serve.token); it is then kept in this tab only.\n")
			return
		}
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	})
}

func (s *Server) reject(r *http.Request, reason string) {
	if s.o.Reject != nil {
		s.o.Reject(r, reason)
	}
}

func (s *Server) authorized(r *http.Request, mode authMode) bool {
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, tok, ok := strings.Cut(v, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && s.tokenEqual(strings.TrimSpace(tok))
	}
	switch mode {
	case authPage:
		if t := r.URL.Query().Get("token"); t != "" {
			return s.tokenEqual(t)
		}
	case authStream:
		if t := r.URL.Query().Get("ticket"); t != "" {
			return s.ticketValid(t)
		}
	}
	return false
}

// tokenEqual compares SHA-256 digests in constant time, so neither the
// content nor the length of the token leaks through timing; it compares
// with every accepted digest, so neither does which one matched.
func (s *Server) tokenEqual(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, w := range s.tokenSums {
		ok |= subtle.ConstantTimeCompare(sum[:], w[:])
	}
	return ok == 1
}

// newTicket returns base64url(expiry unix seconds, 8 bytes BE ||
// HMAC-SHA256(key, "alerts-stream" || expiry)). The key is random per
// process, so a restart invalidates every ticket.
func (s *Server) newTicket(now time.Time) (string, time.Time) {
	exp := now.Add(TicketTTL).Truncate(time.Second)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b[:], s.ticketMAC(b[:])...)), exp
}

func (s *Server) ticketMAC(exp []byte) []byte {
	m := hmac.New(sha256.New, s.ticketKey)
	m.Write([]byte("alerts-stream"))
	m.Write(exp)
	return m.Sum(nil)
}

func (s *Server) ticketValid(t string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	if !hmac.Equal(raw[8:], s.ticketMAC(raw[:8])) {
		return false
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return s.o.Now().Before(exp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(web.Assets(), "index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "dashboard missing from the binary")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.o.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.o.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	io.WriteString(w, "ready\n")
}

func (s *Server) listReports(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"reports": s.o.Catalog.Reports()})
}

func (s *Server) runReport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rep, ok := s.o.Catalog.Lookup(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown report %q; GET /api/reports lists them", name))
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" && format != "table" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want json, csv or table", format))
		return
	}
	params := map[string]string{}
	for k, v := range q {
		if k == "format" {
			continue
		}
		if len(v) != 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %s given %d times", k, len(v)))
			return
		}
		params[k] = v[0]
	}
	if s.o.DB == nil {
		writeError(w, http.StatusServiceUnavailable, "no ClickHouse configured")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.QueryTimeout)
	defer cancel()
	res, err := s.o.Catalog.Run(ctx, s.o.DB, rep.Name, params, catalog.RunOptions{Now: s.o.Now(), MaxRows: s.o.MaxRows})
	var pe *catalog.ParamError
	switch {
	case errors.As(err, &pe):
		writeError(w, http.StatusBadRequest, pe.Error())
		return
	case errors.Is(err, catalog.ErrTooManyRows):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		s.fail(w, r, "report "+name, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, csvName(res)))
		res.WriteCSV(w)
	case "table":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		res.WriteTable(w)
	default:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		res.WriteJSON(w)
	}
}

// csvName is NAME[_FROM_TO].csv; the parts are validated parameter values
// (dates), so the name needs no escaping.
func csvName(res *catalog.Result) string {
	n := res.Report
	if f, ok := res.Params["from"]; ok {
		n += "_" + f
	}
	if t, ok := res.Params["to"]; ok {
		n += "_" + t
	}
	return n + ".csv"
}

// fail logs an internal error and answers 502/504 without details that
// could carry server internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.o.Logger.Error("request failed", "what", what, "path", r.URL.Path, "err", err)
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusGatewayTimeout, what+": timed out")
		return
	}
	writeError(w, http.StatusBadGateway, what+": query failed (details in the server log)")
}

func (s *Server) listMetrics(w http.ResponseWriter, r *http.Request) {
	type m struct {
		Name    string `json:"name"`
		Doc     string `json:"doc"`
		Dataset string `json:"dataset"`
		Key     string `json:"key"`
		Window  string `json:"window"`
	}
	var out []m
	for _, x := range metrics.All() {
		out = append(out, m{x.Name, x.Doc, x.Dataset, x.KeyColumn, x.Window.String()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"metrics": out})
}

// parseTime accepts RFC 3339 or YYYY-MM-DD (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD or RFC 3339, got %q", s)
	}
	return t.UTC(), nil
}

func (s *Server) getSeries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "key" && k != "from" && k != "to" && k != "step" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; want key, from, to, step", k))
			return
		}
	}
	m, ok := metrics.Lookup(r.PathValue("metric"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown metric %q; GET /api/series lists them", r.PathValue("metric")))
		return
	}
	step, err := merge.ParseStep(q.Get("step"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to := s.o.Now().UTC().Truncate(m.Window).Add(m.Window)
	if v := q.Get("to"); v != "" {
		if to, err = parseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "to: "+err.Error())
			return
		}
	}
	from := to.Add(-24 * time.Hour)
	if v := q.Get("from"); v != "" {
		if from, err = parseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "from: "+err.Error())
			return
		}
	}
	if s.series == nil {
		writeError(w, http.StatusServiceUnavailable, "no ClickHouse configured")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.QueryTimeout)
	defer cancel()
	series, err := s.series.Series(ctx, merge.Query{Metric: m.Name, Key: q.Get("key"), From: from, To: to, Step: step})
	var qe *merge.QueryError
	switch {
	case errors.As(err, &qe):
		writeError(w, http.StatusBadRequest, qe.Error())
	case err != nil:
		s.fail(w, r, "series "+m.Name, err)
	default:
		writeJSON(w, http.StatusOK, series)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.o.Health == nil {
		writeError(w, http.StatusServiceUnavailable, "health unavailable")
		return
	}
	writeJSON(w, http.StatusOK, s.o.Health.Health(r.Context()))
}

func (s *Server) ticket(w http.ResponseWriter, r *http.Request) {
	t, exp := s.newTicket(s.o.Now())
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t, "expires": exp.UTC()})
}

// alertStream proxies the speed layer's SSE stream, flushing every chunk
// as it arrives.
func (s *Server) alertStream(w http.ResponseWriter, r *http.Request) {
	if s.o.RealtimeURL == "" {
		writeError(w, http.StatusServiceUnavailable, "speed layer not configured (serve.realtime_url)")
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, s.o.RealtimeURL+"/api/alerts/stream", nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "bad upstream request")
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	s.upstreamAuth(req)
	if id := r.Header.Get("Last-Event-ID"); id != "" && len(id) < 256 {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := s.upstream.Do(req)
	if err != nil {
		s.o.Logger.Warn("alert stream upstream", "err", err)
		writeError(w, http.StatusBadGateway, "speed layer unavailable")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("speed layer answered %d", resp.StatusCode))
		return
	}
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout by design.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if ferr := rc.Flush(); ferr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) upstreamAuth(req *http.Request) {
	if s.o.RealtimeToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.o.RealtimeToken)
	}
}

// windowsTop proxies the speed layer's live top keys (JSON), passing only
// the query parameters the page uses.
func (s *Server) windowsTop(w http.ResponseWriter, r *http.Request) {
	if s.o.RealtimeURL == "" {
		writeError(w, http.StatusServiceUnavailable, "speed layer not configured (serve.realtime_url)")
		return
	}
	in := r.URL.Query()
	out := url.Values{}
	for _, k := range []string{"rule", "metric", "n", "limit"} {
		if v := in.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	target := s.o.RealtimeURL + "/api/windows/top"
	if len(out) > 0 {
		target += "?" + out.Encode()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "bad upstream request")
		return
	}
	s.upstreamAuth(req)
	resp, err := s.upstream.Do(req)
	if err != nil {
		s.o.Logger.Warn("windows upstream", "err", err)
		writeError(w, http.StatusBadGateway, "speed layer unavailable")
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusBadGateway, "speed layer: read failed")
		return
	}
	if resp.StatusCode != http.StatusOK || !json.Valid(body) {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("speed layer answered %d", resp.StatusCode))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}
