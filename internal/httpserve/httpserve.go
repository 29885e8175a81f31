// Package httpserve is the one way lambdalog serves HTTP: every server
// (the serving API, the speed layer's API, each service's metrics and
// health port) gets its timeouts, optional TLS, optional bearer-token or
// basic authentication, a per-client rate limit and a request body limit
// from here, and every request refused by one of them is counted
// (lambdalog_http_rejected_total{server, reason}) and logged, at most
// once per reason per LogEvery so a flood cannot flood the logs.
//
// /healthz, /readyz and /metrics stay open by default: they carry no data,
// and the kubelet and Prometheus must reach them without a secret.
package httpserve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons, the values of the reason label.
const (
	ReasonRateLimit    = "rate_limit"
	ReasonUnauthorized = "unauthorized"
	ReasonBodyTooLarge = "body_too_large"
	ReasonTooManySSE   = "sse_clients"
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Name labels the server in metrics and logs ("serve", "realtime",
	// "consume", ...); required.
	Name string
	// Handler serves the requests that pass every check; required.
	Handler http.Handler

	// TLSCertFile and TLSKeyFile (PEM) serve HTTPS, TLS 1.2 or later;
	// both or neither.
	TLSCertFile, TLSKeyFile string

	// Token, when set, is required on every path but OpenPaths, as
	// "Authorization: Bearer TOKEN" or as the password of basic auth
	// (for clients that only speak basic auth, such as some scrapers).
	Token string
	// PreviousToken, when set, is accepted as well as Token, so a token
	// can be rotated without a window of 401s: the servers accept both
	// while the clients move to Token. It needs Token.
	PreviousToken string
	// BasicUser, when set, is the only user name basic auth accepts; any
	// name otherwise (the token is the secret).
	BasicUser string
	// OpenPaths need no token (default /healthz, /readyz, /metrics).
	OpenPaths []string
	// PathTokens name paths that need a token of their own instead of
	// Token, whether Token is set or the path is in OpenPaths: /metrics on
	// an API port takes metrics.token, the scrapers' secret, not the
	// API's.
	PathTokens map[string]string
	// PathPreviousTokens are accepted as well as PathTokens on the same
	// paths (a rotation, as PreviousToken); each path needs a PathTokens
	// entry.
	PathPreviousTokens map[string]string

	// RateLimit is the sustained requests per second allowed per client
	// IP address; 0 disables rate limiting.
	RateLimit float64
	// RateBurst is how many requests a client may make at once (default
	// RateLimit rounded up, at least 1).
	RateBurst int

	// MaxBodyBytes caps a request body (default 1 MiB); a larger one is
	// refused with 413.
	MaxBodyBytes int64
	// MaxHeaderBytes caps the request line and headers (default 64 KiB).
	MaxHeaderBytes int

	// ReadHeaderTimeout (default 5s), ReadTimeout (default 30s),
	// WriteTimeout (default 60s; streams lift it per request) and
	// IdleTimeout (default 2m) are the http.Server timeouts.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown (default 5s).
	ShutdownTimeout time.Duration

	// Registerer receives lambdalog_http_rejected_total (not registered
	// when nil). Several servers may share one registry.
	Registerer prometheus.Registerer
	// Logger receives one line per rejection, rate-limited (discarded
	// when nil).
	Logger *slog.Logger
	// LogEvery is the least time between two log lines of one reason
	// (default 10s); the suppressed count is in the next line.
	LogEvery time.Duration
	// Now is the clock of the rate limiter and log limiter (time.Now
	// when nil).
	Now func() time.Time
}

// Server is an http.Server with lambdalog's limits in front of a handler.
type Server struct {
	o         Options
	tls       *tls.Config
	tokenSums [][32]byte // Token's digest, then PreviousToken's
	open      map[string]bool
	pathSums  map[string][][32]byte
	limit     *limiter
	rejected  *prometheus.CounterVec
	handler   http.Handler

	logMu      sync.Mutex
	lastLog    map[string]time.Time
	suppressed map[string]int
}

// rejectedOpts is the one definition of the rejection counter, so
// servers sharing a registry share the collector.
var rejectedOpts = prometheus.CounterOpts{Name: "lambdalog_http_rejected_total", Help: "HTTP requests refused by a limit or by authentication, by server and reason."}

// New checks o, loads the TLS key pair and builds the handler chain.
func New(o Options) (*Server, error) {
	if o.Name == "" {
		return nil, errors.New("httpserve: no server name")
	}
	if o.Handler == nil {
		return nil, fmt.Errorf("httpserve: %s: no handler", o.Name)
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, fmt.Errorf("httpserve: %s: TLS needs both a certificate and a key file", o.Name)
	}
	if o.RateLimit < 0 || o.RateBurst < 0 || o.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("httpserve: %s: negative rate limit, burst or body limit", o.Name)
	}
	if o.OpenPaths == nil {
		o.OpenPaths = []string{"/healthz", "/readyz", "/metrics"}
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	o.ReadHeaderTimeout = orDefault(o.ReadHeaderTimeout, 5*time.Second)
	o.ReadTimeout = orDefault(o.ReadTimeout, 30*time.Second)
	o.WriteTimeout = orDefault(o.WriteTimeout, time.Minute)
	o.IdleTimeout = orDefault(o.IdleTimeout, 2*time.Minute)
	o.ShutdownTimeout = orDefault(o.ShutdownTimeout, 5*time.Second)
	o.LogEvery = orDefault(o.LogEvery, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, open: map[string]bool{}, lastLog: map[string]time.Time{}, suppressed: map[string]int{},
		rejected: prometheus.NewCounterVec(rejectedOpts, []string{"server", "reason"})}
	for _, p := range o.OpenPaths {
		s.open[p] = true
	}
	// A previous token without a current one would leave the server
	// open while its operator believes it guarded.
	if o.PreviousToken != "" && o.Token == "" {
		return nil, fmt.Errorf("httpserve: %s: a previous token needs a token", o.Name)
	}
	s.tokenSums = tokenSums(o.Token, o.PreviousToken)
	for p, tok := range o.PathTokens {
		if tok == "" {
			return nil, fmt.Errorf("httpserve: %s: empty token for %s", o.Name, p)
		}
		if s.pathSums == nil {
			s.pathSums = map[string][][32]byte{}
		}
		s.pathSums[p] = tokenSums(tok, o.PathPreviousTokens[p])
	}
	for p, tok := range o.PathPreviousTokens {
		if tok != "" && o.PathTokens[p] == "" {
			return nil, fmt.Errorf("httpserve: %s: a previous token for %s needs a token for it", o.Name, p)
		}
	}
	if o.RateLimit > 0 {
		s.limit = newLimiter(o.RateLimit, o.RateBurst, 0, o.Now)
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("httpserve: %s: TLS key pair %s, %s: %w", o.Name, o.TLSCertFile, o.TLSKeyFile, err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(s.rejected); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				return nil, fmt.Errorf("httpserve: %s: register metrics: %w", o.Name, err)
			}
			s.rejected = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	// Pre-create the series so a dashboard shows zeros, not gaps.
	for _, r := range []string{ReasonRateLimit, ReasonUnauthorized, ReasonBodyTooLarge} {
		s.rejected.WithLabelValues(o.Name, r)
	}
	// Rate limiting comes first so that token guessing is limited too.
	s.handler = s.rateLimited(s.authenticated(s.bodyLimited(o.Handler)))
	return s, nil
}

// tokenSums is the digests of the non-empty tokens.
func tokenSums(toks ...string) [][32]byte {
	var sums [][32]byte
	for _, t := range toks {
		if t != "" {
			sums = append(sums, sha256.Sum256([]byte(t)))
		}
	}
	return sums
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// Scheme is "https" or "http".
func (s *Server) Scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// Handler is the whole chain: rate limit, authentication, body limit,
// then Options.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns an http.Server for Handler with the timeouts, the
// header limit and the TLS configuration.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		ReadTimeout:       s.o.ReadTimeout,
		WriteTimeout:      s.o.WriteTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		MaxHeaderBytes:    s.o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully (streams
// are cut after ShutdownTimeout). It returns nil after a shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.HTTPServer()
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("httpserve: %s: serve %s: %w", s.o.Name, ln.Addr(), err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(shut); err != nil {
			hs.Close()
		}
		return nil
	}
}

// Reject counts and logs a refusal by a check outside this package (the
// alert stream's client cap, for example) and answers code with msg.
func (s *Server) Reject(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	s.Count(r, reason)
	http.Error(w, msg, code)
}

// Count counts and logs a refusal without answering; for handlers that
// answer in their own format.
func (s *Server) Count(r *http.Request, reason string) {
	s.rejected.WithLabelValues(s.o.Name, reason).Inc()
	now := s.o.Now()
	s.logMu.Lock()
	if last, ok := s.lastLog[reason]; ok && now.Sub(last) < s.o.LogEvery {
		s.suppressed[reason]++
		s.logMu.Unlock()
		return
	}
	n := s.suppressed[reason]
	s.suppressed[reason] = 0
	s.lastLog[reason] = now
	s.logMu.Unlock()
	// Never the headers or the query: they may carry a token.
	s.o.Logger.Warn("http request refused", "server", s.o.Name, "reason", reason, "client", clientIP(r),
		"method", r.Method, "path", r.URL.Path, "suppressed_since_last", n)
}

// clientIP is the address the connection came from; a proxy in front is
// one client (X-Forwarded-For is not trusted: anyone can write it).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) rateLimited(h http.Handler) http.Handler {
	if s.limit == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := s.limit.allow(clientIP(r))
		if !ok {
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			s.Reject(w, r, http.StatusTooManyRequests, ReasonRateLimit, "too many requests; retry later")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authenticated(h http.Handler) http.Handler {
	if s.o.Token == "" && len(s.pathSums) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, own := s.pathSums[r.URL.Path]
		switch {
		case own && s.authorized(r, want):
		case !own && (s.o.Token == "" || s.open[r.URL.Path] || s.authorized(r, s.tokenSums)):
		default:
			w.Header().Add("WWW-Authenticate", `Bearer realm="lambdalog"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="lambdalog", charset="UTF-8"`)
			s.Reject(w, r, http.StatusUnauthorized, ReasonUnauthorized, "missing or wrong token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries a token whose digest is in want.
func (s *Server) authorized(r *http.Request, want [][32]byte) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok {
		return false
	}
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return tokenEqual(cred, want)
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return false
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		userOK := s.o.BasicUser == "" || subtle.ConstantTimeCompare([]byte(user), []byte(s.o.BasicUser)) == 1
		return ok && tokenEqual(pass, want) && userOK
	}
	return false
}

// tokenEqual compares SHA-256 digests in constant time, so neither the
// content nor the length of the token leaks through timing; it compares
// with every accepted digest, so neither does which one matched.
func tokenEqual(tok string, want [][32]byte) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, w := range want {
		ok |= subtle.ConstantTimeCompare(sum[:], w[:])
	}
	return ok == 1
}

func (s *Server) bodyLimited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.o.MaxBodyBytes {
			s.Reject(w, r, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge,
				fmt.Sprintf("request body of %d bytes; the limit is %d", r.ContentLength, s.o.MaxBodyBytes))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			// A chunked body has no length up front: the handler sees a
			// read error at the limit (IsBodyTooLarge: it should answer
			// 413), the connection is closed after the response, and the
			// refusal is counted here.
			r.Body = &countedBody{ReadCloser: http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes), s: s, r: r}
		}
		h.ServeHTTP(w, r)
	})
}

type countedBody struct {
	io.ReadCloser
	s       *Server
	r       *http.Request
	counted bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && !b.counted && errors.As(err, &mbe) {
		b.counted = true
		b.s.Count(b.r, ReasonBodyTooLarge)
	}
	return n, err
}

// IsBodyTooLarge reports whether err is the error a handler reads from a
// body over the limit, so it can answer 413.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
