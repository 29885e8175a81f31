package consumer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// Commit latency: how long after a record is produced it becomes visible in
// the dataset (its offset covered by a published commit entry), at a steady
// produce rate, with the configuration's default roll and buffer settings.
//
// The consumer runs in a child process (this test binary re-executed into
// TestLatencyConsumerChild), so its peak RSS (VmHWM, read by the child
// itself when it stops) is the consumer's alone: the broker, the producer
// and the bookkeeping of this benchmark live in the parent.
//
// The parent stamps each record's send time, learns its partition and
// offset from the acknowledgement, and polls the newest commit entry of
// every partition every latPoll; a record is visible at the first poll that
// sees an entry covering it (so figures include up to latPoll of polling).

const (
	latPartitions = 6 // topics.partitions' default
	latRate       = 20_000
	latPoll       = 20 * time.Millisecond
	latChildEnv   = "LLTEST_LATENCY_CHILD"
)

// BenchmarkCommitLatency produces latRate records/s for a while and reports
// produce-to-visible p50/p99/max and the consumer's peak RSS. roll=60s is
// the default configuration (dataset.roll_interval 1m, roll_records 5M,
// roll_bytes 128 MiB: at this rate the interval always rolls first); the
// roll=1s case shows what the protocol itself adds.
//
// The child applies the configuration's memory budget, soft memory limit
// and GOGC (dataset.memory_budget_mib, consumer.memory_limit_mib,
// consumer.gc_percent) as lambdalog consume does; the budget=64MiB case
// shows a smaller budget.
func BenchmarkCommitLatency(b *testing.B) {
	cfg := config.Default()
	def := cfg.Dataset
	cases := []struct {
		name          string
		roll          time.Duration
		produce       time.Duration
		budget, limit int // MiB
	}{
		{"roll=60s_default", def.RollInterval.D(), 150 * time.Second, def.MemoryBudgetMiB, cfg.Consumer.MemoryLimitMiB},
		{"roll=60s_budget=64MiB_limit=160MiB", def.RollInterval.D(), 150 * time.Second, 64, 160},
		{"roll=1s", time.Second, 20 * time.Second, def.MemoryBudgetMiB, cfg.Consumer.MemoryLimitMiB},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var all []time.Duration
			var rss int64
			for i := 0; i < b.N; i++ {
				lat, peak := latencyRun(b, tc.roll, tc.produce, tc.budget, tc.limit)
				all = append(all, lat...)
				rss = max(rss, peak)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			q := func(f float64) float64 { return all[int(f*float64(len(all)-1))].Seconds() * 1000 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(all[len(all)-1].Seconds()*1000, "max-ms")
			b.ReportMetric(float64(len(all))/float64(b.N), "records/op")
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		})
	}
}

type latAck struct {
	offset int64
	sent   time.Time
}

type latSeen struct {
	next int64
	at   time.Time
}

func latencyRun(b *testing.B, roll, produceFor time.Duration, budgetMiB, limitMiB int) ([]time.Duration, int64) {
	b.Helper()
	br := kafkatest.Start(b, kafkatest.Options{Topics: []string{"auth"}, Partitions: latPartitions})
	dir := b.TempDir()
	fsys, err := storage.Open(context.Background(), "file://"+dir, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fsys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), produceFor+roll+3*time.Minute)
	defer cancel()

	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLatencyConsumerChild$", "-test.count=1")
	child.Env = append(os.Environ(), latChildEnv+"=1", "LLTEST_LAT_BROKER="+br.Addr(), "LLTEST_LAT_DATASET=file://"+dir,
		"LLTEST_LAT_ROLL="+roll.String(), fmt.Sprintf("LLTEST_LAT_BUDGET_MIB=%d", budgetMiB), fmt.Sprintf("LLTEST_LAT_LIMIT_MIB=%d", limitMiB))
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer child.Process.Kill()

	// Visible from the newest entry of each partition.
	next := func(p int32) int64 {
		e, ok, err := NewLog(fsys, "auth", p).Last(ctx)
		if err != nil || !ok {
			return -1
		}
		return e.Next
	}
	// The child has claimed every partition: each has a claim entry.
	for p := int32(0); p < latPartitions; p++ {
		for next(p) < 0 {
			if ctx.Err() != nil {
				b.Fatalf("the consumer never claimed partition %d: %s", p, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	seen := make([][]latSeen, latPartitions)
	var seenMu sync.Mutex
	visible := func(p int32) int64 {
		seenMu.Lock()
		defer seenMu.Unlock()
		if len(seen[p]) == 0 {
			return 0
		}
		return seen[p][len(seen[p])-1].next
	}
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		last := make([]int64, latPartitions)
		t := time.NewTicker(latPoll)
		defer t.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-t.C:
			}
			for p := int32(0); p < latPartitions; p++ {
				if n := next(p); n > last[p] {
					last[p] = n
					seenMu.Lock()
					seen[p] = append(seen[p], latSeen{next: n, at: time.Now()})
					seenMu.Unlock()
				}
			}
		}
	}()

	// The producer keeps the rate (paced by elapsed time, so a late tick
	// is caught up) until every measured record is visible: records sent
	// after the deadline keep the consumer in its steady state and are
	// not measured, so the last roll is not one that production stopping
	// half-way made look slow.
	cl := kafkatest.Client(b, br)
	var mu sync.Mutex
	acks := make([][]latAck, latPartitions)
	var produceErr error
	var measuredSent, measuredAcked int
	stopProduce := make(chan struct{})
	producing := make(chan struct{})
	begin := time.Now()
	deadline := begin.Add(produceFor)
	b.ResetTimer()
	go func() {
		defer close(producing)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stopProduce:
				return
			case <-tick.C:
			}
			for due := int(time.Since(begin).Seconds() * latRate); i < due; i++ {
				sent := time.Now()
				measured := sent.Before(deadline)
				if measured {
					mu.Lock()
					measuredSent++
					mu.Unlock()
				}
				r := &kgo.Record{Topic: "auth", Key: []byte(strconv.Itoa(i % 101)), Value: []byte(sshdLine(i))}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						produceErr = err
						return
					}
					if measured {
						measuredAcked++
						acks[r.Partition] = append(acks[r.Partition], latAck{offset: r.Offset, sent: sent})
					}
				})
			}
		}
	}()
	allAcked := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if produceErr != nil {
			b.Fatal(produceErr)
		}
		return time.Now().After(deadline) && measuredAcked == measuredSent
	}
	for !allAcked() {
		if ctx.Err() != nil {
			b.Fatal("measured records not acknowledged in time")
		}
		time.Sleep(latPoll)
	}
	want := make([]int64, latPartitions)
	mu.Lock()
	for p, as := range acks {
		for _, a := range as {
			want[p] = max(want[p], a.offset+1)
		}
	}
	mu.Unlock()
	// Every measured record becomes visible by the roll alone: no forced
	// commit at a stop, which would flatter the figures.
	for p := int32(0); p < latPartitions; p++ {
		for visible(p) < want[p] {
			if ctx.Err() != nil {
				b.Fatalf("partition %d: visible up to %d of %d", p, visible(p), want[p])
			}
			time.Sleep(latPoll)
		}
	}
	close(stopProduce)
	<-producing
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(stopPoll)
	<-polled

	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		b.Fatalf("consumer process: %v\n%s", err, out.String())
	}
	var peak int64
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VMHWM "); ok {
			peak, _ = strconv.ParseInt(v, 10, 64)
		}
		if strings.HasPrefix(sc.Text(), "BUDGETROLLS ") {
			b.Log(sc.Text()) // commits the memory budget made early, files in all
		}
	}
	if peak == 0 {
		b.Fatalf("the consumer process reported no peak RSS:\n%s", out.String())
	}

	var lat []time.Duration
	for p, as := range acks {
		sort.Slice(as, func(i, j int) bool { return as[i].offset < as[j].offset })
		k := 0
		for _, a := range as {
			for k < len(seen[p]) && seen[p][k].next <= a.offset {
				k++
			}
			if k == len(seen[p]) {
				b.Fatalf("partition %d offset %d never seen committed", p, a.offset)
			}
			lat = append(lat, seen[p][k].at.Sub(a.sent))
		}
	}
	rep, err := Verify(ctx, fsys)
	if err != nil || !rep.OK {
		b.Fatalf("verify after the run: %v %+v", err, rep)
	}
	return lat, peak
}

// TestLatencyConsumerChild is the consumer process of BenchmarkCommitLatency
// (it does nothing unless started by it): the default configuration's roll
// and buffer settings, the local dataset, until SIGTERM; then it prints its
// peak RSS.
func TestLatencyConsumerChild(t *testing.T) {
	if os.Getenv(latChildEnv) != "1" {
		t.Skip("the consumer process of BenchmarkCommitLatency")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	roll, err := time.ParseDuration(os.Getenv("LLTEST_LAT_ROLL"))
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := storage.Open(ctx, os.Getenv("LLTEST_LAT_DATASET"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	def := config.Default()
	budget, _ := strconv.Atoi(os.Getenv("LLTEST_LAT_BUDGET_MIB"))
	if limit, _ := strconv.Atoi(os.Getenv("LLTEST_LAT_LIMIT_MIB")); limit > 0 {
		debug.SetMemoryLimit(int64(limit) << 20) // as lambdalog consume does
	}
	if pct := def.Consumer.GCPercent; pct > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
	}
	c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(os.Getenv("LLTEST_LAT_BROKER"))}, Group: "latency",
		Sources:     []Source{{"auth", "sshd"}},
		RollRecords: int64(def.Dataset.RollRecords), RollBytes: def.Dataset.RollBytes, RollInterval: roll,
		MemoryBudget:   int64(budget) << 20,
		SessionTimeout: def.Consumer.SessionTimeout.D(), IdleHeartbeat: def.Dataset.IdleHeartbeat.D(),
		CheckpointEvery: int64(def.Dataset.CheckpointEvery)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("VMHWM %d\n", latPeakRSS())
	fmt.Printf("BUDGETROLLS %d FILES %d\n", c.BudgetRolls(), c.FilesCommitted())
}

// latPeakRSS is the process's VmHWM in bytes.
func latPeakRSS() int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
