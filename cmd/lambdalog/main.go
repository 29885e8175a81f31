// Command lambdalog is the one binary of the lambdalog platform: every layer,
// the embedded development platform and the operator tools are subcommands.
//
// Each subcommand lives in its own file of this package as a constructor
// returning a *command; commands() lists them. Exit codes: 0 success, 1
// runtime failure, 2 usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/obs"
)

// command is one subcommand.
type command struct {
	name    string
	summary string // one line, for `lambdalog help`
	usage   string // synopsis, e.g. "lambdalog broker --listen ADDR [--partitions N]"
	long    string // what it does, for `lambdalog help NAME`
	// flags registers the command's own flags; values land in the closure.
	flags func(fs *flag.FlagSet)
	// run does the work. Positional arguments (after flags are removed, in
	// order) are in args.
	run func(ctx context.Context, e *env, args []string) error
}

// env is what a running command gets: its streams, the effective
// configuration and a logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	cfg            *config.Config
	log            *slog.Logger
	// configFile is the file the configuration came from ("" for defaults).
	configFile string
	// cfgErr is set instead of failing when the command asked to see
	// configuration problems itself (config check).
	cfgErr error
	// flagsSet names the flags given on the command line.
	flagsSet map[string]bool
}

func commands() []*command {
	cmds := []*command{
		devCommand(),
		brokerCommand(),
		genCommand(),
		parseCommand(),
		ingestCommand(),
		consumeCommand(),
		realtimeCommand(),
		batchCommand(),
		queryCommand(),
		serveCommand(),
		datasetCommand(),
		hdfsCommand(),
		configCommand(),
		versionCommand(),
	}
	return cmds
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errNotBuilt is returned by subcommands whose capability has not landed yet.
type notBuiltError struct{ cmd, capability string }

func (e notBuiltError) Error() string {
	return fmt.Sprintf("%s is not built yet; 'lambdalog %s' does nothing until it lands", e.capability, e.cmd)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		printOverview(stdout, cmds)
		return 0
	}
	if args[0] == "help" {
		if len(args) == 1 {
			printOverview(stdout, cmds)
			return 0
		}
		c := find(cmds, args[1])
		if c == nil {
			fmt.Fprintf(stderr, "lambdalog: unknown command %q; run 'lambdalog help'\n", args[1])
			return 2
		}
		printHelp(stdout, c)
		return 0
	}
	c := find(cmds, args[0])
	if c == nil {
		fmt.Fprintf(stderr, "lambdalog: unknown command %q; run 'lambdalog help'\n", args[0])
		return 2
	}
	err := execute(ctx, c, args[1:], stdin, stdout, stderr, environ)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout, c)
		return 0
	case errors.As(err, new(exitError)):
		var ee exitError
		errors.As(err, &ee)
		if ee.msg != "" {
			fmt.Fprintf(stderr, "lambdalog %s: %s\n", c.name, ee.msg)
		}
		return ee.code
	case isUsage(err):
		fmt.Fprintf(stderr, "lambdalog %s: %v\nrun 'lambdalog help %s' for usage\n", c.name, err, c.name)
		return 2
	case config.Problems(err) != nil:
		fmt.Fprintf(stderr, "lambdalog %s: %v\n", c.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "lambdalog %s: %v\n", c.name, err)
		return 1
	}
}

// exitError ends a command with a given exit code and message, for commands
// that already reported the details themselves.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// commonFlags are accepted by every subcommand.
type commonFlags struct {
	config, brokers, dataset, clickhouse, logFormat, logLevel string
	sets                                                      []string
	validateOnly                                              bool
}

func (cf *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.config, "config", "", "YAML configuration `FILE` (also LAMBDALOG_CONFIG)")
	fs.StringVar(&cf.brokers, "brokers", "", "Kafka seed brokers `HOST:PORT[,..]` (kafka.brokers)")
	fs.StringVar(&cf.dataset, "dataset", "", "master dataset `URL`: file:///abs/path or hdfs://host:port/path (dataset.url)")
	fs.StringVar(&cf.clickhouse, "clickhouse", "", "ClickHouse `DSN` clickhouse://user:pass@host:port/db (clickhouse.dsn)")
	fs.StringVar(&cf.logFormat, "log-format", "", "log format: text or json (log.format)")
	fs.StringVar(&cf.logLevel, "log-level", "", "log level: debug, info, warn or error (log.level)")
	fs.BoolVar(&cf.validateOnly, "validate-only", false, "parse the command line and configuration, report problems, and exit without running")
	fs.Func("set", "override any configuration key: `KEY=VALUE` (repeatable)", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		cf.sets = append(cf.sets, s)
		return nil
	})
}

func (cf *commonFlags) settings() []config.Setting {
	var out []config.Setting
	add := func(key, flagName, v string) {
		if v != "" {
			out = append(out, config.Setting{Key: key, Value: v, Source: "flag --" + flagName})
		}
	}
	add("kafka.brokers", "brokers", cf.brokers)
	add("dataset.url", "dataset", cf.dataset)
	add("clickhouse.dsn", "clickhouse", cf.clickhouse)
	add("log.format", "log-format", cf.logFormat)
	add("log.level", "log-level", cf.logLevel)
	for _, s := range cf.sets {
		k, v, _ := strings.Cut(s, "=")
		out = append(out, config.Setting{Key: k, Value: v, Source: "flag --set " + k})
	}
	return out
}

func newFlagSet(c *command, cf *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("lambdalog "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf.register(fs)
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

// parseInterspersed parses flags wherever they appear among positional
// arguments, as operators expect (`lambdalog parse FILE --format sshd`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func execute(ctx context.Context, c *command, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) error {
	var cf commonFlags
	fs := newFlagSet(c, &cf)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	file := cf.config
	if file == "" {
		file = lookupEnv(environ, "LAMBDALOG_CONFIG")
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ, configFile: file, flagsSet: set}
	cfg, err := config.Loader{File: file, Env: environ, Sets: cf.settings()}.Load()
	if err != nil {
		if config.Problems(err) == nil || c.name != "config" {
			return err
		}
		e.cfgErr = err
	}
	e.cfg = cfg
	logger, lerr := obs.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if lerr != nil {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	e.log = logger.With("cmd", c.name)
	if cf.validateOnly {
		fmt.Fprintf(stdout, "ok: lambdalog %s command line and configuration are valid\n", c.name)
		return nil
	}
	return c.run(ctx, e, pos)
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printOverview(w io.Writer, cmds []*command) {
	fmt.Fprint(w, "lambdalog: security-log analytics on a Lambda architecture.\n\nUsage: lambdalog COMMAND [flags]\n\nCommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'lambdalog help COMMAND' for a command's flags. Every command also takes\n--config, --brokers, --dataset, --clickhouse, --log-format, --log-level, --set\nand --validate-only.\nExit codes: 0 success, 1 runtime failure, 2 usage or configuration error.\n")
}

func printHelp(w io.Writer, c *command) {
	var cf commonFlags
	fs := newFlagSet(c, &cf)
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, c.summary)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
	}
	common := map[string]bool{"config": true, "brokers": true, "dataset": true, "clickhouse": true, "log-format": true, "log-level": true, "set": true, "validate-only": true}
	fs.SetOutput(w)
	fmt.Fprint(w, "\nFlags:\n")
	printFlags(w, fs, func(name string) bool { return !common[name] })
	fmt.Fprint(w, "\nCommon flags:\n")
	printFlags(w, fs, func(name string) bool { return common[name] })
}

func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) {
			return
		}
		n++
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
	if n == 0 {
		fmt.Fprintln(w, "  (none)")
	}
}
