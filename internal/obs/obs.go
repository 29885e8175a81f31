// Package obs is the observability plumbing every long-running lambdalog
// process shares: structured logging with log/slog, and one small HTTP server
// for /metrics (Prometheus), /healthz (the process is alive) and /readyz (the
// process can do its work: its dependencies answered).
package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a slog logger writing text or JSON at the given level.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("obs: log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("obs: log format %q: want text or json", format)
	}
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, so every service exports memory, goroutines and CPU.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether one dependency of a service is usable.
type Check func(ctx context.Context) error

// Server serves /metrics, /healthz and /readyz, plus any handlers a service
// mounts on it (the speed layer's alert stream, for example).
type Server struct {
	mux    *http.ServeMux
	srv    *http.Server
	ln     net.Listener
	logger *slog.Logger

	mu     sync.Mutex
	checks map[string]Check
}

// NewServer listens on addr (":0" picks a free port) and serves reg.
func NewServer(addr string, reg *prometheus.Registry, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("obs: listen %s: %w", addr, err)
	}
	s := &Server{mux: http.NewServeMux(), ln: ln, logger: logger, checks: map[string]Check{}}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler is the server's routes without its http.Server, for a caller
// that serves them itself (with TLS, auth and limits: internal/httpserve)
// on Listener instead of calling Serve.
func (s *Server) Handler() http.Handler { return s.mux }

// Listener is the socket NewServer opened.
func (s *Server) Listener() net.Listener { return s.ln }

// Handle mounts an extra handler; call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddCheck registers a readiness check; /readyz answers 200 only when every
// check passes.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var b strings.Builder
	ok := true
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			ok = false
			fmt.Fprintf(&b, "%s: %v\n", n, err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, b.String())
}

// Serve serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("obs: serve %s: %w", s.Addr(), err)
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("obs: shutdown %s: %w", s.Addr(), err)
		}
		return nil
	}
}
