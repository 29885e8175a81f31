package realtime

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden_*.jsonl.gz from the current engine")

// goldenRules exercises what the default rules do not: sum, min and max,
// multi-column and numeric keys, tumbling windows, negation, in-lists,
// a sequence within one dataset, and a second resolve rule.
const goldenRules = `version: 1
rules:
  - id: bytes_pair
    kind: threshold
    dataset: firewall
    key: [source_ip, destination_ip]
    aggregate: sum
    field: network_bytes
    window: 30s
    slide: 5s
    threshold: 40000
    suppress: 1m
  - id: big_packet_port
    kind: threshold
    dataset: firewall
    where: [{field: event_action, in: [deny, drop, reject]}]
    key: destination_port
    aggregate: max
    field: network_bytes
    window: 10s
    threshold: 1400
    suppress: 30s
  - id: min_status
    kind: threshold
    dataset: web
    where: [{field: http_response_status_code, gte: 300}]
    key: source_ip
    aggregate: min
    field: http_response_status_code
    window: 20s
    slide: 10s
    threshold: 400
    suppress: 2m
  - id: users_not_ok
    kind: value_count
    dataset: auth
    where: [{field: event_outcome, eq: success, not: true}]
    key: source_ip
    field: user_name
    window: 60s
    slide: 15s
    threshold: 4
    suppress: 5m
  - id: fail_then_ok
    kind: sequence
    key: [source_ip, user_name]
    within: 30s
    steps:
      - dataset: auth
        where: [{field: event_outcome, eq: failure}]
      - dataset: auth
        where: [{field: event_outcome, eq: success}]
    suppress: 1m
  - id: denies_tumbling
    kind: threshold
    dataset: firewall
    where: [{field: event_action, in: [deny, drop]}, {field: destination_port, eq: 22, not: true}]
    key: source_ip
    window: 5s
    threshold: 6
    suppress: 20s
    resolve: true
`

// goldenStream is a long mixed stream over two partitions with bounded
// disorder, stragglers (some late), attack bursts of every default
// detection, a hot key, and sources drawn with a Zipf skew so that keys
// come, go idle and are evicted.
func goldenStream(seed uint64, n int) []schemas.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	z := rand.NewZipf(rng, 1.2, 1, 3_999)
	ips := make([]string, 4_000)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	users := make([]string, 60)
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	out := make([]schemas.Record, 0, n)
	clock := time.Duration(0)
	for len(out) < n {
		clock += time.Duration(rng.IntN(40)) * time.Millisecond
		d := clock - time.Duration(rng.IntN(3000))*time.Millisecond // disorder up to 3 s
		if rng.IntN(400) == 0 {
			d -= time.Duration(rng.IntN(30)) * time.Second // straggler, often late
		}
		src := ips[z.Uint64()]
		before := len(out)
		switch k := rng.IntN(100); {
		case k < 20:
			out = append(out, authEv(d, src, users[rng.IntN(len(users))], []string{"success", "failure", "unknown", "success"}[rng.IntN(4)]))
		case k < 55:
			fw := fwEv(d, src, ips[rng.IntN(50)], []uint16{22, 80, 443, uint16(rng.IntN(1024))}[rng.IntN(4)], []string{"allow", "allow", "deny", "drop", "reject"}[rng.IntN(5)]).(*schemas.Firewall)
			fw.Bytes = int64(rng.IntN(1500))
			out = append(out, fw)
		case k < 85:
			out = append(out, webEv(d, src, []uint16{200, 200, 304, 404, 403, 500, 301}[rng.IntN(7)]))
		case k < 87:
			out = append(out, idsEv(d, src))
		case k < 89: // ssh brute force burst from one source
			for i := 0; i < 6; i++ {
				out = append(out, authEv(d+time.Duration(i)*300*time.Millisecond, src, users[i], "failure"))
			}
		case k < 90: // port scan burst
			for i := 0; i < 25; i++ {
				out = append(out, fwEv(d+time.Duration(i)*100*time.Millisecond, src, ips[1], uint16(2000+i), "deny"))
			}
		case k < 91: // distributed brute force on one user
			u := users[rng.IntN(len(users))]
			for i := 0; i < 12; i++ {
				out = append(out, authEv(d+time.Duration(i)*time.Second, ips[rng.IntN(len(ips))], u, "failure"))
			}
		case k < 93: // IDS then login, in either order
			out = append(out, idsEv(d, src), authEv(d+time.Duration(rng.IntN(4000)-1000)*time.Millisecond, src, "root", "success"))
		case k < 94: // traffic spike on one destination
			for i := 0; i < 450; i++ {
				out = append(out, fwEv(d+time.Duration(i)*3*time.Millisecond, ips[i%len(ips)], "10.99.0.1", 80, "allow"))
			}
		default: // the hot source
			out = append(out, authEv(d, "203.0.113.66", users[rng.IntN(len(users))], "failure"))
		}
		// A burst moves the clock with it, so that it does not make the
		// events after it late.
		for _, r := range out[before:] {
			if d := r.EventTime().Sub(t0); d > clock {
				clock = d
			}
		}
	}
	return out[:n]
}

// runGolden feeds the stream round-robin over two partitions, advancing
// every 64 events with a clock that drifts from event time, and returns
// one line per alert, per late event, and the final stats.
func runGolden(t *testing.T, rs *rules.RuleSet, opts Options, evs []schemas.Record) []string {
	t.Helper()
	e, err := New(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Assign("logs", 0, at(0))
	e.Assign("logs", 1, at(0))
	var lines []string
	var out []alert.Alert
	emit := func() {
		for _, a := range out {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, string(b))
		}
		out = out[:0]
	}
	var late bool
	for i, r := range evs {
		p := int32(i % 2)
		now := r.EventTime().Add(time.Duration(i%7) * time.Second)
		out, late = e.Process(r, Source{Topic: "logs", Partition: p, Offset: int64(i)}, now, out)
		if late {
			lines = append(lines, fmt.Sprintf("late %d", i))
		}
		if i%64 == 63 {
			out = e.Advance(now, out)
		}
		emit()
	}
	st, err := json.Marshal(e.Stats())
	if err != nil {
		t.Fatal(err)
	}
	return append(lines, "stats "+string(st))
}

// TestGoldenOutput pins the engine's whole output (every alert record,
// byte for byte, every late event and the final stats) on long mixed
// streams, against files written by an earlier engine. It is the guard
// for optimisations that must not change behaviour; rewrite the files
// with -update-golden only for an intended change of behaviour.
func TestGoldenOutput(t *testing.T) {
	def, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := rules.Parse([]byte(goldenRules))
	if err != nil {
		t.Fatal(err)
	}
	both := &rules.RuleSet{Rules: append(append([]*rules.Rule(nil), def.Rules...), extra.Rules...)}
	cases := []struct {
		name string
		rs   *rules.RuleSet
		opts Options
		seed uint64
	}{
		{"default", def, Options{}, 1},
		// Tight caps: forced evictions, HLL sketches, saturation, few samples.
		{"capped", both, Options{MaxKeysPerRule: 300, ExactDistinct: 6, MaxSketches: 3, Samples: 2, AllowedLateness: 2 * time.Second, OutOfOrderness: 1500 * time.Millisecond}, 2},
		{"extra", both, Options{Samples: 7, AllowedLateness: 10 * time.Second}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runGolden(t, c.rs, c.opts, goldenStream(c.seed, 120_000))
			path := filepath.Join("testdata", "golden_"+c.name+".jsonl.gz")
			if *updateGolden {
				writeGolden(t, path, got)
				return
			}
			want := readGolden(t, path)
			for i := 0; i < min(len(got), len(want)); i++ {
				if got[i] != want[i] {
					t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, got[i], want[i])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d lines, want %d", len(got), len(want))
			}
			counts := map[string]int{}
			for _, l := range got {
				var a alert.Alert
				if json.Unmarshal([]byte(l), &a) == nil && a.RuleID != "" {
					counts[a.RuleID+"/"+a.Type]++
				}
			}
			var ks []string
			for k, v := range counts {
				ks = append(ks, fmt.Sprintf("%s=%d", k, v))
			}
			sort.Strings(ks)
			t.Logf("%d lines: %v", len(got), ks)
		})
	}
}

func writeGolden(t *testing.T, path string, lines []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	zw.ModTime = time.Time{}
	for _, l := range lines {
		fmt.Fprintln(zw, l)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (write it with go test -run TestGoldenOutput -update-golden)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
