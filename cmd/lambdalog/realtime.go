package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/internal/obs"
	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/realtime/service"
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
with the input offsets, so a crash or restart never publishes an alert twice
and never skips one (read the topic with isolation read_committed); events
later than the allowed lateness go to topics.late_events.

On --http it serves the live alert stream (Server-Sent Events) at
/api/alerts/stream, with Last-Event-ID resume, plus /metrics, /healthz and
/readyz.

'lambdalog realtime rules check FILE' validates a rules file and prints
every problem with its line; exit 2 when there is one.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&rulesFile, "rules", "", "rules `FILE` (default realtime.rules, else the shipped defaults)")
			fs.StringVar(&httpAddr, "http", "", "`ADDR` of the alert stream, metrics and health (default realtime.http)")
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
			reg := obs.NewRegistry()
			svc, err := newRealtime(e, reg)
			if err != nil {
				return err
			}
			srv, err := obs.NewServer(httpAddr, reg, e.log)
			if err != nil {
				return err
			}
			srv.Handle("GET /api/alerts/stream", svc.Hub())
			srv.AddCheck("kafka", func(ctx context.Context) error { return pingKafka(ctx, e.cfg.Kafka.Brokers[0]) })
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			e.log.Info("speed layer started", "http", "http://"+srv.Addr(), "group", e.cfg.Realtime.Group)
			if err := svc.Run(ctx); err != nil {
				return err // the process ends; a restart rebuilds from committed offsets
			}
			return <-done
		},
	}
}

// newRealtime builds the speed layer service from the configuration.
func newRealtime(e *env, reg *prometheus.Registry) (*service.Service, error) {
	rs, err := rules.Default()
	if e.cfg.Realtime.Rules != "" {
		rs, err = rules.Load(e.cfg.Realtime.Rules)
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
	o := service.Options{
		Client: kopts, Group: e.cfg.Realtime.Group, Sources: sources,
		AlertsTopic: e.cfg.Topics.Alerts, LateTopic: e.cfg.Topics.LateEvents, Rules: rs,
		Engine:      realtime.Options{OutOfOrderness: e.cfg.Realtime.MaxOutOfOrder.D(), AllowedLateness: e.cfg.Realtime.AllowedLateness.D(), MaxKeysPerRule: e.cfg.Realtime.MaxKeys},
		MaxPollWait: e.cfg.Realtime.TransactionInterval.D(),
		Logger:      e.log,
	}
	if reg != nil {
		o.Registerer = reg
	}
	return service.New(o)
}
