package prefetch

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestRange: the hint covers exactly the cache lines of the range, and
// returns for nil, empty, unaligned and end-of-allocation ranges (a
// prefetch never faults, but the loop must stop).
func TestRange(t *testing.T) {
	for _, c := range []struct{ p, n, from, to uintptr }{
		{64, 1, 64, 128},
		{63, 2, 0, 128},
		{0, 320, 0, 320},
		{100, 300, 64, 448},
		{4095, 1, 4032, 4096},
	} {
		if from, to := span(c.p, c.n); from != c.from || to != c.to {
			t.Errorf("span(%d, %d) = [%d, %d), want [%d, %d)", c.p, c.n, from, to, c.from, c.to)
		}
	}
	Range(nil, 100)
	buf := make([]byte, 4096)
	p := unsafe.Pointer(&buf[0])
	for _, c := range []struct{ off, n uintptr }{{0, 0}, {0, 1}, {1, 63}, {63, 2}, {4095, 1}, {0, 4096}, {100, 3000}} {
		Range(unsafe.Add(p, c.off), c.n)
	}
}

type rec struct {
	a   int64
	pad [240]byte
	b   int64
}

// BenchmarkChase visits 262,144 records of 256 bytes (64 MiB) in random
// order, reading two fields four lines apart and then doing ~100 ns of
// dependent arithmetic with them, as the engine does with an event:
// without a hint, and with Range 4 records ahead. The work per record is
// more than the out-of-order window covers, so without the hint each
// record's misses are paid in full.
func BenchmarkChase(b *testing.B) {
	recs := make([]rec, 1<<18)
	for i := range recs {
		recs[i].a, recs[i].b = int64(i), int64(i)*3
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(recs))
	for _, d := range []int{0, 4} {
		name := map[int]string{0: "none", 4: "ahead4"}[d]
		b.Run(name, func(b *testing.B) {
			var sum int64
			for i := 0; i < b.N; i++ {
				j := i % len(order)
				if d > 0 {
					k := order[(j+d)%len(order)]
					Range(unsafe.Pointer(&recs[k]), unsafe.Sizeof(recs[k]))
				}
				r := &recs[order[j]]
				x := r.a + r.b
				for range 100 {
					x = x*6364136223846793005 + 1442695040888963407
				}
				sum += x
			}
			sink = sum
		})
	}
}

var sink int64
