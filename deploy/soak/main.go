// Command soak runs the whole lambdalog platform as separate processes on
// loopback — an embedded broker, two exactly-once consumers, two speed
// layer instances, the reports server, the in-process HDFS (or a local
// dataset) and a private ClickHouse — feeds it `lambdalog gen` traffic at
// a steady rate and injects faults on a schedule: SIGKILL of a consumer
// and of a speed layer instance (restarted), a consumer added and removed
// (rebalance), HDFS errors, and ClickHouse stopped and restarted during a
// batch run. At the end it checks that the dataset holds every generated
// event exactly once (per key, against the generator's ground truth), the
// alerts topic exactly the ground truth's alerts, the batch reports the
// truth's counts, memory under bounds, lag back to zero and no goroutine
// leak, prints a summary table and exits 1 on any failure.
//
//	go run ./deploy/soak --duration 10m            # make soak
//	go run ./deploy/soak --duration 60s            # the short one (TestShortSoak)
//
// See docs/reliability.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options configure one soak.
type options struct {
	// Bin is the lambdalog binary; empty builds one into WorkDir.
	Bin string
	// WorkDir holds logs, the dataset, HDFS and ClickHouse data; empty
	// makes a temporary one (removed after a passing run unless Keep).
	WorkDir string
	Keep    bool
	// Duration of the traffic, at Rate events per second, from Seed.
	Duration time.Duration
	Rate     float64
	Seed     uint64
	// Start is the event time of the first event; AttackEvery spaces the
	// attacks of one kind.
	Start       time.Time
	AttackEvery time.Duration
	// Partitions per topic.
	Partitions int
	// Realtime is the number of speed layer instances (one group).
	Realtime int
	// StrictCrossPartition fails the alerts of rules whose key is not the
	// partition key when Realtime > 1, instead of reporting them as the
	// known gap they are (docs/reliability.md).
	StrictCrossPartition bool
	// HDFS puts the dataset on `lambdalog hdfs` (and injects HDFS errors);
	// otherwise on a local directory.
	HDFS bool
	// SessionTimeout is the consumers' and speed layer instances' group
	// session timeout (both default to 10s in the configuration).
	SessionTimeout time.Duration
	// RecoveryBound is the longest a fault may take to recover from.
	RecoveryBound time.Duration
	// BatchRecoveryBound bounds the ClickHouse fault, whose recovery
	// includes finishing the interrupted batch run.
	BatchRecoveryBound time.Duration
	// BoundsMiB is the peak resident memory allowed per role.
	BoundsMiB map[string]int64
	// GoroutineGrowth and GoroutineSlack bound the goroutines at the end:
	// end <= start*(1+GoroutineGrowth) + GoroutineSlack.
	GoroutineGrowth float64
	GoroutineSlack  float64
	// ProgressEvery is the interval of the progress lines.
	ProgressEvery time.Duration
	// Out receives progress lines and the summary.
	Out io.Writer
}

func defaultOptions() options {
	return options{
		Duration:    10 * time.Minute,
		Rate:        2000,
		Seed:        1,
		Start:       time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		AttackEvery: 20 * time.Second,
		Partitions:  4,
		Realtime:    2,
		// Since the speed layer repartitions the input of rules keyed
		// across partitions (fc5f26d), their alerts are checked as
		// strictly as the others'.
		StrictCrossPartition: true,
		HDFS:                 true,
		RecoveryBound:        60 * time.Second,
		SessionTimeout:       10 * time.Second,
		BatchRecoveryBound:   5 * time.Minute,
		// The services' bounds are the memory requests of their
		// Kubernetes manifests (deploy/kubernetes): what the deployment
		// plans for each in steady state. The others are development
		// stand-ins; the embedded broker keeps every record in memory
		// (the 10-minute run's 1.2 M source records, the ~40% of them the
		// speed layer forwards to its repartition topics, alerts and
		// offsets: 1.9 GiB measured), so a longer soak needs a larger
		// --rss-broker.
		BoundsMiB: map[string]int64{
			"consume": 1024, "realtime": 2048, "batch": 1024, "serve": 256,
			"broker": 2560, "hdfs": 512, "gen": 256, "clickhouse": 2048,
		},
		GoroutineGrowth: 0.5,
		GoroutineSlack:  30,
		ProgressEvery:   5 * time.Second,
		Out:             os.Stdout,
	}
}

func main() {
	o := defaultOptions()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&o.Bin, "bin", "", "lambdalog `BINARY` to run (default: go build ./cmd/lambdalog into the work dir)")
	fs.StringVar(&o.WorkDir, "workdir", "", "`DIR` for logs and data (default: a temporary directory, kept when the soak fails)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory after a passing run")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long the traffic runs")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "generated events per second")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "generator seed")
	fs.DurationVar(&o.AttackEvery, "attack-every", o.AttackEvery, "event time between two attacks of one kind (>= 20s)")
	fs.IntVar(&o.Partitions, "partitions", o.Partitions, "partitions per topic")
	fs.IntVar(&o.Realtime, "realtime-instances", o.Realtime, "speed layer instances sharing one group (>= 1)")
	fs.BoolVar(&o.StrictCrossPartition, "strict-cross-partition", o.StrictCrossPartition, "with several speed layer instances, fail (false: only report as a GAP) wrong alerts of rules keyed across partitions")
	fs.BoolVar(&o.HDFS, "hdfs", o.HDFS, "dataset on `lambdalog hdfs` with injected HDFS errors (false: a local directory)")
	fs.DurationVar(&o.SessionTimeout, "session-timeout", o.SessionTimeout, "group session timeout of the consumers and speed layer instances")
	fs.DurationVar(&o.BatchRecoveryBound, "batch-recovery-bound", o.BatchRecoveryBound, "longest the ClickHouse fault may take, the interrupted batch run's completion included")
	fs.DurationVar(&o.RecoveryBound, "recovery-bound", o.RecoveryBound, "longest a fault may take to recover from")
	fs.Float64Var(&o.GoroutineGrowth, "goroutine-growth", o.GoroutineGrowth, "allowed relative goroutine growth, start to end")
	fs.Float64Var(&o.GoroutineSlack, "goroutine-slack", o.GoroutineSlack, "allowed absolute goroutine growth on top of --goroutine-growth")
	bounds := map[string]*int64{}
	for role, def := range o.BoundsMiB {
		bounds[role] = fs.Int64("rss-"+role, def, "peak resident memory bound of "+role+" in `MiB`")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	for role, v := range bounds {
		o.BoundsMiB[role] = *v
	}
	if o.Duration < 20*time.Second || o.Rate <= 0 || o.Partitions < 2 || o.Realtime < 1 {
		fmt.Fprintln(os.Stderr, "soak: want --duration >= 20s, --rate > 0, --partitions >= 2 and --realtime-instances >= 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
	if !sum.passed() {
		os.Exit(1)
	}
}

// buildBinary builds cmd/lambdalog into dir with the go tool.
func buildBinary(ctx context.Context, dir string, out io.Writer) (string, error) {
	bin := filepath.Join(dir, "lambdalog")
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/lambdalog")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	fmt.Fprintf(out, "soak: building %s\n", bin)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("soak: go build ./cmd/lambdalog: %w\n%s", err, stderr.String())
	}
	return bin, nil
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("soak: no go.mod above the working directory")
		}
		dir = parent
	}
}
