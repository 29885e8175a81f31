package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
)

func genCommand() *command {
	var (
		seed         uint64
		rate         float64
		count        int64
		duration     time.Duration
		start        string
		attacks      string
		attackEvery  time.Duration
		intensity    float64
		maxSkew      time.Duration
		lateFraction float64
		lateBy       time.Duration
		outDir       string
		truthFile    string
		pace         bool
		compression  string
		quiet        bool
	)
	return &command{
		name:    "gen",
		summary: "generate realistic security traffic with attacks and a ground-truth file",
		usage:   "lambdalog gen --seed S --rate R (--count N | --duration D) [--truth FILE] [--out DIR]",
		long: `Generates mixed security traffic as raw log lines in the real source formats:
sshd syslog (RFC 5424) on the auth topic, netfilter/ufw kernel lines on
firewall, Suricata EVE JSON on ids and combined access logs on web, each keyed
by source IP. Attacks (ssh_bruteforce, password_spraying,
distributed_bruteforce, port_scan, web_scan, ddos, ids_then_login) are mixed
in every --attack-every of event time; background traffic never trips a
default detection. --truth writes one JSON line per attack instance with the
rule it must trip and its key.

Event i is stamped start + i/rate (minus --max-skew jitter; --late-fraction of
background lines are --late-by late), so the same flags give byte-identical
output. Without --out, lines go to the configured source topics (Kafka),
paced at --rate unless --pace=false; with --out DIR they go to auth.log,
firewall.log, ids.json and web.log as fast as possible. Without --count or
--duration the run lasts until interrupted. See docs/gen.md.`,
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&seed, "seed", 1, "seed of the run; same seed and flags, same output")
			fs.Float64Var(&rate, "rate", 10000, "events per second of event time (and of wall time when producing paced)")
			fs.Int64Var(&count, "count", 0, "number of events (or use --duration; neither: run until interrupted)")
			fs.DurationVar(&duration, "duration", 0, "event-time span of the run, e.g. 10s (count = duration x rate)")
			fs.StringVar(&start, "start", gen.DefaultStart.Format(time.RFC3339), "event time of the first event: RFC3339 or `now`")
			fs.StringVar(&attacks, "attacks", "all", "attack kinds to mix in: all, none, or a comma-separated `LIST`")
			fs.DurationVar(&attackEvery, "attack-every", 60*time.Second, "event time between two instances of one attack kind (>= 20s)")
			fs.Float64Var(&intensity, "intensity", 1, "scale of each attack's event count (never below its rule's threshold margin)")
			fs.DurationVar(&maxSkew, "max-skew", time.Second, "out-of-order jitter: each event stamped up to this much before its slot")
			fs.Float64Var(&lateFraction, "late-fraction", 0.001, "fraction of background events stamped --late-by before their slot")
			fs.DurationVar(&lateBy, "late-by", 2*time.Minute, "how late the late events are")
			fs.StringVar(&outDir, "out", "", "write files to `DIR` instead of producing to Kafka")
			fs.StringVar(&truthFile, "truth", "", "write the ground truth (JSON lines) to `FILE`")
			fs.BoolVar(&pace, "pace", true, "follow --rate on the wall clock when producing to Kafka")
			fs.StringVar(&compression, "compression", "snappy", "Kafka batch compression: snappy, lz4, zstd, gzip or none (snappy costs least CPU here)")
			fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			kinds, err := gen.ParseAttacks(attacks)
			if err != nil {
				return usageError{err.Error()}
			}
			var startAt time.Time
			if start == "now" {
				startAt = time.Now().UTC().Truncate(time.Millisecond)
			} else if startAt, err = time.Parse(time.RFC3339Nano, start); err != nil {
				return usagef("--start: want RFC3339 or now, got %q", start)
			}
			opts := gen.Options{
				Seed: seed, Rate: rate, Count: count, Duration: duration, Start: startAt,
				Attacks: kinds, AttackEvery: attackEvery, Intensity: intensity,
				MaxSkew: maxSkew, LateFraction: lateFraction, LateBy: lateBy,
				Pace: pace && outDir == "", Logger: e.log,
			}
			if outDir == "" {
				if opts.Topics, err = sourceTopics(e.cfg.Topics); err != nil {
					return err
				}
			}
			if !quiet {
				opts.Progress = func(p gen.Progress) {
					if !p.Done {
						printProgress(e.stderr, p)
					}
				}
			}
			g, err := gen.New(opts)
			if err != nil {
				return usageError{strings.TrimPrefix(err.Error(), "gen: ")}
			}
			begin := time.Now()
			var truth *gen.Truth
			if outDir != "" {
				truth, err = genToFiles(ctx, g, outDir)
			} else {
				truth, err = genToKafka(ctx, e, g, compression)
			}
			if truth != nil && truthFile != "" {
				if werr := writeTruth(truthFile, truth); werr != nil && err == nil {
					err = werr
				}
			}
			if truth != nil {
				printSummary(e.stdout, truth, time.Since(begin), outDir, truthFile)
			}
			return err
		},
	}
}

// sourceTopics maps each dataset to the configured source topic whose
// parser format matches it.
func sourceTopics(t config.Topics) ([gen.NumDatasets]string, error) {
	var out [gen.NumDatasets]string
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		for _, s := range t.Sources {
			if s.Format == d.Format() {
				out[d] = s.Topic
				break
			}
		}
		if out[d] == "" {
			out[d] = t.Topic(d.String())
		}
		if out[d] == "" {
			return out, usagef("no source topic with format %q (or named %q) in topics.sources for the %s lines", d.Format(), d.String(), d)
		}
	}
	return out, nil
}

func genToFiles(ctx context.Context, g *gen.Generator, dir string) (*gen.Truth, error) {
	sink, err := gen.NewFileSink(dir)
	if err != nil {
		return nil, err
	}
	truth, err := g.Run(ctx, sink)
	if cerr := sink.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return truth, err
}

func genToKafka(ctx context.Context, e *env, g *gen.Generator, compression string) (*gen.Truth, error) {
	codec, ok := map[string]kgo.CompressionCodec{
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(), "snappy": kgo.SnappyCompression(),
		"gzip": kgo.GzipCompression(), "none": kgo.NoCompression(),
	}[compression]
	if !ok {
		return nil, usagef("--compression: want lz4, zstd, snappy, gzip or none, got %q", compression)
	}
	copts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(copts, gen.ProducerOptions(codec)...)...)
	if err != nil {
		return nil, fmt.Errorf("gen: kafka client: %w", err)
	}
	defer cl.Close()
	sink := gen.NewKafkaSink(cl)
	truth, err := g.Run(ctx, sink)
	// Deliver what was handed to the producer even when interrupted.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := sink.Flush(fctx); ferr != nil && err == nil {
		err = ferr
	}
	e.log.Info("produced", "acknowledged", sink.Produced(), "generated", truth.Events)
	return truth, err
}

func writeTruth(name string, t *gen.Truth) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("gen: truth file: %w", err)
	}
	if err := t.WriteJSONL(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("gen: close truth file %s: %w", name, err)
	}
	return nil
}

func printProgress(w io.Writer, p gen.Progress) {
	if p.Total >= 0 {
		fmt.Fprintf(w, "gen: %d/%d events, %.0f events/s, ETA %v\n", p.Events, p.Total, p.Rate, p.ETA.Round(time.Second))
		return
	}
	fmt.Fprintf(w, "gen: %d events, %.0f events/s\n", p.Events, p.Rate)
}

func printSummary(w io.Writer, t *gen.Truth, took time.Duration, outDir, truthFile string) {
	rate := 0.0
	if took > 0 {
		rate = float64(t.Events) / took.Seconds()
	}
	fmt.Fprintf(w, "generated %d events (auth %d, firewall %d, ids %d, web %d; %d attack lines) in %v, %.0f events/s\n",
		t.Events, t.PerDataset[gen.Auth], t.PerDataset[gen.Firewall], t.PerDataset[gen.IDS], t.PerDataset[gen.Web],
		t.AttackEvents, took.Round(time.Millisecond), rate)
	per := map[string]int{}
	for _, r := range t.Records {
		per[r.Attack]++
	}
	var parts []string
	for k, v := range per {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "attacks: %d instances (%s), %d skipped\n", len(t.Records), strings.Join(parts, ", "), len(t.Skipped))
	for _, s := range t.Skipped {
		fmt.Fprintf(w, "  skipped %s at %s: %s\n", s.Attack, s.At.Format(time.RFC3339Nano), s.Reason)
	}
	if outDir != "" {
		fmt.Fprintf(w, "files: %s\n", outDir)
	}
	if truthFile != "" {
		fmt.Fprintf(w, "truth: %s\n", truthFile)
	}
}
