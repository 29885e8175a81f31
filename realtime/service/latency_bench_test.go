package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/alert"
)

// latencyLoad is the background rate of the latency benchmark, the rate
// the issue names: benign generated traffic on the wall clock, so the
// service's fetches, parsing and transactions are busy while the probes
// are measured.
const latencyLoad = 50_000

// BenchmarkEventToAlertLatency measures the time from producing the event
// that crosses a rule's threshold to the alert being readable by a
// read_committed consumer of the alerts topic, at each transaction
// interval.
//
// The broker, the service, the 50,000 events/s background producer and the
// alert reader share the 2 cores. One op is one probe: a fresh source
// address sends the ssh_bruteforce threshold (5 failed logins, event time
// = wall clock, its own user so no other rule joins in); the clock starts
// when the fifth line is handed to the producer and stops when the
// reader's poll returns the alert keyed on that address. Probes are 20 ms
// apart. Percentiles are over all probes of the run, so use an explicit
// count: -benchtime 1500x.
func BenchmarkEventToAlertLatency(b *testing.B) {
	for _, interval := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("txn=%v", interval), func(b *testing.B) { benchLatency(b, interval) })
	}
}

func benchLatency(b *testing.B, interval time.Duration) {
	br := kafkatest.Start(b, kafkatest.Options{Partitions: 3})
	o := testOptions(b, br, "latency", "alerts")
	o.TransactionInterval = interval
	svc, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	svcDone := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); svcDone <- svc.Run(ctx) }()

	// Background traffic: benign only (no attack can raise an alert that
	// would be mistaken for a probe's), on the wall clock.
	bg := kafkatest.Client(b, br, gen.ProducerOptions(kgo.SnappyCompression())...)
	g, err := gen.New(gen.Options{Seed: 11, Rate: latencyLoad, Start: time.Now(), Attacks: []gen.Attack{}, Pace: true})
	if err != nil {
		b.Fatal(err)
	}
	sink := gen.NewKafkaSink(bg)
	bgDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := g.Run(ctx, sink)
		if ctx.Err() != nil {
			err = nil
		}
		bgDone <- err
	}()

	// The alert reader: each alert of the probe rule, keyed by address,
	// stamped when the poll that returned it came back.
	var (
		mu      sync.Mutex
		seen    = map[string]time.Time{}
		readErr atomic.Value
	)
	rd := kafkatest.Client(b, br, kgo.ConsumeTopics("alerts"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Second))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			fs := rd.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var a alert.Alert
				if err := json.Unmarshal(r.Value, &a); err != nil {
					readErr.Store(err)
					return
				}
				if a.RuleID == "ssh_bruteforce" && a.Type == alert.TypeStart && len(a.KeyValues) == 1 {
					mu.Lock()
					if _, dup := seen[a.KeyValues[0]]; !dup {
						seen[a.KeyValues[0]] = now
					}
					mu.Unlock()
				}
			})
		}
	}()

	// Let the group form and the background reach its pace before the
	// first probe.
	waitFor(b, 30*time.Second, func() bool { return svc.Stats().Events > latencyLoad })

	pr := kafkatest.Client(b, br, kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	sent := make(map[string]time.Time, b.N)
	order := make([]string, 0, b.N)
	events0, start := svc.Stats().Events, time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ip := fmt.Sprintf("100.%d.%d.%d", 64+(i>>16)&63, (i>>8)&255, i&255)
		for j := 0; j < 5; j++ {
			now := time.Now().UTC()
			line := fmt.Sprintf("<38>1 %s probe sshd 100 - - Failed password for probe%d from %s port %d ssh2",
				now.Format("2006-01-02T15:04:05.000Z"), i, ip, 40000+j)
			if j == 4 {
				sent[ip] = time.Now()
				order = append(order, ip)
			}
			pr.Produce(ctx, &kgo.Record{Topic: "auth", Key: []byte(ip), Value: []byte(line)}, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					readErr.Store(err)
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Wait for the last alerts (bounded: a missing alert fails the run).
	waitFor(b, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(order)
	})
	b.StopTimer()
	rate := float64(svc.Stats().Events-events0) / time.Since(start).Seconds()
	if err, _ := readErr.Load().(error); err != nil {
		b.Fatal(err)
	}

	mu.Lock()
	lat := make([]float64, 0, len(order))
	for _, ip := range order {
		t, ok := seen[ip]
		if !ok {
			mu.Unlock()
			b.Fatalf("no alert for probe %s", ip)
		}
		lat = append(lat, float64(t.Sub(sent[ip]).Microseconds())/1000)
	}
	mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(float64(len(lat)), "probes")
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op") // an op is paced by the probe gap, not a cost

	cancel()
	if err := <-svcDone; err != nil {
		b.Fatalf("service: %v", err)
	}
	if err := <-bgDone; err != nil {
		b.Fatalf("background traffic: %v", err)
	}
	if n := svc.Stats().Events; n < int64(b.N)*5 {
		b.Fatalf("service saw %d events, fewer than the probes alone", n)
	}
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
