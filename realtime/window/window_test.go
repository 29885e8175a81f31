package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

type refEvent struct {
	key string
	t   int64
	v   float64
	h   uint64
}

// refWindow is the brute-force aggregate of key's accepted events in
// [a, b).
func refWindow(evs []refEvent, key string, op Op, a, b int64) (v float64, n int64) {
	seen := map[uint64]bool{}
	first := true
	for _, e := range evs {
		if e.key != key || e.t < a || e.t >= b {
			continue
		}
		n++
		switch op {
		case Sum:
			v += e.v
		case Min:
			if first || e.v < v {
				v = e.v
			}
		case Max:
			if first || e.v > v {
				v = e.v
			}
		case Distinct:
			seen[e.h] = true
		}
		first = false
	}
	switch op {
	case Count:
		v = float64(n)
	case Distinct:
		v = float64(len(seen))
	}
	return v, n
}

// TestPropertyMatchesBruteForce feeds random streams with out-of-order and
// late events and checks, at every watermark, every live window of every
// key against a brute-force recomputation, and each Add's answer against
// the best window containing the event.
func TestPropertyMatchesBruteForce(t *testing.T) {
	specs := []Spec{
		{Size: 10 * time.Second, Slide: time.Second},
		{Size: 6 * time.Second, Slide: 4 * time.Second}, // gcd 2 s
		{Size: 5 * time.Second, Slide: 5 * time.Second}, // tumbling
		{Size: 60 * time.Second, Slide: 10 * time.Second},
	}
	sec := int64(time.Second)
	for seed := uint64(1); seed <= 12; seed++ {
		for _, base := range specs {
			for _, op := range []Op{Count, Sum, Min, Max, Distinct} {
				spec := base
				spec.Op = op
				rng := rand.New(rand.NewPCG(seed, uint64(op)))
				bound := int64(rng.IntN(4)) * sec // out-of-orderness
				spec.Lateness = time.Duration(rng.IntN(3)) * time.Second
				name := fmt.Sprintf("seed%d/%v/%v/%v/bound%ds/late%v", seed, spec.Size, spec.Slide, op, bound/sec, spec.Lateness)
				t.Run(name, func(t *testing.T) {
					st, err := NewStore(spec, Options{ExactDistinct: 1 << 20, Samples: 3})
					if err != nil {
						t.Fatal(err)
					}
					check(t, st, spec, rng, bound)
				})
			}
		}
	}
}

func check(t *testing.T, st *Store, spec Spec, rng *rand.Rand, bound int64) {
	t.Helper()
	sec := int64(time.Second)
	size, slide, late := int64(spec.Size), int64(spec.Slide), int64(spec.Lateness)
	keys := []string{"a", "b", "c", "hot"}
	var accepted []refEvent
	maxT := int64(1_700_000_000) * sec
	wm := int64(math.MinInt64)
	late0 := 0
	clock := maxT
	for i := 0; i < 1500; i++ {
		clock += int64(rng.IntN(400)) * int64(time.Millisecond)
		tm := clock - int64(rng.Int64N(bound+1))
		if rng.IntN(25) == 0 {
			tm -= int64(rng.IntN(20)) * sec // a straggler, possibly late
		}
		k := keys[rng.IntN(len(keys))]
		if rng.IntN(3) == 0 {
			k = "hot"
		}
		e := refEvent{key: k, t: tm, v: float64(rng.IntN(100)), h: uint64(rng.IntN(30))}
		if wm != math.MinInt64 && tm < wm-late {
			late0++
			continue
		}
		accepted = append(accepted, e)
		got, ref := st.Add(e.key, e.t, e.v, e.h, Sample{Offset: int64(i), Time: e.t})
		if st.Key(ref) != e.key {
			t.Fatalf("event %d: handle names key %q, want %q", i, st.Key(ref), e.key)
		}
		if spec.Op != Min {
			// The answer is the window containing the event with the
			// largest aggregate.
			best := math.Inf(-1)
			for a := FloorDiv(tm-size, slide)*slide + slide; a <= tm; a += slide {
				if v, _ := refWindow(accepted, e.key, spec.Op, a, a+size); v > best {
					best = v
				}
			}
			if got.V != best || got.Start > tm || got.End <= tm {
				t.Fatalf("event %d (key %s t=%d): Add answered %+v, best window containing it has %v", i, e.key, tm, got, best)
			}
		}
		maxT = max(maxT, tm)
		if i%7 == 0 {
			wm = max(wm, maxT-bound)
			st.Advance(wm)
			checkAll(t, st, spec, accepted, keys, wm, maxT)
		}
	}
	if late0 == 0 && late > 0 && bound > 0 {
		t.Logf("no late events in this stream")
	}
}

func checkAll(t *testing.T, st *Store, spec Spec, accepted []refEvent, keys []string, wm, maxT int64) {
	t.Helper()
	size, slide, late := int64(spec.Size), int64(spec.Slide), int64(spec.Lateness)
	for _, k := range keys {
		// Every window still reachable by an accepted event: end > wm-late.
		for a := FloorDiv(wm-late-size, slide) * slide; a <= maxT; a += slide {
			if a+size <= wm-late {
				continue
			}
			wantV, wantN := refWindow(accepted, k, spec.Op, a, a+size)
			got, ok := st.Query(k, a)
			if !ok {
				if wantN != 0 {
					t.Fatalf("wm %d key %s window %d: key not tracked, want %d events", wm, k, a, wantN)
				}
				continue
			}
			if got.N != wantN || (wantN > 0 && got.V != wantV) || !got.Exact {
				t.Fatalf("wm %d key %s window [%d,%d): got V=%v N=%d exact=%v, want V=%v N=%d", wm, k, a, a+size, got.V, got.N, got.Exact, wantV, wantN)
			}
		}
	}
}

// TestDistinctSwitchesToEstimate checks the exact bound: values up to it
// are exact, past it the value is an estimate within the sketch's error.
func TestDistinctSwitchesToEstimate(t *testing.T) {
	st, err := NewStore(Spec{Size: 300 * time.Second, Slide: 10 * time.Second, Op: Distinct}, Options{ExactDistinct: 100})
	if err != nil {
		t.Fatal(err)
	}
	base := int64(1_700_000_000) * int64(time.Second)
	var v Value
	for i := 0; i < 100; i++ {
		v, _ = st.Add("k", base+int64(i)*int64(time.Millisecond), 0, mix(uint64(i)), Sample{})
	}
	if v.V != 100 || !v.Exact {
		t.Fatalf("at the bound: %+v, want exact 100", v)
	}
	for i := 100; i < 5000; i++ {
		v, _ = st.Add("k", base+int64(i)*int64(time.Millisecond), 0, mix(uint64(i)), Sample{})
	}
	if v.Exact {
		t.Fatalf("past the bound the value must be an estimate: %+v", v)
	}
	if math.Abs(v.V-5000)/5000 > 4*1.04/32 {
		t.Fatalf("estimate %v for 5000 distinct values, beyond 4 standard errors", v.V)
	}
	if st.Stats().Sketches != 1 {
		t.Fatalf("stats %+v, want 1 sketch", st.Stats())
	}
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// TestEvictionAndCaps checks that idle keys are evicted once no accepted
// event can reach them, that MaxKeys holds, and that a hot key's memory
// stays bounded.
func TestEvictionAndCaps(t *testing.T) {
	sec := int64(time.Second)
	st, err := NewStore(Spec{Size: 60 * time.Second, Slide: time.Second, Op: Count, Lateness: 5 * time.Second}, Options{MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	base := int64(1_700_000_000) * sec
	for i := 0; i < 500; i++ {
		st.Add(fmt.Sprintf("idle%d", i), base, 1, 0, Sample{})
	}
	// A hot key gets an event every 10 ms for 10 minutes.
	for i := int64(0); i < 60_000; i++ {
		tm := base + i*10*int64(time.Millisecond)
		st.Add("hot", tm, 1, 0, Sample{})
		if i%100 == 0 {
			st.Advance(tm - 2*sec)
		}
	}
	if st.Len() != 1 {
		t.Fatalf("%d keys tracked after the idle ones expired, want 1 (stats %+v)", st.Len(), st.Stats())
	}
	if got := st.Stats().Evictions; got != 500 {
		t.Fatalf("evictions %d, want 500", got)
	}
	ks := &st.st[st.find(st.HashKey("hot"), "hot")]
	if len(ks.slots) > 76 {
		t.Fatalf("hot key holds %d slots, want <= 60 s + 5 s lateness + 2 s watermark lag + 8 awaiting a batched prune", len(ks.slots))
	}
	v, _ := st.Query("hot", base+590*sec)
	if v.N != 1000 { // [590 s, 650 s) holds the last 10 s: 1000 events
		t.Fatalf("hot key's last window: %+v, want 1000 events", v)
	}
	for i := 0; i < 2000; i++ {
		st.Add(fmt.Sprintf("new%d", i), base+700*sec, 1, 0, Sample{})
	}
	if st.Len() != 1000 || st.Stats().ForcedEvictions != 1001 {
		t.Fatalf("len %d stats %+v, want 1000 keys and 1001 forced evictions", st.Len(), st.Stats())
	}
}

// TestDetails checks first/last event times and samples of a window.
func TestDetails(t *testing.T) {
	sec := int64(time.Second)
	st, err := NewStore(Spec{Size: 10 * time.Second, Slide: time.Second, Op: Count}, Options{Samples: 2})
	if err != nil {
		t.Fatal(err)
	}
	base := int64(1_700_000_000) * sec
	var ref int32
	var v Value
	for i := int64(0); i < 5; i++ {
		v, ref = st.Add("k", base+i*sec+1500*int64(time.Microsecond), 1, 0, Sample{Topic: "t", Offset: 10 + i, Time: base + i*sec + 1500*int64(time.Microsecond)})
	}
	first, last, smp := st.Details(ref, v, nil)
	if first != base+1500*int64(time.Microsecond) || last != base+4*sec+1500*int64(time.Microsecond) {
		t.Fatalf("first %d last %d", first-base, last-base)
	}
	if len(smp) != 2 || smp[0].Offset != 13 || smp[1].Offset != 14 {
		t.Fatalf("samples %+v, want offsets 13 and 14", smp)
	}
}

func TestNewStoreRejects(t *testing.T) {
	for _, sp := range []Spec{
		{Size: 0, Slide: time.Second, Op: Count},
		{Size: time.Second, Slide: 2 * time.Second, Op: Count},
		{Size: time.Second, Slide: time.Second, Op: 0},
		{Size: time.Second, Slide: time.Second, Op: Count, Lateness: -1},
		{Size: time.Second + 1, Slide: time.Second, Op: Count},
	} {
		if _, err := NewStore(sp, Options{}); err == nil {
			t.Errorf("NewStore(%+v) accepted", sp)
		}
	}
}

// TestSampleFloorKeepsAlertSamples runs random streams through two stores
// per aggregate, one keeping every event as a sample and one with the
// floor the engine sets (threshold - Samples), and compares what Details
// returns for the window of every event whose value reaches the
// threshold: the same samples for streams in time order; with events out
// of order, every sample the full ring shows and possibly older ones of
// the same window that the full ring had pushed out.
func TestSampleFloorKeepsAlertSamples(t *testing.T) {
	const samples = 5
	rng := rand.New(rand.NewPCG(5, 6))
	crossings, more := 0, 0
	for _, op := range []Op{Count, Distinct} {
		for _, ordered := range []bool{true, false} {
			for round := range 40 {
				threshold := float64(samples + 1 + rng.IntN(12))
				spec := Spec{Size: 10 * time.Second, Slide: time.Second, Op: op, Lateness: 3 * time.Second}
				all, err := NewStore(spec, Options{Samples: samples})
				if err != nil {
					t.Fatal(err)
				}
				floored, _ := NewStore(spec, Options{Samples: samples})
				floored.SetSampleFloor(threshold - samples)
				var wm, clock int64
				for i := range 600 {
					clock += int64(rng.IntN(400)) * int64(time.Millisecond)
					ts := clock
					if !ordered {
						ts -= int64(rng.IntN(2500)) * int64(time.Millisecond)
						ts = max(ts, wm-int64(spec.Lateness))
					}
					key := fmt.Sprint("k", rng.IntN(3))
					h := uint64(rng.IntN(30))
					sm := Sample{Topic: "t", Partition: int32(i % 2), Offset: int64(i), Time: ts}
					va, refA := all.AddHash(key, all.HashKey(key), ts, 1, h, sm)
					wa := *all.Last()
					vf, refF := floored.AddHash(key, all.HashKey(key), ts, 1, h, sm)
					if va != vf {
						t.Fatalf("%s round %d: values differ: %v and %v", op, round, va, vf)
					}
					if va >= threshold {
						crossings++
						_, _, got := floored.Details(refF, wa, nil)
						_, _, want := all.Details(refA, wa, nil)
						if ordered && fmt.Sprint(got) != fmt.Sprint(want) {
							t.Fatalf("%s round %d event %d: samples %v, want %v", op, round, i, got, want)
						}
						in := map[Sample]bool{}
						for _, s := range got {
							in[s] = true
						}
						for _, s := range want {
							if !in[s] {
								t.Fatalf("%s ordered=%v round %d event %d: sample %v missing from %v (full ring %v)", op, ordered, round, i, s, got, want)
							}
						}
						if len(got) > len(want) {
							more++
						}
					}
					if i%20 == 19 {
						wm = clock - 2*int64(time.Second)
						all.Advance(wm)
						floored.Advance(wm)
					}
				}
			}
		}
	}
	if crossings < 1000 {
		t.Fatalf("only %d threshold crossings: the streams do not exercise the floor", crossings)
	}
	t.Logf("%d events at or over the threshold; with events out of order the floor showed more samples at %d", crossings, more)
}
