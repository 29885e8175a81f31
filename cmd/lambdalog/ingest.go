package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/ingest"
	"github.com/lambdalog/lambdalog/internal/kafkaconf"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// defaultIngestState is the state file of --follow when --state is not given.
const defaultIngestState = ".data/ingest-state.json"

func ingestCommand() *command {
	var (
		topic, format, state, compression string
		follow, quiet                     bool
		linger, poll, stateEvery, flushTO time.Duration
		maxRecs, maxBytes, longKeep       int
	)
	return &command{
		name:    "ingest",
		summary: "ship log files or stdin into a Kafka topic",
		usage:   "lambdalog ingest --topic T --format F [--follow] [--state FILE] [FILE...]",
		long: `Reads log files (or stdin: no FILE, or -) and produces every line, raw, to
--topic, keyed by its source IP so one IP's events stay in one partition
(the host when the line has no source IP, an empty key when the --format
parser rejects it). With only one of --topic and --format, the other comes
from topics.sources. Lines the parser rejects are still shipped (and counted
per reason); lines longer than topics.max_line_size go to topics.quarantine
as a quarantine JSON record with reason line_too_long, whole up to
--long-line-keep bytes.

--follow tails the files like tail -F (rotation by rename, truncation) and
persists, per file, the position up to which Kafka acknowledged every line
to --state (default ` + defaultIngestState + ` with --follow). A restart resumes
there: a clean stop (SIGINT/SIGTERM) re-sends nothing; a crash re-sends at
most the lines acknowledged since the last state write (--state-interval)
and those not yet acknowledged. See docs/ingest.md.

Progress goes to stderr every second, a summary to stdout at the end.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&topic, "topic", "", "Kafka `TOPIC` to produce the lines to (default: from topics.sources by --format)")
			fs.StringVar(&format, "format", "", "line format for key extraction: "+fmt.Sprint(parse.Formats())+" (default: from topics.sources by --topic)")
			fs.BoolVar(&follow, "follow", false, "keep following the files like tail -F (rotation, truncation)")
			fs.StringVar(&state, "state", "", "`FILE` persisting acknowledged read positions (default "+defaultIngestState+" with --follow)")
			fs.StringVar(&compression, "compression", ingest.DefaultCompression, "Kafka batch compression: snappy, lz4, zstd, gzip or none")
			fs.DurationVar(&linger, "linger", ingest.DefaultLinger, "how long a batch waits for more records")
			fs.IntVar(&maxRecs, "max-buffered-records", ingest.DefaultMaxBufferedRecords, "records held unacknowledged before reading pauses")
			fs.IntVar(&maxBytes, "max-buffered-bytes", ingest.DefaultMaxBufferedBytes, "bytes held unacknowledged before reading pauses")
			fs.IntVar(&longKeep, "long-line-keep", ingest.DefaultLongLineKeep, "bytes of an over-long line kept for the quarantine record")
			fs.DurationVar(&poll, "poll", ingest.DefaultPollInterval, "with --follow, how often a file at its end is checked")
			fs.DurationVar(&stateEvery, "state-interval", ingest.DefaultStateInterval, "how often acknowledged positions are written to --state")
			fs.DurationVar(&flushTO, "flush-timeout", ingest.DefaultFlushTimeout, "on stop, how long to wait for acknowledgements")
			fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var err error
			if topic, format, err = ingestTopicFormat(e.cfg.Topics, topic, format); err != nil {
				return err
			}
			if !slices.Contains(parse.Formats(), format) {
				return usagef("--format: want one of %v, got %q", parse.Formats(), format)
			}
			if e.cfg.Topics.Quarantine == "" {
				return usagef("topics.quarantine is empty: over-long lines need a quarantine topic")
			}
			if maxRecs < 1 || maxBytes < 1 || longKeep < 1 {
				return usagef("--max-buffered-records, --max-buffered-bytes and --long-line-keep must be positive")
			}
			popts, err := ingest.ProducerOptions(ingest.ProducerConfig{Compression: compression, Linger: linger, MaxBufferedRecords: maxRecs, MaxBufferedBytes: maxBytes})
			if err != nil {
				return usagef("--%v", err)
			}
			if state == "" && follow {
				state = defaultIngestState
			}
			copts, err := kafkaconf.ClientOptions(e.cfg.Kafka)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(append(copts, popts...)...)
			if err != nil {
				return fmt.Errorf("ingest: kafka client: %w", err)
			}
			defer cl.Close()
			o := ingest.Options{
				Topic: topic, Format: format, QuarantineTopic: e.cfg.Topics.Quarantine,
				MaxLineSize: e.cfg.Topics.MaxLineSize, LongLineKeep: longKeep,
				Follow: follow, StateFile: state, PollInterval: poll, StateInterval: stateEvery, FlushTimeout: flushTO,
				Stdin: e.stdin, Logger: e.log,
			}
			if !quiet {
				o.Progress = func(p ingest.Progress) { printIngestProgress(e.stderr, p) }
			}
			g, err := ingest.New(cl, o)
			if err != nil {
				return usageError{err.Error()}
			}
			e.log.Info("ingesting", "topic", topic, "format", format, "inputs", args, "follow", follow, "state", state)
			st, err := g.Run(ctx, args)
			rate := 0.0
			if st.Elapsed > 0 {
				rate = float64(st.Lines) / st.Elapsed.Seconds()
			}
			fmt.Fprintf(e.stdout, "ingested %s in %v (%.0f lines/s)\n", st, st.Elapsed.Round(time.Millisecond), rate)
			return err
		},
	}
}

// ingestTopicFormat completes --topic/--format from topics.sources.
func ingestTopicFormat(t config.Topics, topic, format string) (string, string, error) {
	switch {
	case topic != "" && format != "":
		return topic, format, nil
	case topic != "":
		for _, s := range t.Sources {
			if s.Topic == topic {
				return topic, s.Format, nil
			}
		}
		return "", "", usagef("topic %q is not in topics.sources: give --format", topic)
	case format != "":
		for _, s := range t.Sources {
			if s.Format == format {
				return s.Topic, format, nil
			}
		}
		return "", "", usagef("no topic with format %q in topics.sources: give --topic", format)
	}
	return "", "", usagef("give --topic, --format or both")
}

func printIngestProgress(w io.Writer, p ingest.Progress) {
	fmt.Fprintf(w, "ingest: %d lines, %.0f lines/s, %.1f MB/s, acked %d, parse errors %d, quarantined %d\n",
		p.Lines, p.LinesPerSec, p.BytesPerSec/1e6, p.Acked, p.ParseErrorTotal(), p.Quarantined)
}
