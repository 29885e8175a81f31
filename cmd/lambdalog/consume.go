package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

func consumeCommand() *command {
	var group, httpAddr string
	return &command{
		name:    "consume",
		summary: "write every event exactly once to Parquet in the master dataset",
		usage:   "lambdalog consume [--group G] [--http ADDR]",
		long: `Reads every source topic (topics.sources, each with its parser format) in a
consumer group, parses each line (lines no parser accepts go to the
quarantine dataset with the reason, in the same commit as their neighbours)
and writes Parquet files into <dataset>/dt=YYYY-MM-DD/hour=HH/ of the master
dataset (dataset.url: local disk or HDFS). The Kafka offsets are stored in
the dataset with the files, in one atomic step per commit, so crashes,
restarts and rebalances never lose or duplicate a record; see
docs/exactly-once.md. Files roll at dataset.roll_records, roll_bytes or
roll_interval, whichever comes first. A partition that is caught up and
idle for dataset.idle_heartbeat commits a heartbeat that advances its
event-time watermark, so the batch layer does not wait for it forever.
When the buffered records of all open files pass dataset.memory_budget_mib,
the partitions holding the most commit early; consumer.memory_limit_mib is
the Go runtime's soft memory limit (GOMEMLIMIT wins) and consumer.gc_percent
its GOGC (GOGC wins).
Every dataset.checkpoint_every entries a partition's commit log is folded
into a checkpoint and the older entries deleted. When storage or broker
errors outlast the commit retries, the consumer restarts in the process
(consumer.restart_attempts, backing off 1 s, 2 s, 4 s...; /readyz is not
ready meanwhile) and recovers from the commit log; past the attempts the
command exits non-zero.

Serves /metrics, /healthz and /readyz on --http. SIGINT or SIGTERM commits
what is buffered and leaves the group; exit 0 after a clean stop.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", "consumer `GROUP` (default consumer.group)")
			fs.StringVar(&httpAddr, "http", "", "`ADDR` of /metrics, /healthz and /readyz (default consumer.http)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			if group != "" {
				e.cfg.Consumer.Group = group
			}
			if httpAddr == "" {
				httpAddr = e.cfg.Consumer.HTTP
			}
			setConsumeGC(e)
			reg := obs.NewRegistry()
			c, fsys, err := newConsumer(ctx, e, reg)
			if err != nil {
				return err
			}
			defer fsys.Close()
			// The metrics server stops with the consumer, not only on a
			// signal: a consumer that failed past its in-process restarts
			// must exit (and be restarted), not linger out of its group
			// with /healthz still answering.
			octx, stopObserve := context.WithCancel(ctx)
			defer stopObserve()
			rs := newRestarter(e.log, e.cfg.Consumer.RestartAttempts, time.Second, reg)
			wait, err := observe(octx, e, httpAddr, reg, map[string]obs.Check{
				"kafka":   func(ctx context.Context) error { return pingKafka(ctx, e.cfg.Kafka.Brokers[0]) },
				"dataset": func(ctx context.Context) error { _, err := fsys.Stat(ctx, "."); return err },
				"consumer": func(ctx context.Context) error {
					if err := rs.check(ctx); err != nil {
						return err
					}
					return c.Ready(ctx)
				},
			})
			if err != nil {
				return err
			}
			e.log.Info("consumer started", "group", e.cfg.Consumer.Group, "dataset", e.cfg.Dataset.URL)
			err = rs.run(ctx, c.Run)
			stopObserve()
			werr := wait()
			e.log.Info("consumer stopped", "files", c.FilesCommitted(), "records", c.RecordsCommitted())
			return errors.Join(err, werr)
		},
	}
}

// openDataset opens the configured dataset through the storage interface.
func openDataset(ctx context.Context, e *env) (storage.FS, error) {
	fsys, err := storage.Open(ctx, e.cfg.Dataset.URL, batchStorageOptions(e))
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", e.cfg.Dataset.URL, err)
	}
	return fsys, nil
}

// newConsumer builds the exactly-once consumer from the configuration.
func newConsumer(ctx context.Context, e *env, reg prometheus.Registerer) (*consumer.Consumer, storage.FS, error) {
	loc, err := time.LoadLocation(e.cfg.Dataset.Timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset.timezone: %w", err)
	}
	kopts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
	if err != nil {
		return nil, nil, err
	}
	fsys, err := openDataset(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	c, err := consumer.New(consumer.Options{
		FS:      fsys,
		Client:  kopts,
		Group:   e.cfg.Consumer.Group,
		Sources: consumerSources(e.cfg.Topics),
		Writer: consumer.WriterOptions{Location: loc, Compression: e.cfg.Dataset.Compression,
			RowGroupBytes: e.cfg.Dataset.RowGroupBytes, WatermarkLag: e.cfg.Realtime.MaxOutOfOrder.D()},
		Parse:           parse.Options{Location: time.UTC, MaxLineBytes: e.cfg.Topics.MaxLineSize},
		RollRecords:     int64(e.cfg.Dataset.RollRecords),
		RollBytes:       e.cfg.Dataset.RollBytes,
		RollInterval:    e.cfg.Dataset.RollInterval.D(),
		IdleHeartbeat:   idleHeartbeat(e.cfg.Dataset.IdleHeartbeat.D()),
		CheckpointEvery: checkpointEvery(e.cfg.Dataset.CheckpointEvery),
		MemoryBudget:    memoryBudget(e.cfg.Dataset.MemoryBudgetMiB),
		// A record readable later than this after its event time is late
		// for the speed layer too; heartbeats never wait for it.
		IdleLateness:   e.cfg.Realtime.MaxOutOfOrder.D() + e.cfg.Realtime.AllowedLateness.D(),
		SessionTimeout: e.cfg.Consumer.SessionTimeout.D(),
		Logger:         e.log,
		Registerer:     reg,
	})
	if err != nil {
		fsys.Close()
		return nil, nil, err
	}
	return c, fsys, nil
}

func consumerSources(t config.Topics) []consumer.Source {
	out := make([]consumer.Source, 0, len(t.Sources))
	for _, s := range t.Sources {
		out = append(out, consumer.Source{Topic: s.Topic, Format: s.Format})
	}
	return out
}

// memoryBudget maps dataset.memory_budget_mib to the consumer's bytes;
// the configuration's 0 (disabled) is the consumer's negative, since the
// consumer's zero value means its default.
func memoryBudget(mib int) int64 {
	if mib == 0 {
		return -1
	}
	return int64(mib) << 20
}

// setConsumeGC applies consumer.memory_limit_mib as the Go runtime's soft
// memory limit unless GOMEMLIMIT is set, and consumer.gc_percent as GOGC
// unless GOGC is set. The budget bounds the live buffers; without a limit
// the default GOGC lets the heap grow to about twice them before
// collecting, which is what put the consumer's peak RSS near 1 GiB. Under
// the limit, a higher GOGC collects less often: GOGC 200 cost about 11%
// less CPU per record than 100 in the consumer benchmarks.
func setConsumeGC(e *env) {
	if os.Getenv("GOMEMLIMIT") == "" && e.cfg.Consumer.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(e.cfg.Consumer.MemoryLimitMiB) << 20)
	}
	if os.Getenv("GOGC") == "" && e.cfg.Consumer.GCPercent > 0 {
		debug.SetGCPercent(e.cfg.Consumer.GCPercent)
	}
}

// idleHeartbeat maps the configuration's 0 (disabled) to the consumer's
// negative, since the consumer's zero value means its default.
func idleHeartbeat(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// checkpointEvery maps the configuration's 0 (disabled) likewise.
func checkpointEvery(n int) int64 {
	if n == 0 {
		return -1
	}
	return int64(n)
}

// restarter reruns a failed consumer in the process: a Run that fails has
// left its group and dropped its unpublished buffers, and the next Run
// claims its partitions and recovers from the dataset's commit log exactly
// as a fresh process would, without a container restart's growing back-off
// and reconnects. Past attempts failures within restartWindow it gives up,
// so a lasting failure still ends the process for its supervisor.
type restarter struct {
	log      *slog.Logger
	attempts int
	base     time.Duration
	restarts prometheus.Counter
	waiting  atomic.Bool
}

// restartWindow is how long a Run must last for its failure to count as a
// new incident rather than the next attempt of the same one.
const restartWindow = 5 * time.Minute

func newRestarter(log *slog.Logger, attempts int, base time.Duration, reg prometheus.Registerer) *restarter {
	r := &restarter{log: log, attempts: attempts, base: base,
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_restarts_total", Help: "Times lambdalog consume restarted its consumer in the process after a failure (consumer.restart_attempts)."})}
	if reg != nil {
		reg.MustRegister(r.restarts)
	}
	return r
}

// check is the readiness check: not ready while waiting to restart.
func (r *restarter) check(context.Context) error {
	if r.waiting.Load() {
		return errors.New("consumer failed; restarting it")
	}
	return nil
}

// run calls run until it returns nil, ctx ends, or it has failed more than
// attempts times in a row (a Run lasting restartWindow starts the count
// again). A stop that arrives while waiting to restart is a clean stop:
// the failed Run left nothing buffered.
func (r *restarter) run(ctx context.Context, run func(context.Context) error) error {
	failures := 0
	for {
		started := time.Now()
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Since(started) >= restartWindow {
			failures = 0
		}
		if failures >= r.attempts {
			if r.attempts > 0 {
				r.log.Error("consumer failed; no restart attempts left", "attempts", r.attempts, "err", err)
			}
			return err
		}
		wait := min(r.base<<failures, 30*time.Second)
		failures++
		r.restarts.Inc()
		r.log.Warn("consumer failed; restarting it in the process", "attempt", failures, "of", r.attempts, "in", wait, "err", err)
		r.waiting.Store(true)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			r.waiting.Store(false)
			r.log.Info("stopped while waiting to restart the consumer")
			return nil
		case <-t.C:
		}
		r.waiting.Store(false)
	}
}
