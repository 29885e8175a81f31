package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/internal/obs"
)

// observe starts the /metrics, /healthz and /readyz server every
// long-running subcommand has, on addr ("" disables it), with the given
// readiness checks. It serves until ctx ends; wait returns when it has shut
// down.
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
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	e.log.Info("serving metrics and health", "addr", "http://"+srv.Addr(), "paths", "/metrics /healthz /readyz")
	fmt.Fprintf(e.stderr, "metrics on http://%s/metrics\n", srv.Addr())
	return func() error { return <-done }, nil
}
