package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/httpserve"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/server"
)

func serveCommand() *command {
	var (
		listen, realtimeURL string
		insecureNoAuth      bool
	)
	return &command{
		name:    "serve",
		summary: "serve the reports API and the dashboard",
		usage:   "lambdalog serve [--listen ADDR] [--realtime-url URL] [--insecure-no-auth]",
		long: `Serves the read-only reports API (/api/reports), the merged batch + real-time
metric series (/api/series), pipeline health (/api/health), the speed
layer's alert stream and live top keys proxied from serve.realtime_url, and
the dashboard at /, with /healthz, /readyz and /metrics on the same port.

Every /api/ route and the page need the bearer token (serve.token,
serve.token_file or LAMBDALOG_SERVE_TOKEN) as 'Authorization: Bearer T';
open the dashboard once as /?token=T. During a rotation serve.previous_token
is accepted too. serve refuses to start without a token
unless --insecure-no-auth. HTTPS with serve.tls_cert_file and
serve.tls_key_file. More than serve.rate_limit requests per second from one
client get 429. Creates the real-time metric table in ClickHouse on
start. Serves until SIGINT or SIGTERM. See docs/queries.md.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "", "`ADDR` to listen on (serve.listen; port 0 picks a free one)")
			fs.StringVar(&realtimeURL, "realtime-url", "", "speed layer HTTP base `URL` (serve.realtime_url; default http:// + realtime.http)")
			fs.BoolVar(&insecureNoAuth, "insecure-no-auth", false, "serve without a token (development only; serve.insecure_no_auth)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			if listen != "" {
				e.cfg.Serve.Listen = listen
			}
			if realtimeURL != "" {
				e.cfg.Serve.RealtimeURL = realtimeURL
			}
			if insecureNoAuth {
				e.cfg.Serve.InsecureNoAuth = true
			}
			tok, err := e.cfg.Serve.BearerToken()
			if err != nil {
				return usageError{err.Error()}
			}
			if tok == "" && !e.cfg.Serve.InsecureNoAuth {
				return usagef("no bearer token: set serve.token, serve.token_file or LAMBDALOG_SERVE_TOKEN (or --insecure-no-auth for development only)")
			}
			ln, err := net.Listen("tcp", e.cfg.Serve.Listen)
			if err != nil {
				return fmt.Errorf("serve: listen %s: %w", e.cfg.Serve.Listen, err)
			}
			l, err := startServe(ctx, e, ln, tok)
			if err != nil {
				ln.Close()
				return err
			}
			scheme := "http"
			if e.cfg.Serve.TLSCertFile != "" {
				scheme = "https"
			}
			fmt.Fprintf(e.stdout, "serving on %s://%s/\n", scheme, ln.Addr())
			if e.cfg.Serve.InsecureNoAuth {
				e.log.Warn("serving WITHOUT authentication (--insecure-no-auth): development only")
			}
			return l.wait()
		},
	}
}

// serveHTTP puts the serving API behind internal/httpserve: TLS from
// serve.tls_cert_file/tls_key_file, the per-client rate limit
// (serve.rate_limit, rate_burst), a 1 KiB body limit (the API is
// read-only), timeouts sized to serve.query_timeout, and metrics.token on
// /metrics when set. The API token, page
// token and stream tickets stay the server's own; its refusals are
// counted here through server.Options.Reject.
func serveHTTP(e *env, srv *server.Server, reg prometheus.Registerer) (*httpserve.Server, error) {
	s := e.cfg.Serve
	pathTokens, prevPathTokens, err := metricsPathTokens(e)
	if err != nil {
		return nil, err
	}
	return httpserve.New(httpserve.Options{Name: "serve", Handler: srv.Handler(), PathTokens: pathTokens, PathPreviousTokens: prevPathTokens,
		TLSCertFile: s.TLSCertFile, TLSKeyFile: s.TLSKeyFile,
		RateLimit: float64(s.RateLimit), RateBurst: s.RateBurst,
		MaxBodyBytes: 1 << 10, MaxHeaderBytes: 16 << 10,
		ReadTimeout: 10 * time.Second, WriteTimeout: s.QueryTimeout.D() + 30*time.Second,
		Registerer: reg, Logger: e.log.With("component", "serve")})
}

// serveLayer is a running serve layer.
type serveLayer struct {
	wait func() error
}

// startServe opens ClickHouse and Kafka, migrates the real-time table and
// serves on ln until ctx ends. The token must be non-empty unless
// e.cfg.Serve.InsecureNoAuth.
func startServe(ctx context.Context, e *env, ln net.Listener, token string) (*serveLayer, error) {
	s := e.cfg.Serve
	if s.MaxRows < 1 {
		return nil, usagef("serve.max_rows must be at least 1")
	}
	if s.QueryTimeout.D() <= 0 {
		return nil, usagef("serve.query_timeout must be positive")
	}
	rt := s.RealtimeURL
	if rt == "" && e.cfg.Realtime.HTTP != "" {
		rt = "http://" + e.cfg.Realtime.HTTP
	}
	cat, err := catalog.Load(queries.Reports, "reports")
	if err != nil {
		return nil, err
	}
	db, err := chdb.Open(ctx, e.cfg.ClickHouse.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("serve: clickhouse %s: %w", e.cfg.ClickHouse.DSN, err)
	}
	if err := merge.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	kopts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
	if err != nil {
		db.Close()
		return nil, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("serve: kafka client: %w", err)
	}
	var topics []string
	for _, src := range e.cfg.Topics.Sources {
		topics = append(topics, src.Topic)
	}
	var groups []string
	for _, g := range []string{e.cfg.Consumer.Group, e.cfg.Realtime.Group} {
		if g != "" {
			groups = append(groups, g)
		}
	}
	rtTok, err := e.cfg.Realtime.HTTPBearerToken()
	if err != nil {
		cl.Close()
		db.Close()
		return nil, usageError{err.Error()}
	}
	prevTok, err := s.PreviousBearerToken()
	if err != nil {
		cl.Close()
		db.Close()
		return nil, usageError{err.Error()}
	}
	reg := obs.NewRegistry()
	var hs *httpserve.Server // set below; the server counts its refusals through it
	srv, err := server.New(server.Options{
		Catalog: cat, DB: db, Token: token, PreviousToken: prevTok, InsecureNoAuth: s.InsecureNoAuth, RealtimeURL: rt, RealtimeToken: rtTok,
		Reject:       func(r *http.Request, reason string) { hs.Count(r, reason) },
		Health:       server.NewPipeline(server.PipelineOptions{Kafka: kadm.NewClient(cl), Topics: topics, Groups: groups, DB: db}),
		QueryTimeout: s.QueryTimeout.D(), MaxRows: s.MaxRows, Registry: reg,
		Ready: func(ctx context.Context) error {
			if err := db.Ping(ctx); err != nil {
				return fmt.Errorf("clickhouse: %w", err)
			}
			return nil
		},
		Logger: e.log.With("component", "serve"),
	})
	if err != nil {
		cl.Close()
		db.Close()
		if strings.Contains(err.Error(), "realtime URL") {
			return nil, usageError{err.Error()}
		}
		return nil, err
	}
	if hs, err = serveHTTP(e, srv, reg); err != nil {
		cl.Close()
		db.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		err := hs.Serve(ctx, ln)
		cl.Close()
		db.Close()
		done <- err
	}()
	e.log.Info("serving reports API and dashboard", "addr", ln.Addr().String(), "realtime", rt, "clickhouse", e.cfg.ClickHouse.DSN, "auth", !s.InsecureNoAuth)
	return &serveLayer{wait: func() error {
		err := <-done
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}}, nil
}
