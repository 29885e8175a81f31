package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/lambdalog/lambdalog/batch/jobs"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/httpserve"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/internal/obs"
)

func devCommand() *command {
	var (
		dataDir   string
		noCH      bool
		genRate   int
		statusInt time.Duration
	)
	return &command{
		name:    "dev",
		summary: "run the whole platform in one process on embedded defaults",
		usage:   "lambdalog dev [--data DIR] [--rate N] [--no-clickhouse]",
		long: `Starts, in this one process: the embedded Kafka-protocol broker (its log in
DIR/kafka), a private ClickHouse server (DIR/clickhouse, on free ports), and
every layer that has landed: the traffic generator with attacks mixed in, the
speed layer, the exactly-once consumer into DIR/dataset, the batch scheduler
and the serving API with its dashboard. On a fresh DIR the generator first
produces one day of history (yesterday, UTC, 200,000 events) that the batch
scheduler catches up at once, so the dashboard's historical reports have
data within a couple of minutes. A status line every second shows
events/s in, alerts fired, Parquet files committed, the last batch run and
the dashboard URL. Layers that have not landed are listed as "not built"; dev
never fakes their output.

Its HTTP ports (metrics and health, the speed layer's API, the dashboard)
listen on loopback with the production commands' timeouts, body and rate
limits; the dashboard takes serve.token or a random token it prints, and the
other ports take metrics.token and realtime.http_token when they are set.

Ctrl-C (SIGINT) or SIGTERM stops everything cleanly and leaves no child
process running; the next 'lambdalog dev' reuses DIR.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dataDir, "data", ".data", "`DIR` holding the broker log, ClickHouse data and the dataset")
			fs.BoolVar(&noCH, "no-clickhouse", false, "do not start the private ClickHouse server")
			fs.IntVar(&genRate, "rate", 2000, "events per second of generated traffic")
			fs.DurationVar(&statusInt, "status-interval", time.Second, "how often the status line is printed")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			if genRate < 1 {
				return usagef("--rate must be at least 1")
			}
			return runDev(ctx, e, devOptions{dataDir: dataDir, clickhouse: !noCH, rate: genRate, statusEvery: statusInt})
		},
	}
}

type devOptions struct {
	dataDir     string
	clickhouse  bool
	rate        int
	statusEvery time.Duration
}

// devStatus is what the status line shows, updated by the components.
type devStatus struct {
	mu         sync.Mutex
	brokerAddr string
	chVersion  string
	chErr      string
	layers     map[string]string // layer -> state ("running", "not built", "failed: ...")
	// lastBatch describes the newest batch run, once the batch layer runs.
	lastBatch func(ctx context.Context) string
	// files counts the Parquet files the consumer committed.
	files func() int64
	// alerts counts the alerts the speed layer committed.
	alerts func() int64
	// dashboard is the dashboard URL, once serve runs.
	dashboard string
}

func (s *devStatus) set(f func(s *devStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func runDev(ctx context.Context, e *env, o devOptions) error {
	abs, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("dev: data dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("dev: data dir: %w", err)
	}
	log := e.log
	st := &devStatus{layers: map[string]string{}}

	b, err := broker.Start(ctx, broker.Options{
		Listen:     "127.0.0.1:0",
		Topics:     e.cfg.Topics.All(),
		Partitions: e.cfg.Topics.Partitions,
		DataDir:    filepath.Join(abs, "kafka"),
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer b.Close()
	e.cfg.Kafka.Brokers = []string{b.Addr()}
	// One metrics server for the whole dev process; the layers add none.
	e.cfg.Batch.HTTP = ""
	// Data becomes visible in seconds in dev, not at production roll sizes.
	e.cfg.Dataset.RollInterval = config.Duration(10 * time.Second)
	// The batch layer catches up from yesterday (the seeded day of
	// history) and re-checks a not-yet-complete dataset every few seconds,
	// so the dashboard's history shows within a couple of minutes.
	e.cfg.Batch.PollInterval = config.Duration(3 * time.Second)
	e.cfg.Batch.CatchUpHorizon = config.Duration(time.Since(time.Now().UTC().Truncate(24*time.Hour).Add(-24*time.Hour)) + time.Minute)
	e.cfg.Dataset.URL = "file://" + filepath.ToSlash(filepath.Join(abs, "dataset"))
	st.set(func(s *devStatus) { s.brokerAddr = b.Addr() })
	log.Info("embedded broker up", "addr", b.Addr(), "data", filepath.Join(abs, "kafka"))

	var ch *chserver.Server
	if o.clickhouse {
		ch, err = chserver.Start(ctx, chserver.Options{Dir: filepath.Join(abs, "clickhouse"), Logger: log.With("component", "clickhouse")})
		if err != nil {
			if errors.Is(err, chserver.ErrNotInstalled) {
				return fmt.Errorf("dev: %w (run 'make deps' or 'make run', which install it)", err)
			}
			return fmt.Errorf("dev: start clickhouse: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := ch.Stop(stopCtx); err != nil {
				log.Error("stopping clickhouse", "err", err)
			}
		}()
		e.cfg.ClickHouse.DSN = config.Secret(ch.DSN("lambdalog"))
		v, verr := ch.Version(ctx)
		st.set(func(s *devStatus) {
			s.chVersion = v
			if verr != nil {
				s.chErr = verr.Error()
			}
		})
		log.Info("clickhouse up", "dsn", ch.DSN("lambdalog"), "version", v)
	}

	for _, layer := range []string{"serve"} {
		st.layers[layer] = "not built"
	}

	// dev serves plain HTTP on loopback: the URLs it prints and the one
	// serve proxies the speed layer from are http://, as for serve below.
	e.cfg.Metrics.TLSCertFile, e.cfg.Metrics.TLSKeyFile = "", ""
	e.cfg.Realtime.HTTPTLSCertFile, e.cfg.Realtime.HTTPTLSKeyFile = "", ""
	reg := obs.NewRegistry()
	checks := map[string]obs.Check{"kafka": func(ctx context.Context) error { return pingKafka(ctx, b.Addr()) }}
	if ch != nil {
		checks["clickhouse"] = func(ctx context.Context) error { _, err := ch.Version(ctx); return err }
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	metricsURL, metricsWait, err := devMetricsHTTP(runCtx, e, reg, checks)
	if err != nil {
		return fmt.Errorf("dev: metrics: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := metricsWait(); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("dev platform up", "metrics", metricsURL+"/metrics")

	// Layers run until runCtx ends; the first to fail stops the platform.
	var failed error
	var failOnce sync.Once
	fail := func(layer string, err error) {
		failOnce.Do(func() {
			failed = fmt.Errorf("dev: %s: %w", layer, err)
			log.Error("layer failed; stopping the platform", "layer", layer, "err", err)
			cancel()
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.set(func(s *devStatus) { s.layers["gen"] = "running" })
		if err := runDevGen(runCtx, e, o.rate); err != nil && runCtx.Err() == nil {
			fail("gen", err)
		}
	}()

	var sources []string
	for _, s := range e.cfg.Topics.Sources {
		sources = append(sources, s.Topic)
	}
	// The speed layer's alert stream listens before serve starts, so serve
	// can proxy it to the dashboard. Its per-minute aggregates go to the
	// dev ClickHouse (e.cfg.ClickHouse.DSN above), so /api/series shows
	// real-time data; without one there is nowhere to write them.
	if ch == nil {
		e.cfg.Realtime.Minutes = false
	}
	rt, err := newRealtime(e, nil)
	if err != nil {
		return fmt.Errorf("dev: realtime: %w", err)
	}
	rtURL, rtWait, err := devRealtimeHTTP(runCtx, e, rt, reg, checks)
	if err != nil {
		rt.close()
		return fmt.Errorf("dev: realtime: %w", err)
	}
	e.cfg.Serve.RealtimeURL = rtURL
	wg.Add(1)
	go func() {
		defer wg.Done()
		// serve proxies the live views from this port: without it the
		// dashboard is broken, so its failure stops the platform.
		if err := rtWait(); err != nil {
			fail("realtime http", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.set(func(s *devStatus) { s.layers["realtime"] = "running"; s.alerts = rt.svc.Alerts })
		stopSinks := rt.startSinks(runCtx)
		defer stopSinks()
		defer rt.close()
		if err := rt.svc.Run(runCtx); err != nil && runCtx.Err() == nil {
			fail("realtime", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runDevConsume(runCtx, e, st); err != nil && runCtx.Err() == nil {
			fail("consume", err)
		}
	}()
	if ch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runDevBatch(runCtx, e, st); err != nil && runCtx.Err() == nil {
				fail("batch", err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runDevServe(runCtx, e, st); err != nil && runCtx.Err() == nil {
				fail("serve", err)
			}
		}()
	} else {
		st.set(func(s *devStatus) {
			s.layers["batch"] = "off (no clickhouse)"
			s.layers["serve"] = "off (no clickhouse)"
		})
	}

	statusLoop(runCtx, e.stdout, b.Addr(), sources, st, o.statusEvery)
	cancel()
	wg.Wait()
	if failed != nil {
		return failed
	}
	log.Info("dev platform stopped")
	return nil
}

// devMetricsHTTP serves dev's one metrics and health port (/metrics,
// /healthz, /readyz with checks) on a free loopback port until ctx ends,
// behind internal/httpserve exactly as every production metrics port is
// (metricsHTTP: timeouts, body and rate limits, metrics.token when set).
// It returns the port's base URL and a wait for its shutdown.
func devMetricsHTTP(ctx context.Context, e *env, reg *prometheus.Registry, checks map[string]obs.Check) (string, func() error, error) {
	srv, err := obs.NewServer("127.0.0.1:0", reg, e.log)
	if err != nil {
		return "", nil, err
	}
	for name, c := range checks {
		srv.AddCheck(name, c)
	}
	hs, err := metricsHTTP(e, srv.Handler(), reg)
	if err != nil {
		srv.Listener().Close()
		return "", nil, err
	}
	return devServe(ctx, hs, srv)
}

// devRealtimeHTTP serves the speed layer's API (alert stream, live top
// keys), health and metrics on a free loopback port until ctx ends,
// wired as 'lambdalog realtime' wires its port (realtimeHTTP: timeouts,
// body and rate limits, the alert stream's client cap, and
// realtime.http_token when set, which serve then sends). It returns the
// base URL serve proxies from and a wait for the shutdown.
func devRealtimeHTTP(ctx context.Context, e *env, rt *realtimeLayer, reg *prometheus.Registry, checks map[string]obs.Check) (string, func() error, error) {
	srv, err := obs.NewServer("127.0.0.1:0", reg, e.log)
	if err != nil {
		return "", nil, err
	}
	srv.Handle("/api/", rt.svc.Handler())
	for name, c := range checks {
		srv.AddCheck(name, c)
	}
	hs, err := realtimeHTTP(e, rt, srv.Handler(), reg)
	if err != nil {
		srv.Listener().Close()
		return "", nil, err
	}
	return devServe(ctx, hs, srv)
}

// devServe runs hs on srv's listener until ctx ends.
func devServe(ctx context.Context, hs *httpserve.Server, srv *obs.Server) (string, func() error, error) {
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ctx, srv.Listener()) }()
	return hs.Scheme() + "://" + srv.Addr(), func() error { return <-done }, nil
}

// runDevConsume runs the exactly-once consumer into the dev dataset.
func runDevConsume(ctx context.Context, e *env, st *devStatus) error {
	cfg := *e
	c, fsys, err := newConsumer(ctx, &cfg, nil)
	if err != nil {
		return err
	}
	defer fsys.Close()
	st.set(func(s *devStatus) {
		s.layers["consume"] = "running"
		s.files = c.FilesCommitted
	})
	return c.Run(ctx)
}

// runDevBatch runs the batch scheduler on the dev dataset and ClickHouse,
// and reports its newest run for the status line.
func runDevBatch(ctx context.Context, e *env, st *devStatus) error {
	be, err := openBatch(ctx, e)
	if err != nil {
		return err
	}
	defer be.close()
	st.set(func(s *devStatus) {
		s.layers["batch"] = "running"
		s.lastBatch = func(ctx context.Context) string {
			runs, err := be.history.List(ctx, scheduler.Query{Limit: 1})
			if err != nil {
				return "unknown (" + err.Error() + ")"
			}
			if len(runs) == 0 {
				return "none yet"
			}
			r := runs[0]
			return fmt.Sprintf("%s %s %s", r.Job, r.Status, r.Finished.Local().Format("15:04:05"))
		}
	})
	return batchSchedule(ctx, e, be, jobs.New(be.deps))
}

// runDevServe runs the serving API and dashboard on serve.listen (a free
// port when that one is taken) with the configured token or a random one,
// and prints the dashboard URL with the token.
func runDevServe(ctx context.Context, e *env, st *devStatus) error {
	tok, err := e.cfg.Serve.BearerToken()
	if err != nil {
		return err
	}
	if tok == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		tok = hex.EncodeToString(b)
	}
	e.cfg.Serve.InsecureNoAuth = false
	e.cfg.Serve.TLSCertFile, e.cfg.Serve.TLSKeyFile = "", ""
	ln, err := net.Listen("tcp", e.cfg.Serve.Listen)
	if err != nil {
		e.log.Info("serve.listen is taken; using a free port", "listen", e.cfg.Serve.Listen, "err", err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	l, err := startServe(ctx, e, ln, tok)
	if err != nil {
		ln.Close()
		return err
	}
	url := fmt.Sprintf("http://%s/?token=%s", ln.Addr(), tok)
	fmt.Fprintf(e.stdout, "dashboard: %s\n", url)
	st.set(func(s *devStatus) { s.layers["serve"] = "running"; s.dashboard = url })
	return l.wait()
}

// runDevGen feeds the platform generated traffic, attacks included, at
// rate events per second of wall-clock time, stamped from now on.
func runDevGen(ctx context.Context, e *env, rate int) error {
	topics, err := sourceTopics(e.cfg.Topics)
	if err != nil {
		return err
	}
	kopts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(kopts, gen.ProducerOptions(kgo.SnappyCompression())...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	sink := gen.NewKafkaSink(cl)
	if err := seedDevHistory(ctx, e, cl, sink, topics); err != nil {
		return err
	}
	g, err := gen.New(gen.Options{Seed: uint64(time.Now().UnixNano()), Rate: float64(rate), Start: time.Now().UTC(), Topics: topics, Pace: true, Logger: e.log})
	if err != nil {
		return err
	}
	_, err = g.Run(ctx, sink)
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ferr := sink.Flush(flushCtx); err == nil {
		err = ferr
	}
	return err
}

// devHistoryEvents is the size of the day of history a fresh dev platform
// starts with.
const devHistoryEvents = 200_000

// seedDevHistory gives a fresh dev platform (empty source topics) one day
// of past traffic, yesterday in UTC, produced before the live traffic: the
// consumer writes it to yesterday's partitions, and the batch scheduler's
// catch-up loads it and computes yesterday's reports once the dataset's
// watermark has passed the day, so the dashboard's historical charts have
// data within a couple of minutes instead of after the first night. A
// restarted platform (topics not empty) keeps what it has.
func seedDevHistory(ctx context.Context, e *env, cl *kgo.Client, sink *gen.KafkaSink, topics [gen.NumDatasets]string) error {
	sources := make([]string, 0, len(topics))
	for _, t := range topics {
		if t != "" {
			sources = append(sources, t)
		}
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, sources...)
	if err != nil {
		return fmt.Errorf("history: end offsets: %w", err)
	}
	var existing int64
	ends.Each(func(o kadm.ListedOffset) { existing += max(o.Offset, 0) })
	if existing > 0 {
		return nil
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	// At a day's worth of devHistoryEvents (about 2 events/s) most attacks'
	// bursts do not fit the rate and gen skips them, with a warning each:
	// hundreds on every fresh start. They are expected here, so they are
	// summed up in one line below instead.
	g, err := gen.New(gen.Options{Seed: uint64(day.Unix()), Count: devHistoryEvents, Rate: devHistoryEvents / 86400.0,
		Start: day, AttackEvery: 10 * time.Minute, Topics: topics, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	start := time.Now()
	truth, err := g.Run(ctx, sink)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if len(truth.Skipped) > 0 {
		e.log.Info("history: attack instances too dense for its rate were left out", "generated", len(truth.Records), "skipped", len(truth.Skipped), "example", truth.Skipped[0].Reason)
	}
	if err := sink.Flush(ctx); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	e.log.Info("seeded one day of history", "day", day.Format(time.DateOnly), "events", devHistoryEvents, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func pingKafka(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Ping(ctx)
}

// statusLoop prints the status line until ctx ends. Event counts come from
// the broker's end offsets, so they are real whichever layer produced them.
func statusLoop(ctx context.Context, w io.Writer, brokerAddr string, sources []string, st *devStatus, every time.Duration) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		fmt.Fprintf(w, "status: %v\n", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tty := isTerminal(w)
	var lastIn int64 = -1
	last := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-tick.C:
		}
		qctx, cancel := context.WithTimeout(ctx, every)
		ends, err := adm.ListEndOffsets(qctx, sources...)
		cancel()
		in, brokerState := int64(0), "up"
		if err != nil {
			brokerState = "DOWN (" + err.Error() + ")"
		} else {
			ends.Each(func(o kadm.ListedOffset) { in += o.Offset })
		}
		now := time.Now()
		rate := 0.0
		if lastIn >= 0 {
			rate = float64(in-lastIn) / now.Sub(last).Seconds()
		}
		lastIn, last = in, now
		line := formatStatus(st, brokerState, brokerAddr, in, rate)
		st.mu.Lock()
		lastBatch := st.lastBatch
		st.mu.Unlock()
		if lastBatch != nil {
			qctx, cancel := context.WithTimeout(ctx, every)
			line += " | last batch: " + lastBatch(qctx)
			cancel()
		}
		st.mu.Lock()
		if st.dashboard != "" {
			line += " | dashboard " + st.dashboard
		}
		st.mu.Unlock()
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

func formatStatus(st *devStatus, brokerState, brokerAddr string, in int64, rate float64) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	ch := "off"
	switch {
	case st.chErr != "":
		ch = "DOWN (" + st.chErr + ")"
	case st.chVersion != "":
		ch = "up " + st.chVersion
	}
	var notBuilt []string
	for _, l := range []string{"serve"} {
		if st.layers[l] == "not built" {
			notBuilt = append(notBuilt, l)
		}
	}
	s := fmt.Sprintf("broker %s %s | clickhouse %s | in %.0f ev/s (%d total)", brokerState, brokerAddr, ch, rate, in)
	if st.alerts != nil {
		s += fmt.Sprintf(" | alerts %d", st.alerts())
	}
	if st.files != nil {
		s += fmt.Sprintf(" | files %d", st.files())
	}
	if len(notBuilt) > 0 {
		s += " | not built: " + strings.Join(notBuilt, ",")
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
