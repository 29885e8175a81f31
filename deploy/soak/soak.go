package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

const (
	consumeGroup  = "soak-consume"
	realtimeGroup = "soak-realtime"
	alertsTopic   = "alerts"
	readyTimeout  = 60 * time.Second
	stopTimeout   = 30 * time.Second
)

var sourceTopics = []string{"auth", "firewall", "ids", "web"}

// platform is the running set of processes.
type platform struct {
	o   options
	out io.Writer
	dir string
	sum *summary

	mu    sync.Mutex
	procs []*proc

	broker, hdfs, serve *proc
	consumers           []*proc
	realtimes           []*proc

	ch             *chserver.Server
	chTCP, chHTTP  int
	chPeakKB       int64
	brokers        string
	datasetURL     string
	faultsURL      string
	serveToken     string
	adm            *kadm.Client
	kcl            *kgo.Client
	faultsDone     int
	faultsPlanned  int
	recoveries     []recovery
	trafficDone    chan struct{} // closed when gen has exited
	batchRuns      int
	commonArgs     []string
	progressCancel context.CancelFunc
}

// recovery is the outcome of one injected fault.
type recovery struct {
	fault  string
	took   time.Duration
	detail string
	err    error
}

// run runs one soak and returns its summary; an error means the platform
// could not be set up at all.
func run(ctx context.Context, o options) (*summary, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir := o.WorkDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "lambdalog-soak-"); err != nil {
			return nil, fmt.Errorf("soak: work dir: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("soak: work dir: %w", err)
	}
	p := &platform{o: o, out: o.Out, dir: dir, sum: &summary{}, serveToken: "soak-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	defer p.shutdown() // also on a panic; a second call does nothing
	err := p.soak(ctx)
	p.shutdown()
	p.sum.write(p.out)
	switch {
	case err != nil:
		fmt.Fprintf(p.out, "soak: FAILED to run: %v\nlogs in %s\n", err, dir)
	case !p.sum.passed():
		fmt.Fprintf(p.out, "soak: FAILED (%d checks); logs in %s\n", len(p.sum.failed()), dir)
	default:
		if n := p.sum.gaps(); n > 0 {
			fmt.Fprintf(p.out, "soak: PASSED, with %d known gap(s) (GAP rows, see docs/reliability.md)\n", n)
		} else {
			fmt.Fprintf(p.out, "soak: PASSED\n")
		}
		if o.WorkDir == "" && !o.Keep {
			defer os.RemoveAll(dir)
		} else {
			fmt.Fprintf(p.out, "logs in %s\n", dir)
		}
	}
	return p.sum, err
}

func (p *platform) soak(ctx context.Context) error {
	o := p.o
	if o.Bin == "" {
		bin, err := buildBinary(ctx, p.dir, p.out)
		if err != nil {
			return err
		}
		p.o.Bin, o.Bin = bin, bin
	}
	fmt.Fprintf(p.out, "soak: %v of traffic at %.0f events/s (seed %d), %d partitions, %d speed layer instances, dataset on %s; work dir %s\n",
		o.Duration, o.Rate, o.Seed, o.Partitions, o.Realtime, map[bool]string{true: "HDFS", false: "local disk"}[o.HDFS], p.dir)

	if err := p.startClickHouse(ctx, 0, 0); err != nil {
		return err
	}
	if err := p.startServices(ctx); err != nil {
		return err
	}
	mctx, stopMonitor := context.WithCancel(ctx)
	monitorDone := make(chan struct{})
	go func() { defer close(monitorDone); p.monitor(mctx) }()
	defer func() { stopMonitor(); <-monitorDone }()

	// Traffic.
	truthFile := filepath.Join(p.dir, "truth.jsonl")
	genProc := p.newProc("gen", "gen", "", append([]string{"gen", "--seed", strconv.FormatUint(o.Seed, 10),
		"--rate", strconv.FormatFloat(o.Rate, 'f', -1, 64), "--duration", o.Duration.String(),
		"--start", o.Start.Format(time.RFC3339), "--attack-every", o.AttackEvery.String(), "--truth", truthFile}, p.commonArgs...)...)
	if err := genProc.start(); err != nil {
		return err
	}
	t0 := time.Now()
	p.trafficDone = genProc.done
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); p.injectFaults(ctx, t0) }()
	p.progress(ctx, t0, genProc)
	gctx, cancel := context.WithTimeout(ctx, o.Duration+2*time.Minute)
	genErr := genProc.wait(gctx)
	cancel()
	<-faultsDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.sum.add("gen produced the whole run", exitText(genErr), "exit 0", genErr == nil)

	// Everything produced must be consumed: lag to zero.
	for _, g := range []string{consumeGroup, realtimeGroup} {
		begin := time.Now()
		err := p.waitLagZero(ctx, g, o.RecoveryBound)
		p.sum.add("lag of "+g+" at the end", lagText(err, time.Since(begin)), "0 within "+o.RecoveryBound.String(), err == nil)
	}
	p.checkGoroutines(ctx)

	want, regen, err := expected(ctx, gen.Options{Seed: o.Seed, Rate: o.Rate, Duration: o.Duration, Start: o.Start,
		AttackEvery: o.AttackEvery, MaxSkew: time.Second, LateFraction: 0.001, LateBy: 2 * time.Minute})
	if err != nil {
		return err
	}
	p.checkBatch(ctx, want)
	p.checkAlerts(ctx, truthFile, regen)

	// Clean shutdown of the services, then the dataset at rest.
	for _, s := range slices.Concat(p.realtimes, p.consumers, []*proc{p.serve}) {
		if s.exited() {
			continue
		}
		err := s.signal(syscall.SIGTERM, stopTimeout)
		p.sum.add("clean stop of "+s.name, exitText(err), "exit 0", err == nil)
	}
	p.checkDataset(ctx, want)
	p.reportFaults()
	p.reportMemory()
	p.reportCrashes()
	return nil
}

// newProc registers a process of the platform.
func (p *platform) newProc(name, role, base string, args ...string) *proc {
	pr := &proc{name: name, role: role, base: base, argv: append([]string{p.o.Bin}, args...), logDir: filepath.Join(p.dir, "logs"),
		oneShot: role == "gen" || role == "batch"}
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	return pr
}

// startClickHouse starts the private server (again, on the same ports and
// directory, after a stop).
func (p *platform) startClickHouse(ctx context.Context, tcp, http int) error {
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	ch, err := chserver.Start(sctx, chserver.Options{Dir: filepath.Join(p.dir, "clickhouse"), TCPPort: tcp, HTTPPort: http})
	if err != nil {
		return fmt.Errorf("soak: clickhouse: %w", err)
	}
	_, tp, _ := net.SplitHostPort(ch.TCPAddr())
	_, hp, _ := net.SplitHostPort(ch.HTTPAddr())
	p.chTCP, _ = strconv.Atoi(tp)
	p.chHTTP, _ = strconv.Atoi(hp)
	p.mu.Lock()
	p.ch = ch
	p.mu.Unlock()
	if _, err := ch.Query(sctx, "CREATE DATABASE IF NOT EXISTS lambdalog"); err != nil {
		return fmt.Errorf("soak: clickhouse: create database: %w", err)
	}
	return nil
}

func (p *platform) clickhouse() *chserver.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch
}

// startServices starts the broker, HDFS, two consumers, two speed layer
// instances and the reports server, each ready before the next.
func (p *platform) startServices(ctx context.Context) error {
	o := p.o
	addrs := map[string]string{}
	for _, k := range []string{"broker", "broker-http", "hdfs", "hdfs-http", "hdfs-faults", "serve",
		"consume-1", "consume-2", "consume-3", "realtime-1", "realtime-2"} {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		addrs[k] = a
	}
	p.brokers = addrs["broker"]
	if o.HDFS {
		p.datasetURL = "hdfs://" + addrs["hdfs"] + "/lambdalog"
		p.faultsURL = "http://" + addrs["hdfs-faults"] + "/faults"
	} else {
		p.datasetURL = "file://" + filepath.Join(p.dir, "dataset")
	}
	p.commonArgs = []string{"--brokers", p.brokers, "--dataset", p.datasetURL,
		"--clickhouse", p.clickhouse().DSN("lambdalog"), "--log-level", "info",
		"--set", "dataset.hdfs.user=soak"}

	p.broker = p.newProc("broker", "broker", "http://"+addrs["broker-http"], "broker", "--listen", p.brokers,
		"--partitions", strconv.Itoa(o.Partitions), "--http", addrs["broker-http"])
	ready := []*proc{p.broker}
	if o.HDFS {
		p.hdfs = p.newProc("hdfs", "hdfs", "http://"+addrs["hdfs-http"], "hdfs", "--listen", addrs["hdfs"],
			"--http", addrs["hdfs-http"], "--faults", addrs["hdfs-faults"], "--dir", filepath.Join(p.dir, "hdfs"))
		ready = append(ready, p.hdfs)
	}
	for _, s := range ready {
		if err := p.startReady(ctx, s); err != nil {
			return err
		}
	}
	var err error
	if p.kcl, err = kgo.NewClient(kgo.SeedBrokers(p.brokers)); err != nil {
		return fmt.Errorf("soak: kafka client: %w", err)
	}
	p.adm = kadm.NewClient(p.kcl)

	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("consume-%d", i)
		c := p.newProc(name, "consume", "http://"+addrs[name], append([]string{"consume", "--group", consumeGroup, "--http", addrs[name],
			"--set", "consumer.session_timeout=" + o.SessionTimeout.String(), "--set", "dataset.roll_interval=1s"}, p.commonArgs...)...)
		p.consumers = append(p.consumers, c)
	}
	for i := 1; i <= o.Realtime; i++ {
		name := fmt.Sprintf("realtime-%d", i)
		r := p.newProc(name, "realtime", "http://"+addrs[name], append([]string{"realtime", "--http", addrs[name],
			"--set", "realtime.group=" + realtimeGroup, "--set", "realtime.transactional_id=soak-" + name,
			"--set", "realtime.session_timeout=" + o.SessionTimeout.String()}, p.commonArgs...)...)
		p.realtimes = append(p.realtimes, r)
	}
	p.serve = p.newProc("serve", "serve", "http://"+addrs["serve"], append([]string{"serve", "--listen", addrs["serve"],
		"--realtime-url", "http://" + addrs["realtime-1"]}, p.commonArgs...)...)
	p.serve.env = []string{"LAMBDALOG_SERVE_TOKEN=" + p.serveToken}
	// consume-3 joins later: it is the rebalance fault.
	for _, s := range slices.Concat(p.consumers[:2], p.realtimes, []*proc{p.serve}) {
		if err := p.startReady(ctx, s); err != nil {
			return err
		}
	}
	fmt.Fprintf(p.out, "soak: platform up: broker %s, dataset %s, clickhouse %s, serve %s\n", p.brokers, p.datasetURL, p.clickhouse().TCPAddr(), p.serve.base)
	return nil
}

// startReady starts a service for the first time and waits until it is
// ready. A port chosen free can be taken before the service binds it (a
// client connection's ephemeral port, another engineer's process): then it
// moves the service to a new port and tries again.
func (p *platform) startReady(ctx context.Context, s *proc) error {
	for attempt := 1; ; attempt++ {
		from := s.logSize()
		if err := s.start(); err != nil {
			return err
		}
		err := s.waitReady(ctx, readyTimeout)
		if err == nil {
			return nil
		}
		if attempt == 3 || !s.exited() || !s.logContains("address already in use", from) {
			return err
		}
		if err := p.movePort(s, from); err != nil {
			return err
		}
		fmt.Fprintf(p.out, "soak: %s: port taken, retrying on another\n", s.name)
	}
}

// movePort replaces, in every process's arguments, the address the
// service failed to bind with a new free one.
func (p *platform) movePort(s *proc, from int64) error {
	b, _ := os.ReadFile(s.logPath())
	m := regexp.MustCompile(`listen tcp (127\.0\.0\.1:\d+): bind: address already in use`).FindSubmatch(b[from:])
	if m == nil {
		return fmt.Errorf("soak: %s: cannot tell which port was taken", s.name)
	}
	old := string(m[1])
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	p.mu.Lock()
	procs := slices.Clone(p.procs)
	p.mu.Unlock()
	for _, pr := range procs {
		pr.mu.Lock()
		for i, a := range pr.argv {
			pr.argv[i] = strings.ReplaceAll(a, old, addr)
		}
		pr.base = strings.ReplaceAll(pr.base, old, addr)
		pr.mu.Unlock()
	}
	for i, a := range p.commonArgs {
		p.commonArgs[i] = strings.ReplaceAll(a, old, addr)
	}
	if p.brokers == old {
		p.brokers = addr
	}
	p.datasetURL = strings.ReplaceAll(p.datasetURL, old, addr)
	p.faultsURL = strings.ReplaceAll(p.faultsURL, old, addr)
	return nil
}

// monitor samples peak memory every 250 ms and each incarnation's
// goroutines once it has run for 5 s.
func (p *platform) monitor(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		procs := slices.Clone(p.procs)
		ch := p.ch
		p.mu.Unlock()
		p.restartCrashed()
		for _, pr := range procs {
			pr.sampleRSS()
			pr.mu.Lock()
			sample := pr.base != "" && pr.goStart == 0 && pr.cmd != nil && !pr.exited() && time.Since(pr.started) > 5*time.Second
			pr.mu.Unlock()
			if sample {
				if n, err := pr.goroutines(ctx); err == nil {
					pr.mu.Lock()
					pr.goStart = n
					pr.mu.Unlock()
				}
			}
		}
		if ch != nil {
			select {
			case <-ch.Done():
			default:
				if kb, err := vmHWM(ch.Pid()); err == nil {
					p.mu.Lock()
					p.chPeakKB = max(p.chPeakKB, kb)
					p.mu.Unlock()
				}
			}
		}
	}
}

// restartCrashed restarts services that exited on their own, as an
// orchestrator's restart policy would (at most 20 times each); the exits
// are reported in the summary.
func (p *platform) restartCrashed() {
	if p.broker == nil || p.serve == nil {
		return
	}
	for _, s := range p.services() {
		s.mu.Lock()
		crashed := s.cmd != nil && !s.expected && len(s.crashes) <= 20
		s.mu.Unlock()
		if !crashed || !s.exited() {
			continue
		}
		fmt.Fprintf(p.out, "soak: %s exited on its own; restarting it\n%s\n", s.name, s.tail(5))
		s.mu.Lock()
		s.goStart = 0
		s.mu.Unlock()
		if err := s.start(); err != nil {
			fmt.Fprintf(p.out, "soak: restart %s: %v\n", s.name, err)
		}
	}
}

// progress prints a line every ProgressEvery until gen exits.
func (p *platform) progress(ctx context.Context, t0 time.Time, genProc *proc) {
	t := time.NewTicker(p.o.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-genProc.done:
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ends, err := endOffsets(qctx, p.adm, sourceTopics...)
		var produced int64
		if err == nil {
			produced = ends.total()
		}
		cl, _ := behind(qctx, p.adm, consumeGroup, ends)
		rl, _ := behind(qctx, p.adm, realtimeGroup, ends)
		cancel()
		el := time.Since(t0).Round(time.Second)
		p.mu.Lock()
		done, planned := p.faultsDone, p.faultsPlanned
		p.mu.Unlock()
		fmt.Fprintf(p.out, "soak: %v/%v (ETA %v) | produced %d events | faults %d/%d | consume lag %d | realtime lag %d\n",
			el, p.o.Duration, max(p.o.Duration-el, 0), produced, done, planned, cl, rl)
	}
}

// fault is one scheduled fault: at a fraction of the traffic's duration.
type fault struct {
	at   float64
	name string
	do   func(ctx context.Context) recovery
	// once: only in the first cycle (the batch run it interrupts grows
	// with the data, so a later one would measure the batch, not the
	// recovery).
	once bool
}

// injectFaults runs the schedule, one fault at a time: each waits until
// the previous one has recovered.
func (p *platform) injectFaults(ctx context.Context, t0 time.Time) {
	plan := []fault{
		{0.10, "SIGKILL consume-1, restarted", func(ctx context.Context) recovery {
			return p.killRestart(ctx, p.consumers[0], consumeGroup)
		}, false},
		{0.20, "SIGKILL realtime-1, restarted", func(ctx context.Context) recovery {
			return p.killRestart(ctx, p.realtimes[0], realtimeGroup)
		}, false},
		{0.30, "consume-3 added (rebalance)", p.addConsumer, false},
		{0.40, "consume-3 removed (rebalance)", p.removeConsumer, false},
	}
	if p.o.HDFS {
		plan = append(plan, fault{0.50, "HDFS errors for 3 s", p.hdfsErrors, false})
	}
	plan = append(plan, fault{0.60, "ClickHouse stopped during a batch run, restarted", p.clickhouseOutage, true})
	// The schedule repeats every cycle (about 100 s) of the run, so a long
	// soak injects each fault several times.
	cycles := max(1, int(p.o.Duration/faultCycle))
	cycleLen := p.o.Duration / time.Duration(cycles)
	planned := 0
	for _, f := range plan {
		planned += map[bool]int{true: 1, false: cycles}[f.once]
	}
	p.mu.Lock()
	p.faultsPlanned = planned
	p.mu.Unlock()
	for c := 0; c < cycles; c++ {
		for _, f := range plan {
			if f.once && c > 0 {
				continue
			}
			at := t0.Add(time.Duration(c)*cycleLen + time.Duration(f.at*float64(cycleLen)))
			if !p.inject(ctx, at, f) {
				return
			}
		}
	}
}

// faultCycle is the length of one round of the fault schedule: room for
// every fault's recovery (about 40 s on 2 busy cores) with traffic between.
const faultCycle = 100 * time.Second

// inject waits until at and injects f; false when ctx ended or the
// traffic is over (a fault without traffic shows nothing: the rest of the
// schedule is dropped and reported).
func (p *platform) inject(ctx context.Context, at time.Time, f fault) bool {
	select {
	case <-time.After(time.Until(at)):
	case <-ctx.Done():
		return false
	case <-p.trafficDone:
		return false
	}
	fmt.Fprintf(p.out, "soak: fault: %s\n", f.name)
	r := f.do(ctx)
	r.fault = f.name
	if r.err != nil {
		fmt.Fprintf(p.out, "soak: fault %s: not recovered: %v\n", f.name, r.err)
	} else {
		fmt.Fprintf(p.out, "soak: fault %s: recovered in %v (%s)\n", f.name, r.took.Round(time.Millisecond), r.detail)
	}
	p.mu.Lock()
	p.recoveries = append(p.recoveries, r)
	p.faultsDone++
	p.mu.Unlock()
	return true
}

// killRestart SIGKILLs a service, restarts it at once and waits until its
// group has processed everything produced before the restart.
func (p *platform) killRestart(ctx context.Context, s *proc, group string) recovery {
	t := time.Now()
	if err := s.signal(syscall.SIGKILL, 10*time.Second); err == nil {
		return recovery{err: fmt.Errorf("%s exited cleanly before the SIGKILL", s.name)}
	}
	s.mu.Lock()
	s.goStart = 0
	s.mu.Unlock()
	if err := s.start(); err != nil {
		return recovery{err: err}
	}
	if err := s.waitReady(ctx, readyTimeout); err != nil {
		return recovery{err: err}
	}
	ready := time.Since(t)
	return p.caughtUp(ctx, t, group, fmt.Sprintf("ready again after %v", ready.Round(time.Millisecond)))
}

// caughtUp waits until group has committed the end offsets of now.
func (p *platform) caughtUp(ctx context.Context, t time.Time, group, detail string) recovery {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	target, err := endOffsets(qctx, p.adm, sourceTopics...)
	cancel()
	if err != nil {
		return recovery{err: err}
	}
	if err := waitCaughtUp(ctx, p.adm, group, target, p.o.RecoveryBound); err != nil {
		p.dumpStuck(group)
		return recovery{err: err, took: time.Since(t)}
	}
	return recovery{took: time.Since(t), detail: detail + "; " + group + " caught up"}
}

// dumpStuck makes the group's members write their goroutines into their
// logs (SIGQUIT) when they did not recover: the soak fails anyway, and a
// dump says where they hang.
func (p *platform) dumpStuck(group string) {
	members := p.consumers
	if group == realtimeGroup {
		members = p.realtimes
	}
	for _, s := range members {
		if pid := s.pid(); pid > 0 {
			s.mu.Lock()
			s.expected = true
			s.mu.Unlock()
			fmt.Fprintf(p.out, "soak: %s did not recover; its goroutines go to %s\n", s.name, s.logPath())
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
}

func (p *platform) addConsumer(ctx context.Context) recovery {
	t := time.Now()
	c := p.consumers[2]
	if err := c.start(); err != nil {
		return recovery{err: err}
	}
	if err := c.waitReady(ctx, readyTimeout); err != nil {
		return recovery{err: err}
	}
	return p.caughtUp(ctx, t, consumeGroup, "3 consumers")
}

func (p *platform) removeConsumer(ctx context.Context) recovery {
	t := time.Now()
	c := p.consumers[2]
	if err := c.signal(syscall.SIGTERM, stopTimeout); err != nil {
		return recovery{err: fmt.Errorf("consume-3 did not stop cleanly: %w", err)}
	}
	return p.caughtUp(ctx, t, consumeGroup, "consume-3 left cleanly")
}

// hdfsErrors makes every NameNode `complete` and every third block write
// fail for 3 s: consumers' commits fail and must be retried (or the
// process restarted) without losing or duplicating a record.
func (p *platform) hdfsErrors(ctx context.Context) recovery {
	t := time.Now()
	for _, f := range []string{`{"op":"complete","nth":0,"action":"fail"}`, `{"op":"create","nth":0,"action":"fail","exception":"org.apache.hadoop.ipc.RetriableException"}`} {
		code, body, err := httpDo(ctx, "POST", p.faultsURL, f, "")
		if err != nil || code != 201 {
			return recovery{err: fmt.Errorf("arm HDFS fault %s: %d %s %v", f, code, body, err)}
		}
	}
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return recovery{err: ctx.Err()}
	}
	_, body, err := httpDo(ctx, "DELETE", p.faultsURL, "", "")
	if err != nil {
		return recovery{err: fmt.Errorf("disarm HDFS faults: %w", err)}
	}
	var st struct{ Fired int }
	_ = json.Unmarshal([]byte(body), &st)
	if st.Fired == 0 {
		return recovery{err: errors.New("no HDFS call hit the armed faults: the fault window saw no commit")}
	}
	// A consumer that exits on the error is restarted by the monitor.
	return p.caughtUp(ctx, t, consumeGroup, fmt.Sprintf("%d HDFS calls failed", st.Fired))
}

// clickhouseOutage starts a batch run for the data's day, stops ClickHouse
// once the run has applied its migrations (the jobs are running), starts
// it again on the same ports 2 s later, and waits until a batch run has
// succeeded and the reports server is ready again.
func (p *platform) clickhouseOutage(ctx context.Context) recovery {
	day := p.o.Start.UTC().Format(time.DateOnly)
	b := p.batchRun(day)
	if err := b.start(); err != nil {
		return recovery{err: err}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !b.logContains("applied ClickHouse migrations", 0) && !b.exited() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return recovery{err: ctx.Err()}
	}
	if b.exited() {
		return recovery{err: fmt.Errorf("the batch run ended before ClickHouse could be stopped: %v\n%s", b.exitErr, b.tail(10))}
	}
	t := time.Now()
	ch := p.clickhouse()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stopErr := ch.Stop(sctx)
	cancel()
	down := time.Since(t)
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return recovery{err: ctx.Err()}
	}
	if err := p.startClickHouse(ctx, p.chTCP, p.chHTTP); err != nil {
		return recovery{err: err}
	}
	wctx, cancel := context.WithTimeout(ctx, p.o.BatchRecoveryBound)
	runErr := b.wait(wctx)
	cancel()
	hit := b.logContains("run failed", 0) || runErr != nil
	detail := fmt.Sprintf("stopped in %v (%v); batch run during the outage: %s, saw failures: %v", down.Round(time.Millisecond), exitText(stopErr), exitText(runErr), hit)
	if runErr != nil {
		if err := p.runBatchUntilOK(ctx, day, 3); err != nil {
			return recovery{err: err, took: time.Since(t)}
		}
		detail += "; re-run succeeded"
	}
	if err := p.serve.waitReady(ctx, p.o.RecoveryBound); err != nil {
		return recovery{err: err, took: time.Since(t)}
	}
	if !hit {
		return recovery{err: fmt.Errorf("the outage did not reach the batch run (%s)", detail), took: time.Since(t)}
	}
	return recovery{took: time.Since(t), detail: detail + "; serve ready"}
}

// batchRun makes a `lambdalog batch run` for one day that retries failed
// jobs quickly (the default backoff is 30 s).
func (p *platform) batchRun(day string) *proc {
	p.mu.Lock()
	p.batchRuns++
	n := p.batchRuns
	p.mu.Unlock()
	return p.newProc(fmt.Sprintf("batch-run-%d", n), "batch", "", append([]string{"batch", "run", "--date", day, "--ignore-watermark",
		"--set", "batch.retries=3", "--set", "batch.retry_backoff=1s"}, p.commonArgs...)...)
}

func (p *platform) runBatchUntilOK(ctx context.Context, day string, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		b := p.batchRun(day)
		if err = b.start(); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		err = b.wait(wctx)
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s: %v\n%s", b.name, err, b.tail(10))
	}
	return err
}

func (p *platform) waitLagZero(ctx context.Context, group string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var n int64
	var err error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err = lag(qctx, p.adm, group, sourceTopics)
		cancel()
		if err == nil && n == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%d records behind", n)
}

// checkGoroutines compares each running service's goroutines now with
// the count 5 s after its (last) start.
func (p *platform) checkGoroutines(ctx context.Context) {
	for _, s := range p.services() {
		if s.exited() || s.base == "" {
			continue
		}
		end, err := s.goroutines(ctx)
		s.mu.Lock()
		start := s.goStart
		s.goEnd = end
		s.mu.Unlock()
		if err != nil || start == 0 {
			p.sum.failf("goroutines of "+s.name, "no sample (start %v): %v", start, err)
			continue
		}
		bound := start*(1+p.o.GoroutineGrowth) + p.o.GoroutineSlack
		p.sum.add("goroutines of "+s.name+" (start -> end)", fmt.Sprintf("%.0f -> %.0f", start, end), fmt.Sprintf("<= %.0f", bound), end <= bound)
	}
}

// services are the long-running processes.
func (p *platform) services() []*proc {
	out := []*proc{p.broker}
	if p.hdfs != nil {
		out = append(out, p.hdfs)
	}
	out = append(out, p.consumers...)
	out = append(out, p.realtimes...)
	return append(out, p.serve)
}

// checkBatch runs the batch jobs for every day of the data and compares
// the reports, read through the reports server, with the ground truth.
func (p *platform) checkBatch(ctx context.Context, want *counts) {
	var days []string
	for k := range want.perDay {
		d, _, _ := strings.Cut(k, "|")
		if !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	sort.Strings(days)
	for _, d := range days {
		begin := time.Now()
		err := p.runBatchUntilOK(ctx, d, 2)
		p.sum.add("batch run "+d, fmt.Sprintf("%s in %v", exitText(err), time.Since(begin).Round(time.Millisecond)), "exit 0", err == nil)
	}
	from, to := days[0], days[len(days)-1]
	res, err := p.report(ctx, "events_per_day", "from="+from+"&to="+to)
	if err != nil {
		p.sum.failf("report events_per_day = truth", "%v", err)
	} else {
		got := map[string]int64{}
		var total int64
		for _, r := range res {
			n := toInt(r[2])
			got[fmt.Sprint(r[0])+"|"+fmt.Sprint(r[1])] = n
			total += n
		}
		var wantTotal int64
		for _, v := range want.perDay {
			wantTotal += v
		}
		n, ex := diffCounts(want.perDay, got, 5)
		p.sum.add("report events_per_day = truth", fmt.Sprintf("%d events in %d rows, %d differ %v", total, len(res), n, ex), fmt.Sprintf("%d events", wantTotal), n == 0)
	}
	res, err = p.report(ctx, "auth_failures_by_ip", "from="+from+"&to="+to+"&limit=100000")
	if err != nil {
		p.sum.failf("report auth_failures_by_ip = truth", "%v", err)
	} else {
		got := map[string]int64{}
		var total, wantTotal int64
		for _, r := range res {
			got[fmt.Sprint(r[0])] = toInt(r[1])
			total += toInt(r[1])
		}
		for _, v := range want.authFailures {
			wantTotal += v
		}
		n, ex := diffCounts(want.authFailures, got, 5)
		p.sum.add("report auth_failures_by_ip = truth", fmt.Sprintf("%d failures from %d sources, %d differ %v", total, len(got), n, ex),
			fmt.Sprintf("%d from %d", wantTotal, len(want.authFailures)), n == 0)
	}
}

// report runs a named report through the reports server's API.
func (p *platform) report(ctx context.Context, name, query string) ([][]any, error) {
	code, body, err := httpDo(ctx, "GET", p.serve.base+"/api/reports/"+name+"?"+query, "", p.serveToken)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET /api/reports/%s: %d %.300s", name, code, body)
	}
	var res struct{ Rows [][]any }
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	return res.Rows, nil
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case float64:
		return int64(x)
	}
	return -1
}

// checkAlerts compares the alerts topic (read committed) with the ground
// truth gen wrote: one start alert per attack, for its rule and key,
// nothing else, no alert id twice.
func (p *platform) checkAlerts(ctx context.Context, truthFile string, regen *gen.Truth) {
	f, err := os.Open(truthFile)
	if err != nil {
		p.sum.failf("alerts = ground truth", "truth file: %v", err)
		return
	}
	truth, err := gen.ReadTruth(f)
	f.Close()
	if err != nil {
		p.sum.failf("alerts = ground truth", "%v", err)
		return
	}
	p.sum.add("ground truth reproduced in-process", fmt.Sprintf("%d attacks (gen wrote %d)", len(regen.Records), len(truth)), "equal", len(regen.Records) == len(truth) && len(truth) > 0)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	alerts, err := readAlerts(rctx, p.brokers, alertsTopic)
	cancel()
	if err != nil {
		p.sum.failf("alerts = ground truth", "%v", err)
		return
	}
	ids := map[string]int{}
	dups := 0
	starts := map[string]int{}
	for _, a := range alerts {
		if ids[a.ID]++; ids[a.ID] == 2 {
			dups++
		}
		if a.Type == alert.TypeStart {
			starts[a.RuleID+"|"+strings.Join(a.KeyValues, ",")]++
		}
	}
	p.sum.add("alert ids published twice", strconv.Itoa(dups)+fmt.Sprintf(" of %d alerts", len(ids)), "0", dups == 0)
	// Inputs are keyed by source address, so a rule keyed by anything
	// else (a user, a destination) sees its key's events spread over
	// partitions that several instances own: each instance counts a part.
	rs, err := rules.Default()
	if err != nil {
		p.sum.failf("alerts = ground truth", "rules: %v", err)
		return
	}
	local := func(rule string) bool {
		r, ok := rs.Rule(rule)
		return ok && len(r.Key) == 1 && r.Key[0] == "source_ip"
	}
	// An attack kind may reuse a key in a long run (a ddos target): count
	// the instances per rule and key.
	wantBy := map[bool]map[string]int{true: {}, false: {}}
	for _, r := range truth {
		wantBy[local(r.Rule)][r.Rule+"|"+r.Key]++
	}
	for _, partitionLocal := range []bool{true, false} {
		want := wantBy[partitionLocal]
		var missing, unexpected, repeated []string
		attacks := 0
		for k, n := range want {
			attacks += n
			if starts[k] < n {
				missing = append(missing, fmt.Sprintf("%s x%d", k, n-starts[k]))
			}
		}
		for k, n := range starts {
			rule, _, _ := strings.Cut(k, "|")
			if local(rule) != partitionLocal {
				continue
			}
			if want[k] == 0 {
				unexpected = append(unexpected, k)
			} else if n > want[k] {
				repeated = append(repeated, fmt.Sprintf("%s x%d", k, n-want[k]))
			}
		}
		sort.Strings(missing)
		sort.Strings(unexpected)
		sort.Strings(repeated)
		check := "alerts = ground truth (rules keyed by source_ip)"
		if !partitionLocal {
			check = "alerts = ground truth (rules keyed across partitions)"
		}
		alerted := 0
		for k, n := range want {
			alerted += min(n, starts[k])
		}
		value := fmt.Sprintf("%d of %d attacks alerted; missing %v, unexpected %v, repeated %v",
			alerted, attacks, first(missing, 5), first(unexpected, 5), first(repeated, 5))
		bound := fmt.Sprintf("%d, none else", attacks)
		ok := len(missing) == 0 && len(unexpected) == 0 && len(repeated) == 0 && (len(want) > 0 || !partitionLocal)
		if !ok && !partitionLocal && p.o.Realtime > 1 && !p.o.StrictCrossPartition {
			p.sum.gap(check, value+fmt.Sprintf(" with %d instances: the speed layer does not repartition by the rule's key", p.o.Realtime), bound)
			continue
		}
		p.sum.add(check, value, bound, ok)
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("...%d more", len(s)-n))
	}
	return s
}

// checkDataset runs `lambdalog dataset verify --json` and counts the
// committed Parquet rows per dataset and per key against the truth.
func (p *platform) checkDataset(ctx context.Context, want *counts) {
	v := p.newProc("dataset-verify", "batch", "", "dataset", "verify", "--json", "--dataset", p.datasetURL, "--set", "dataset.hdfs.user=soak")
	if err := v.start(); err != nil {
		p.sum.failf("dataset verify", "%v", err)
		return
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	verr := v.wait(vctx)
	cancel()
	var rep consumer.Report
	raw, _ := os.ReadFile(v.logPath())
	if i := strings.Index(string(raw), "{"); i >= 0 {
		_ = json.NewDecoder(strings.NewReader(string(raw[i:]))).Decode(&rep)
	}
	var holes, dups, rows, committed int64
	for _, pr := range rep.Partitions {
		holes += int64(len(pr.Holes))
		dups += pr.Duplicates
		rows += pr.Rows
		committed += pr.Next - pr.Start
	}
	p.sum.add("lambdalog dataset verify", fmt.Sprintf("%s, ok=%v, %d partitions, %d rows, %d holes, %d duplicates, %d orphans",
		exitText(verr), rep.OK, len(rep.Partitions), rows, holes, dups, len(rep.Orphans)), "exit 0, 0 holes, 0 duplicates", verr == nil && rep.OK && holes == 0 && dups == 0)
	p.sum.add("committed offsets = events generated", fmt.Sprintf("%d", committed), fmt.Sprintf("%d", want.events), committed == want.events)

	fsys, err := storage.Open(ctx, p.datasetURL, storage.Options{User: "soak"})
	if err != nil {
		p.sum.failf("dataset rows per key = truth", "%v", err)
		return
	}
	defer fsys.Close()
	got, err := stored(ctx, fsys)
	if err != nil {
		p.sum.failf("dataset rows per key = truth", "%v", err)
		return
	}
	n, ex := diffCounts(want.perDataset, got.perDataset, 6)
	p.sum.add("dataset rows per dataset = truth", fmt.Sprintf("%d rows %v, %d differ %v", got.events, got.perDataset, n, ex), fmt.Sprintf("%d", want.events), n == 0 && got.events == want.events)
	n, ex = diffCounts(want.perKey, got.perKey, 5)
	p.sum.add("dataset rows per source address = truth", fmt.Sprintf("%d keys, %d differ %v", len(got.perKey), n, ex), fmt.Sprintf("%d keys", len(want.perKey)), n == 0)
}

func (p *platform) reportFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Every kind must have been injected at least once; a schedule cut
	// short by the end of the traffic (a slow recovery delays the rest)
	// is reported.
	kinds := map[string]bool{}
	for _, r := range p.recoveries {
		kinds[r.fault] = true
	}
	minKinds := 5
	if p.o.HDFS {
		minKinds = 6
	}
	p.sum.add("faults injected", fmt.Sprintf("%d of %d scheduled, %d kinds", len(p.recoveries), p.faultsPlanned, len(kinds)),
		fmt.Sprintf("every kind (%d)", minKinds), len(kinds) == minKinds)
	// One row per kind of fault: how often, the slowest and mean
	// recovery, and the details of the slowest (or of a failure).
	var order []string
	by := map[string][]recovery{}
	for _, r := range p.recoveries {
		if by[r.fault] == nil {
			order = append(order, r.fault)
		}
		by[r.fault] = append(by[r.fault], r)
	}
	for _, name := range order {
		rs := by[name]
		var sum, worst time.Duration
		var failed *recovery
		slowest := rs[0]
		for i := range rs {
			sum += rs[i].took
			if rs[i].took >= worst {
				worst, slowest = rs[i].took, rs[i]
			}
			if rs[i].err != nil && failed == nil {
				failed = &rs[i]
			}
		}
		check := "recovery: " + name
		limit := p.o.RecoveryBound
		if strings.HasPrefix(name, "ClickHouse") {
			limit = p.o.BatchRecoveryBound
		}
		bound := "<= " + limit.String()
		if failed != nil {
			p.sum.add(check, fmt.Sprintf("%d of %d not recovered: %v", countErr(rs), len(rs), failed.err), bound, false)
			continue
		}
		p.sum.add(check, fmt.Sprintf("x%d, max %v, mean %v (slowest: %s)", len(rs), worst.Round(time.Millisecond),
			(sum/time.Duration(len(rs))).Round(time.Millisecond), slowest.detail), bound, worst <= limit)
	}
}

func countErr(rs []recovery) int {
	n := 0
	for _, r := range rs {
		if r.err != nil {
			n++
		}
	}
	return n
}

func (p *platform) reportMemory() {
	p.mu.Lock()
	procs := slices.Clone(p.procs)
	chKB := p.chPeakKB
	p.mu.Unlock()
	// One row per role: the largest peak of any of its processes.
	peak := map[string]int64{}
	who := map[string]string{}
	for _, pr := range procs {
		pr.mu.Lock()
		kb := pr.peakKB
		pr.mu.Unlock()
		if kb >= peak[pr.role] {
			peak[pr.role], who[pr.role] = kb, pr.name
		}
	}
	peak["clickhouse"], who["clickhouse"] = chKB, "clickhouse-server"
	roles := make([]string, 0, len(peak))
	for r := range peak {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, r := range roles {
		bound := p.o.BoundsMiB[r]
		mib := float64(peak[r]) / 1024
		p.sum.add("peak RSS of "+r, fmt.Sprintf("%.0f MiB (%s)", mib, who[r]), fmt.Sprintf("<= %d MiB", bound), peak[r] > 0 && mib <= float64(bound))
	}
}

// reportCrashes lists exits nobody asked for; the soak restarted them only
// after the HDFS fault, where exiting is the consumer's documented answer
// to a storage error it cannot retry.
func (p *platform) reportCrashes() {
	p.mu.Lock()
	procs := slices.Clone(p.procs)
	p.mu.Unlock()
	var lines []string
	for _, pr := range procs {
		pr.mu.Lock()
		for _, c := range pr.crashes {
			lines = append(lines, pr.name+" "+c)
		}
		pr.mu.Unlock()
	}
	if len(lines) == 0 {
		p.sum.info("unplanned exits", "none")
		return
	}
	p.sum.info("unplanned exits", strings.Join(lines, "; "))
}

// shutdown stops whatever still runs, services before the broker, HDFS
// and ClickHouse.
func (p *platform) shutdown() {
	p.mu.Lock()
	procs := slices.Clone(p.procs)
	ch := p.ch
	p.mu.Unlock()
	var last []*proc
	for _, pr := range procs {
		if pr == p.broker || pr == p.hdfs {
			last = append(last, pr)
			continue
		}
		if pr.cmd != nil && !pr.exited() {
			_ = pr.signal(syscall.SIGTERM, stopTimeout)
		}
	}
	for _, pr := range last {
		if pr.cmd != nil && !pr.exited() {
			_ = pr.signal(syscall.SIGTERM, stopTimeout)
		}
	}
	if p.kcl != nil {
		p.kcl.Close()
		p.kcl = nil
	}
	if ch != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = ch.Stop(ctx)
		cancel()
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	return err.Error()
}

func lagText(err error, took time.Duration) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("0 after %v", took.Round(time.Millisecond))
}
