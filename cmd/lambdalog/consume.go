package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
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
into a checkpoint and the older entries deleted.

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
			// signal: a consumer that failed must exit (and be restarted),
			// not linger out of its group with /healthz still answering.
			octx, stopObserve := context.WithCancel(ctx)
			defer stopObserve()
			wait, err := observe(octx, e, httpAddr, reg, map[string]obs.Check{
				"kafka":   func(ctx context.Context) error { return pingKafka(ctx, e.cfg.Kafka.Brokers[0]) },
				"dataset": func(ctx context.Context) error { _, err := fsys.Stat(ctx, "."); return err },
			})
			if err != nil {
				return err
			}
			e.log.Info("consumer started", "group", e.cfg.Consumer.Group, "dataset", e.cfg.Dataset.URL)
			err = c.Run(ctx)
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
