package hll

import (
	"math"
	"math/rand/v2"
	"testing"
)

func hash(x uint64) uint64 {
	// splitmix64 finaliser: a good 64-bit mix for test values.
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// TestEstimateWithinBound checks full-range and sliding estimates against
// exact distinct counts for many cardinalities: each estimate must be within
// 4 standard errors, and the mean absolute relative error within 1.5.
func TestEstimateWithinBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []uint8{8, 10, 12} {
		s := New(p)
		se := s.RelativeError()
		var sumErr float64
		trials := 0
		for _, n := range []int{10, 100, 1000, 5000, 20000, 100000} {
			s = New(p)
			// Values spread over 100 slices; value v occurs in slice v%100
			// and, for some, again in a later slice.
			exact := map[int64]map[uint64]bool{}
			for v := 0; v < n; v++ {
				h := hash(uint64(v) + uint64(n)<<32)
				sl := int64(v % 100)
				s.Insert(sl, h)
				if exact[sl] == nil {
					exact[sl] = map[uint64]bool{}
				}
				exact[sl][h] = true
				if rng.IntN(3) == 0 {
					sl2 := sl + int64(rng.IntN(10))
					s.Insert(sl2, h)
					if exact[sl2] == nil {
						exact[sl2] = map[uint64]bool{}
					}
					exact[sl2][h] = true
				}
			}
			for _, w := range [][2]int64{{0, 200}, {50, 200}, {90, 200}, {99, 200}} {
				want := map[uint64]bool{}
				for sl := w[0]; sl < w[1]; sl++ {
					for h := range exact[sl] {
						want[h] = true
					}
				}
				got := s.EstimateFrom(w[0])
				rel := math.Abs(got-float64(len(want))) / float64(len(want))
				if rel > 4*se && math.Abs(got-float64(len(want))) > 2 {
					t.Errorf("p=%d n=%d window %v: estimate %.0f, exact %d (rel err %.3f > 4*%.3f)", p, n, w, got, len(want), rel, se)
				}
				sumErr += rel
				trials++
			}
		}
		if mean := sumErr / float64(trials); mean > 1.5*se {
			t.Errorf("p=%d: mean relative error %.4f > 1.5*%.4f", p, mean, se)
		}
	}
}

// TestFrontierCacheFollowsInserts checks that the O(1) frontier estimate
// stays equal to a full recomputation while values are inserted in order.
func TestFrontierCacheFollowsInserts(t *testing.T) {
	s := New(10)
	for i := 0; i < 50000; i++ {
		sl := int64(i / 500)
		s.Insert(sl, hash(uint64(i%7000)))
		if i%997 == 0 {
			lo := sl - 10
			a := s.EstimateFrom(lo)
			s.cached = false
			if b := s.EstimateFrom(lo); math.Abs(a-b) > 1e-9*b {
				t.Fatalf("i=%d: cached %v != full %v", i, a, b)
			}
		}
	}
}

// TestRebaseAndExpire checks far-apart slices and expiry.
func TestRebaseAndExpire(t *testing.T) {
	s := New(8)
	for v := 0; v < 300; v++ {
		s.Insert(5, hash(uint64(v)))
	}
	far := int64(5 + 3*offsetLimit)
	for v := 0; v < 40; v++ {
		s.Insert(far, hash(uint64(1000+v)))
	}
	if got := s.EstimateFrom(far); math.Abs(got-40) > 6 {
		t.Errorf("far window estimate %.1f, want ~40", got)
	}
	s.Expire(far + 1)
	if got := s.EstimateFrom(0); got != 0 {
		t.Errorf("after expiry estimate %v, want 0", got)
	}
}

func BenchmarkInsert(b *testing.B) {
	s := New(10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Insert(int64(i>>12), hash(uint64(i)))
	}
}
