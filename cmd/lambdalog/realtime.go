package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/httpserve"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/minutes"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/realtime/service"
	"github.com/lambdalog/lambdalog/realtime/sink"
)

func realtimeCommand() *command {
	var rulesFile, httpAddr string
	return &command{
		name:    "realtime",
		summary: "run the speed layer: sliding windows, rules and alerts",
		usage:   "lambdalog realtime [--rules FILE] [--http ADDR] | lambdalog realtime rules check FILE",
		long: `Consumes the source topics in the realtime.group consumer group, parses each
line, keeps event-time sliding windows per key and evaluates the detection
rules (the shipped default rules unless --rules or realtime.rules names a
file). Alerts are produced to topics.alerts in Kafka transactions together
with the input offsets, one per realtime.transaction_interval, so a crash or
restart never publishes an alert twice and never skips one (read the topic
with isolation read_committed); events later than the allowed lateness go to
topics.late_events in the same transactions. After a restart or a partition
reassignment the window state is rebuilt by replaying the longest window plus
lateness before the committed offsets.

On --http it serves the live alert stream (Server-Sent Events) at
/api/alerts/stream with Last-Event-ID resume, the live top keys of the rules'
windows at /api/windows/top?rule=ID&n=N, and /metrics, /healthz, /readyz.
With realtime.http_token (or http_token_file) /api needs 'Authorization:
Bearer T' (health and metrics stay open; realtime.http_previous_token is
accepted too during a rotation); HTTPS with realtime.http_tls_cert_file
and http_tls_key_file; more than realtime.http_rate_limit requests per second
from one client get 429, more than realtime.sse_max_clients streams 503.
With realtime.webhook_url every alert is also POSTed there.

With realtime.minutes (on by default) the per-minute aggregates of the shared
metrics go to ClickHouse (clickhouse.dsn, table rt_metric_minutes, created at
start) every realtime.minutes_flush_interval, for the serving layer's merged
series; a ClickHouse outage delays them, never the alerts.

SIGHUP, or a change of the rules file, reloads the rules keeping the window
state of unchanged rules; a file with a problem keeps the running rules. A
rule keyed by a column no rule had gets its repartition topic, created and
added to the group's subscription (the group rebalances).
SIGINT/SIGTERM commits the open transaction and exits 0.

realtime.gc_percent is the Go runtime's GOGC (default 200: less CPU on the
GC for a larger heap) and realtime.memory_limit_mib its soft memory limit
(default 3072, for a 4 GiB container), which caps that heap; the GOGC and
GOMEMLIMIT environment variables win.

'lambdalog realtime rules check FILE' validates a rules file and prints
every problem with its line; exit 2 when there is one.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&rulesFile, "rules", "", "rules `FILE` (default realtime.rules, else the shipped defaults)")
			fs.StringVar(&httpAddr, "http", "", "`ADDR` of the alert stream, live views, metrics and health (default realtime.http)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				if len(args) == 3 && args[0] == "rules" && args[1] == "check" {
					data, err := os.ReadFile(args[2])
					if err != nil {
						return fmt.Errorf("rules: %w", err)
					}
					if err := rules.Check(data, e.stdout); err != nil {
						fmt.Fprintln(e.stdout, err)
						return exitError{code: 2, msg: "rules file rejected"}
					}
					return nil
				}
				return usagef("unexpected arguments %v", args)
			}
			if rulesFile != "" {
				e.cfg.Realtime.Rules = rulesFile
			}
			if httpAddr == "" {
				httpAddr = e.cfg.Realtime.HTTP
			}
			setRealtimeGC(e)
			reg := obs.NewRegistry()
			rt, err := newRealtime(e, reg)
			if err != nil {
				return err
			}
			srv, err := obs.NewServer(httpAddr, reg, e.log)
			if err != nil {
				return err
			}
			srv.Handle("/api/", rt.svc.Handler())
			srv.AddCheck("kafka", func(ctx context.Context) error { return pingKafka(ctx, e.cfg.Kafka.Brokers[0]) })
			hs, err := realtimeHTTP(e, rt, srv.Handler(), reg)
			if err != nil {
				srv.Listener().Close()
				return err
			}
			srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
			defer stopSrv()
			done := make(chan error, 1)
			go func() { done <- hs.Serve(srvCtx, srv.Listener()) }()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go rt.svc.WatchRules(ctx, 2*time.Second, hup)
			stopSinks := rt.startSinks(ctx)
			e.log.Info("speed layer started", "http", hs.Scheme()+"://"+srv.Addr(), "group", e.cfg.Realtime.Group)
			runErr := rt.svc.Run(ctx)
			rt.close()
			stopSinks()
			stopSrv()
			if err := <-done; err != nil && runErr == nil {
				runErr = err
			}
			return runErr // non-nil: exit 1; a restart continues from the committed offsets
		},
	}
}

// setRealtimeGC applies realtime.memory_limit_mib as the Go runtime's soft
// memory limit unless GOMEMLIMIT is set, and realtime.gc_percent as GOGC
// unless GOGC is set (0 leaves either to Go). Most of the speed layer's
// heap is its window state, which lives until its keys expire, and every
// record allocates a little; a higher GOGC marks that state less often:
// GOGC 200 cost 0.84-0.91x the CPU per event of 100 in five interleaved
// pairs of the end-to-end benchmark (docs/benchmarks.md), for a heap up to
// three times the live state instead of twice, which the soft limit caps.
func setRealtimeGC(e *env) {
	c := e.cfg.Realtime
	if os.Getenv("GOMEMLIMIT") == "" && c.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimitMiB) << 20)
	}
	if os.Getenv("GOGC") == "" && c.GCPercent > 0 {
		debug.SetGCPercent(c.GCPercent)
	}
}

// realtimeHTTP puts the speed layer's port behind internal/httpserve:
// realtime.http_token on /api, metrics.token on /metrics (health stays
// open), TLS, the per-client rate limit, and the alert stream's client
// cap counted with the port's other refusals. The API takes no request
// bodies.
func realtimeHTTP(e *env, rt *realtimeLayer, routes http.Handler, reg prometheus.Registerer) (*httpserve.Server, error) {
	c := e.cfg.Realtime
	tok, err := c.HTTPBearerToken()
	if err != nil {
		return nil, usageError{err.Error()}
	}
	prev, err := c.HTTPPreviousBearerToken()
	if err != nil {
		return nil, usageError{err.Error()}
	}
	pathTokens, prevPathTokens, err := metricsPathTokens(e)
	if err != nil {
		return nil, err
	}
	hs, err := httpserve.New(httpserve.Options{Name: "realtime", Handler: routes, Token: tok, PreviousToken: prev,
		PathTokens: pathTokens, PathPreviousTokens: prevPathTokens,
		TLSCertFile: c.HTTPTLSCertFile, TLSKeyFile: c.HTTPTLSKeyFile,
		RateLimit: float64(c.HTTPRateLimit), RateBurst: c.HTTPRateBurst, MaxBodyBytes: 1 << 10,
		Registerer: reg, Logger: e.log})
	if err != nil {
		return nil, err
	}
	rt.svc.Hub().SetRejectHook(func(r *http.Request) { hs.Count(r, httpserve.ReasonTooManySSE) })
	return hs, nil
}

// realtimeLayer is the speed layer service and its sinks.
type realtimeLayer struct {
	svc     *service.Service
	webhook *sink.Webhook
	minutes *minutesWriter // nil when realtime.minutes is off
}

// close releases the ClickHouse connection of the per-minute aggregates,
// after the service has stopped.
func (r *realtimeLayer) close() {
	if r.minutes != nil {
		r.minutes.close()
	}
}

// minutesWriter writes the per-minute aggregates to rt_metric_minutes. It
// connects and applies the serving layer's migrations on first use (and
// after a failed attempt, on the next), so the speed layer runs while
// ClickHouse is down; a failed connection is a failed write, which the
// aggregator keeps and retries.
type minutesWriter struct {
	dsn string
	mu  sync.Mutex
	db  *chdb.DB
	w   *merge.Writer
}

func (m *minutesWriter) connect(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connectLocked(ctx)
}

func (m *minutesWriter) connectLocked(ctx context.Context) error {
	if m.w != nil {
		return nil
	}
	db, err := chdb.Open(ctx, m.dsn)
	if err != nil {
		return fmt.Errorf("realtime: minutes: clickhouse: %w", err)
	}
	if err := merge.Migrate(ctx, db); err != nil {
		db.Close()
		return fmt.Errorf("realtime: minutes: %w", err)
	}
	m.db, m.w = db, merge.NewWriter(db)
	return nil
}

func (m *minutesWriter) Write(ctx context.Context, aggs []merge.MinuteAggregate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.connectLocked(ctx); err != nil {
		return err
	}
	return m.w.Write(ctx, aggs)
}

func (m *minutesWriter) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		m.db.Close()
		m.db, m.w = nil, nil
	}
}

// startSinks runs the webhook worker until the returned stop is called
// (after the service has stopped, so every committed alert was offered).
func (r *realtimeLayer) startSinks(ctx context.Context) (stop func()) {
	if r.webhook == nil {
		return func() {}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = r.webhook.Run(wctx) }()
	return func() { cancel(); <-done }
}

// newRealtime builds the speed layer service from the configuration; reg
// may be nil (no metrics registered).
func newRealtime(e *env, reg *prometheus.Registry) (*realtimeLayer, error) {
	c := e.cfg.Realtime
	rs, err := rules.Default()
	if c.Rules != "" {
		rs, err = rules.LoadMax(c.Rules, c.MaxRulesBytes)
	}
	if errors.Is(err, rules.ErrTooLarge) {
		return nil, fmt.Errorf("realtime: rules (raise realtime.max_rules_bytes if the file is meant to be this large): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("realtime: rules: %w", err)
	}
	kopts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
	if err != nil {
		return nil, err
	}
	var sources []service.Source
	for _, s := range e.cfg.Topics.Sources {
		sources = append(sources, service.Source{Topic: s.Topic, Format: s.Format})
	}
	hub := service.NewHub(service.HubOptions{History: c.SSEHistory, MaxClients: c.SSEMaxClients})
	m := service.NewMetrics()
	r := &realtimeLayer{}
	var sinks []service.Sink
	if c.WebhookURL != "" {
		wo := sink.WebhookOptions{URL: c.WebhookURL, Token: c.WebhookToken.Reveal(), Queue: c.WebhookQueue,
			MaxAttempts: c.WebhookMaxAttempts, DeadLetter: c.WebhookDeadLetter, Logger: e.log}
		if reg != nil {
			wo.Registerer = reg
		}
		if r.webhook, err = sink.NewWebhook(wo); err != nil {
			return nil, err
		}
		sinks = append(sinks, r.webhook)
	}
	var mins *minutes.Aggregator
	if c.Minutes {
		r.minutes = &minutesWriter{dsn: e.cfg.ClickHouse.DSN.Reveal()}
		// A first connection and migration now, so a wrong DSN shows at
		// start; a ClickHouse that is down only delays the aggregates
		// (the aggregator retries), never the alerts.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.minutes.connect(cctx); err != nil {
			e.log.Warn("per-minute aggregates: clickhouse not reachable at start; retrying on every write", "err", err)
		}
		cancel()
		mo := minutes.Options{Writer: r.minutes, AllowedLateness: c.AllowedLateness.D(), FlushInterval: c.MinutesFlush.D(),
			Tolerance: c.MinutesTolerance.D(), MaxEntries: c.MinutesMaxEntries, Logger: e.log}
		if reg != nil {
			mo.Registerer = reg
		}
		if mins, err = minutes.New(mo); err != nil {
			return nil, err
		}
	}
	r.svc, err = service.New(service.Options{
		Client: kopts, Group: c.Group, Sources: sources,
		AlertsTopic: e.cfg.Topics.Alerts, LateTopic: e.cfg.Topics.LateEvents,
		Rules: rs, RulesFile: c.Rules, MaxRulesBytes: c.MaxRulesBytes, MaxLineBytes: e.cfg.Topics.MaxLineSize,
		Engine:               realtime.Options{OutOfOrderness: c.MaxOutOfOrder.D(), AllowedLateness: c.AllowedLateness.D(), MaxKeysPerRule: c.MaxKeys, Logger: e.log},
		TransactionalID:      c.TransactionalID,
		SessionTimeout:       c.SessionTimeout.D(),
		TransactionInterval:  c.TransactionInterval.D(),
		AllowUncopartitioned: c.AllowUncopartitioned,
		Repartition:          service.Repartition{Disabled: !c.Repartition, TopicPrefix: c.RepartitionPrefix, PartitionKey: c.PartitionKey},
		Sinks:                sinks, Hub: hub, Metrics: m, Logger: e.log,
		Minutes: mins,
	})
	if err != nil {
		return nil, err
	}
	if reg != nil {
		if err := m.Register(reg, hub); err != nil {
			return nil, err
		}
	}
	return r, nil
}
