package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/internal/httpserve"
	"github.com/lambdalog/lambdalog/internal/obs"
)

// observe starts the /metrics, /healthz and /readyz server every
// long-running subcommand has, on addr ("" disables it), with the given
// readiness checks, behind the metrics.* limits (metricsHTTP). It serves
// until ctx ends; wait returns when it has shut down.
func observe(ctx context.Context, e *env, addr string, reg *prometheus.Registry, checks map[string]obs.Check) (wait func() error, err error) {
	if addr == "" {
		return func() error { return nil }, nil
	}
	if reg == nil {
		reg = obs.NewRegistry()
	}
	srv, err := obs.NewServer(addr, reg, e.log)
	if err != nil {
		return nil, err
	}
	for name, c := range checks {
		srv.AddCheck(name, c)
	}
	hs, err := metricsHTTP(e, srv.Handler(), reg)
	if err != nil {
		srv.Listener().Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ctx, srv.Listener()) }()
	base := hs.Scheme() + "://" + srv.Addr()
	e.log.Info("serving metrics and health", "addr", base, "paths", "/metrics /healthz /readyz")
	fmt.Fprintf(e.stderr, "metrics on %s/metrics\n", base)
	return func() error { return <-done }, nil
}

// metricsPathTokens guards /metrics on an API port (serve, realtime)
// with metrics.token, the scrapers' secret, when one is set: the port's
// own token is the API clients', and /metrics there would otherwise be
// open. prev holds metrics.previous_token during a rotation.
func metricsPathTokens(e *env) (cur, prev map[string]string, err error) {
	tok, prevTok, err := metricsTokens(e)
	if err != nil {
		return nil, nil, err
	}
	if tok == "" {
		if prevTok != "" { // an empty token file: refuse rather than leave /metrics open
			return nil, nil, usagef("metrics.previous_token is set but metrics.token is empty; set metrics.token to the new token or remove metrics.previous_token")
		}
		return nil, nil, nil
	}
	cur = map[string]string{"/metrics": tok}
	if prevTok != "" {
		prev = map[string]string{"/metrics": prevTok}
	}
	return cur, prev, nil
}

// metricsTokens reads metrics.token and metrics.previous_token (either
// from its _file key).
func metricsTokens(e *env) (tok, prev string, err error) {
	m := e.cfg.Metrics
	if tok, err = m.BearerToken(); err != nil {
		return "", "", usageError{err.Error()}
	}
	if prev, err = m.PreviousBearerToken(); err != nil {
		return "", "", usageError{err.Error()}
	}
	return tok, prev, nil
}

// metricsHTTP serves a metrics port with the metrics.* keys: TLS, a
// token on /metrics when one is set (Prometheus sends it as a bearer
// token or basic-auth password; /healthz and /readyz stay open for the
// kubelet), the per-client rate limit, no request bodies, and the
// standard timeouts.
func metricsHTTP(e *env, routes http.Handler, reg prometheus.Registerer) (*httpserve.Server, error) {
	m := e.cfg.Metrics
	tok, prev, err := metricsTokens(e)
	if err != nil {
		return nil, err
	}
	return httpserve.New(httpserve.Options{Name: "metrics", Handler: routes, Token: tok, PreviousToken: prev, OpenPaths: []string{"/healthz", "/readyz"},
		TLSCertFile: m.TLSCertFile, TLSKeyFile: m.TLSKeyFile,
		RateLimit: float64(m.RateLimit), RateBurst: m.RateBurst, MaxBodyBytes: 1 << 10,
		Registerer: reg, Logger: e.log})
}
