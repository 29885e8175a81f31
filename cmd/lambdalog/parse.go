package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/schemas/parse"
)

// parseCommand wires flags to parse.Run: the logic and its tests live in
// schemas/parse.
func parseCommand() *command {
	var (
		format     string
		quarantine string
		reference  string
		timezone   string
	)
	return &command{
		name:    "parse",
		summary: "parse log lines into normalized JSON events",
		usage:   "lambdalog parse --format F [--quarantine FILE] [--reference RFC3339] [--timezone TZ] [FILE...]",
		long: `Parses each line of the files (standard input when none) with the parser
of --format (` + strings.Join(parse.Formats(), ", ") + `) and prints one
normalized JSON object per parsed line on standard output, "dataset"
included. Lines no parser accepts are written with their reason, as JSON
lines of the quarantine dataset, to --quarantine FILE (dropped without it).
A summary (lines, parsed per dataset, quarantined per reason) goes to
standard error. Syslog timestamps without a year get one from --reference
(default: now), read in --timezone (default UTC). See docs/schemas.md.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&format, "format", "", "input `FORMAT`: "+strings.Join(parse.Formats(), ", "))
			fs.StringVar(&quarantine, "quarantine", "", "write rejected lines (JSON, with reason) to `FILE`")
			fs.StringVar(&reference, "reference", "", "`RFC3339` time that year-less syslog timestamps are relative to (default now)")
			fs.StringVar(&timezone, "timezone", "UTC", "IANA time `ZONE` of timestamps that carry none")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if format == "" {
				return usagef("--format is required (one of %s)", strings.Join(parse.Formats(), ", "))
			}
			var opts parse.Options
			if reference != "" {
				t, err := time.Parse(time.RFC3339Nano, reference)
				if err != nil {
					return usagef("--reference: want RFC3339, got %q", reference)
				}
				opts.Reference = t
			}
			loc, err := time.LoadLocation(timezone)
			if err != nil {
				return usagef("--timezone: unknown zone %q", timezone)
			}
			opts.Location = loc
			p, err := parse.New(format, opts)
			if err != nil {
				return usagef("--format: %v", err)
			}
			var qw io.Writer
			if quarantine != "" {
				f, err := os.Create(quarantine)
				if err != nil {
					return fmt.Errorf("parse: create quarantine file: %w", err)
				}
				defer f.Close()
				qw = f
			}
			total := parse.Summary{Parsed: map[string]int64{}, Quarantined: map[string]int64{}}
			runOne := func(in io.Reader) error {
				s, err := parse.Run(ctx, in, e.stdout, qw, p)
				total.Lines += s.Lines
				for k, v := range s.Parsed {
					total.Parsed[k] += v
				}
				for k, v := range s.Quarantined {
					total.Quarantined[k] += v
				}
				return err
			}
			// Files are read one at a time so a last line without a newline
			// never runs into the next file's first line.
			if len(args) == 0 {
				err = runOne(e.stdin)
			}
			for _, name := range args {
				f, oerr := os.Open(name)
				if oerr != nil {
					err = fmt.Errorf("parse: open input: %w", oerr)
					break
				}
				err = runOne(f)
				f.Close()
				if err != nil {
					break
				}
			}
			fmt.Fprintln(e.stderr, total.String())
			if errors.Is(err, context.Canceled) {
				return nil // interrupted: what was read is written and counted
			}
			return err
		},
	}
}
