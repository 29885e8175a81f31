package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/obs"
)

func brokerCommand() *command {
	var (
		listen     string
		partitions int
		dataDir    string
		httpAddr   string
	)
	return &command{
		name:    "broker",
		summary: "run an embedded Kafka-protocol broker with the platform's topics (development and tests only)",
		usage:   "lambdalog broker --listen ADDR [--partitions N] [--data DIR]",
		long: `Runs franz-go's kfake, a Kafka-protocol cluster in this process, with every
topic of the configuration created (sources, alerts, late events, quarantine)
before the port accepts connections. It supports producing, consuming, groups
and transactions, but it is one process with no replication: use it for
development, demos and tests, never for production data. Point production at
Apache Kafka with --brokers.

With --data DIR the log is kept on disk, so topics, records and committed
offsets survive a restart. Serves until SIGINT or SIGTERM.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:9092", "`ADDR` to listen on (port 0 picks a free one)")
			fs.IntVar(&partitions, "partitions", 0, "partitions per topic (default topics.partitions)")
			fs.StringVar(&dataDir, "data", "", "`DIR` to keep the log in across restarts (default: memory only)")
			fs.StringVar(&httpAddr, "http", "127.0.0.1:0", "`ADDR` of /metrics, /healthz and /readyz (empty disables; port 0 picks a free one)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			if partitions == 0 {
				partitions = e.cfg.Topics.Partitions
			}
			if partitions < 1 {
				return usagef("--partitions must be at least 1")
			}
			b, err := broker.Start(ctx, broker.Options{
				Listen: listen, Topics: e.cfg.Topics.All(), Partitions: partitions, DataDir: dataDir, Logger: e.log,
			})
			if err != nil {
				return err
			}
			e.log.Info("embedded broker ready (development and tests only)", "addr", b.Addr(), "topics", e.cfg.Topics.All(), "partitions", partitions, "data", dataDir)
			fmt.Fprintf(e.stdout, "broker listening on %s\n", b.Addr())
			wait, err := observe(ctx, e, httpAddr, nil, map[string]obs.Check{
				"kafka": func(ctx context.Context) error { return pingKafka(ctx, b.Addr()) },
			})
			if err != nil {
				b.Close()
				return err
			}
			<-ctx.Done()
			e.log.Info("stopping broker")
			b.Close()
			return wait()
		},
	}
}
