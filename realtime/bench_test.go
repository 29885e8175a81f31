package realtime

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

// benchEvents is a pre-parsed mix in event-time order over 100 s: auth
// (mostly successes, some failures), firewall allow/deny over many
// sources and destinations, web with some 4xx, a few IDS alerts, plus one
// hot source that fails logins and scans all the time.
//
// Source addresses come from 50,000. Without zipf they cycle with a
// fixed stride, which ties each event type to a tenth of them: a rule
// sees 2,500 to 10,000 keys, each again every 5 s of event time, so every
// key stays live. With zipf they follow Zipf(1.1) over the first
// zipfKeys of them (all 50,000 when zero): a rule sees up to ~20,000
// keys, and the rarely seen ones expire and come back.
func benchEvents(n int, zipf bool) ([]schemas.Record, time.Duration) {
	return benchEventsKeys(n, zipf, 0)
}

func benchEventsKeys(n int, zipf bool, zipfKeys int) ([]schemas.Record, time.Duration) {
	out := make([]schemas.Record, 0, n)
	rng := rand.New(rand.NewPCG(1, 1))
	z := rand.NewZipf(rng, 1.1, 1, 49_999)
	span := 100 * time.Second
	step := span / time.Duration(n)
	ip := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	ips := make([]string, 50_000)
	for i := range ips {
		ips[i] = ip(i * 7919)
	}
	users := make([]string, 500)
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	for i := 0; i < n; i++ {
		d := time.Duration(i) * step
		src := ips[(i*31)%len(ips)]
		if zipf {
			k := z.Uint64()
			if zipfKeys > 0 {
				k %= uint64(zipfKeys)
			}
			src = ips[k]
		}
		switch i % 10 {
		case 0, 1:
			out = append(out, authEv(d, src, users[i%len(users)], []string{"success", "success", "success", "failure"}[i%4]))
		case 2, 3, 4, 5:
			out = append(out, fwEv(d, src, ips[(i*17)%2000], uint16(i%1024), []string{"allow", "allow", "deny", "drop"}[i%4]))
		case 6, 7, 8:
			out = append(out, webEv(d, src, []uint16{200, 200, 304, 404, 200}[i%5]))
		case 9:
			if i%100 == 9 {
				out = append(out, idsEv(d, src))
			} else {
				out = append(out, authEv(d, "203.0.113.66", users[i%len(users)], "failure")) // hot key
			}
		}
	}
	return out, span
}

func shift(recs []schemas.Record, d time.Duration) {
	for _, r := range recs {
		c := r.Common()
		c.Timestamp = c.Timestamp.Add(d)
	}
}

// BenchmarkEngineDefaultRules measures the engine with the default rules
// on pre-parsed events, advancing the watermark every 1000 events as a
// poll loop would. "uniform" cycles through the source addresses (a few
// thousand live keys per rule); "zipf" draws them with a Zipf(1.1) skew,
// closer to real traffic, with more keys per rule and a long tail of
// rarely seen ones (see benchEvents).
func BenchmarkEngineDefaultRules(b *testing.B) {
	for _, zipf := range []bool{false, true} {
		name := map[bool]string{false: "uniform", true: "zipf"}[zipf]
		b.Run(name, func(b *testing.B) { benchEngine(b, zipf) })
	}
}

// BenchmarkEngineNoPrefetch is BenchmarkEngineDefaultRules with a driver
// loop that does not call Prefetch: what the hint saves.
func BenchmarkEngineNoPrefetch(b *testing.B) {
	for _, zipf := range []bool{false, true} {
		name := map[bool]string{false: "uniform", true: "zipf"}[zipf]
		b.Run(name, func(b *testing.B) { benchEngineOpts(b, zipf, 0, nil, false) })
	}
}

// BenchmarkEngineRule runs the zipf mix through each default rule alone
// ("none": no rules, the engine's own per-event cost), to see where the
// time of BenchmarkEngineDefaultRules goes.
func BenchmarkEngineRule(b *testing.B) {
	def, err := rules.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("none", func(b *testing.B) { benchEngineRules(b, true, &rules.RuleSet{}) })
	for _, r := range def.Rules {
		b.Run(r.ID, func(b *testing.B) { benchEngineRules(b, true, &rules.RuleSet{Rules: []*rules.Rule{r}}) })
	}
}

// BenchmarkEngineRuleUniform is BenchmarkEngineRule on the uniform mix:
// the difference per rule is what the zipf mix's warm and hot keys cost.
func BenchmarkEngineRuleUniform(b *testing.B) {
	def, err := rules.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("none", func(b *testing.B) { benchEngineRules(b, false, &rules.RuleSet{}) })
	for _, r := range def.Rules {
		b.Run(r.ID, func(b *testing.B) { benchEngineRules(b, false, &rules.RuleSet{Rules: []*rules.Rule{r}}) })
	}
}

// BenchmarkEngineZipfKeys is the zipf mix of BenchmarkEngineDefaultRules
// with the sources folded onto the first 100, 1,000, 10,000 or all 50,000
// addresses: how much of its cost is the tail of rarely seen keys rather
// than the hot ones.
func BenchmarkEngineZipfKeys(b *testing.B) {
	for _, k := range []int{100, 1000, 10_000, 50_000} {
		b.Run(fmt.Sprint(k), func(b *testing.B) { benchEngineKeys(b, true, k, nil) })
	}
}

func benchEngine(b *testing.B, zipf bool) { benchEngineRules(b, zipf, nil) }

func benchEngineRules(b *testing.B, zipf bool, rs *rules.RuleSet) { benchEngineKeys(b, zipf, 0, rs) }

func benchEngineKeys(b *testing.B, zipf bool, zipfKeys int, rs *rules.RuleSet) {
	benchEngineOpts(b, zipf, zipfKeys, rs, true)
}

// benchEngineOpts feeds the mix to an engine as the service's feed loop
// does, calling Prefetch PrefetchDistance records ahead when prefetch is
// set.
func benchEngineOpts(b *testing.B, zipf bool, zipfKeys int, rs *rules.RuleSet, prefetch bool) {
	evs, span := benchEventsKeys(1_000_000, zipf, zipfKeys)
	e := newBenchEngine(b, rs)
	out := make([]alert.Alert, 0, 1024)
	src := Source{Topic: "logs", Partition: 0}
	b.ReportAllocs()
	// Collect the setup's garbage now, or the GC's background work on it
	// would be charged to the first events.
	runtime.GC()
	b.ResetTimer()
	cpu0 := processCPU()
	j := 0
	for i := 0; i < b.N; i++ {
		if j == len(evs) {
			b.StopTimer()
			c := processCPU()
			shift(evs, span)
			cpu0 += processCPU() - c
			j = 0
			b.StartTimer()
		}
		r := evs[j]
		if prefetch && j+PrefetchDistance < len(evs) {
			Prefetch(evs[j+PrefetchDistance]) // as the service's feed loop does
		}
		src.Offset = int64(i)
		now := r.EventTime()
		out, _ = e.Process(r, src, now, out[:0])
		if i%1000 == 0 {
			out = e.Advance(now, out[:0])
		}
		j++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		// CPU time per event: unlike ns/op it leaves out waiting for a
		// core while other work runs on the machine.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
}

func newBenchEngine(b *testing.B, rs *rules.RuleSet) *Engine {
	if rs == nil {
		var err error
		if rs, err = rules.Default(); err != nil {
			b.Fatal(err)
		}
	}
	e, err := New(rs, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkMemoryPerKey feeds 1,000,000 distinct keys (one auth failure
// per source address, 10 users) and reports the heap held per key.
func BenchmarkMemoryPerKey(b *testing.B) {
	const keys = 1_000_000
	for _, c := range []struct{ name, rule string }{
		{"count", "ssh_bruteforce"},
		{"distinct", "password_spraying"},
		{"default_rules", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			rs, err := rules.Default()
			if err != nil {
				b.Fatal(err)
			}
			if c.rule != "" {
				r, _ := rs.Rule(c.rule)
				rs = &rules.RuleSet{Rules: []*rules.Rule{r}}
			}
			recs := make([]schemas.Record, keys)
			for i := range recs {
				recs[i] = authEv(time.Duration(i)*20*time.Microsecond, fmt.Sprintf("%d.%d.%d.%d", 1+i>>24&255, i>>16&255, i>>8&255, i&255), fmt.Sprintf("u%d", i%10), "failure")
			}
			var perKey float64
			for n := 0; n < b.N; n++ {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				e := newBenchEngine(b, rs)
				src := Source{Topic: "logs"}
				for i, r := range recs {
					src.Offset = int64(i)
					e.Process(r, src, r.EventTime(), nil)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				st := e.Stats()
				if st.Rules[0].Keys != keys && c.rule == "ssh_bruteforce" {
					b.Fatalf("%d keys tracked", st.Rules[0].Keys)
				}
				perKey = float64(after.HeapAlloc-before.HeapAlloc) / keys
				runtime.KeepAlive(e)
			}
			b.ReportMetric(perKey, "bytes/key")
			b.ReportMetric(perKey*keys/(1<<20), "MiB/1M-keys")
		})
	}
}
