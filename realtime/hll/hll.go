// Package hll is a sliding-window HyperLogLog: a distinct-count estimate for
// any window of event-time slices inside its retention, in fixed memory.
//
// Each register keeps, instead of one maximum rank, a short list of
// (slice, rank) pairs where a later slice never has a higher-or-equal rank
// than an earlier one is dominated away: the "list of future possible
// maxima" of Chabchoub and Hébrail's sliding HyperLogLog. The maximum rank
// of a register over the window [lo, hi) is then the first pair whose slice
// is >= lo (and < hi). Lists are capped at Depth pairs; when full the oldest
// pair is dropped, which can only lower estimates of windows starting
// before the dropped pair's slice.
package hll

import (
	"math"
	"math/bits"
)

// Depth is the number of (slice, rank) pairs kept per register.
const Depth = 8

// Precision bounds accepted by New.
const (
	MinPrecision = 4
	MaxPrecision = 14
)

// pair packs a slice offset from Sliding.base (high 24 bits) and a rank
// (low 8 bits); 0 means empty. Offsets start at 1 so that a used pair is
// never 0.
type pair uint32

const offsetLimit = 1<<24 - 1

// Sliding is a sliding-window HyperLogLog sketch over slices identified by
// int64 indexes. It is not safe for concurrent use.
type Sliding struct {
	p     uint8
	base  int64 // slice index of offset 1
	pairs []pair
	// The frontier cache: per-register maximum over [fLo, +inf) and the
	// running harmonic sum, so inserts in the frontier window update the
	// estimate in O(1).
	fLo    int64
	cur    []uint8
	sum    float64
	zeros  int
	cached bool
}

// New returns an empty sketch with 2^p registers; p is clamped to
// [MinPrecision, MaxPrecision]. The relative standard error is 1.04/sqrt(2^p).
func New(p uint8) *Sliding {
	if p < MinPrecision {
		p = MinPrecision
	}
	if p > MaxPrecision {
		p = MaxPrecision
	}
	m := 1 << p
	return &Sliding{p: p, pairs: make([]pair, m*Depth), cur: make([]uint8, m), base: math.MinInt64}
}

// RelativeError is the sketch's relative standard error.
func (s *Sliding) RelativeError() float64 { return 1.04 / math.Sqrt(float64(int(1)<<s.p)) }

// Bytes is the sketch's memory footprint, for accounting.
func (s *Sliding) Bytes() int { return len(s.pairs)*4 + len(s.cur) + 64 }

func (s *Sliding) off(slice int64) (uint32, bool) {
	if s.base == math.MinInt64 {
		s.base = slice - 1
	}
	d := slice - s.base
	if d >= 1 && d <= offsetLimit {
		return uint32(d), true
	}
	if d > offsetLimit {
		s.rebase(slice)
		d = slice - s.base
		return uint32(d), d >= 1 && d <= offsetLimit
	}
	return 0, false // older than anything the sketch can represent
}

// rebase moves the base so that slice fits, dropping pairs that fall off.
func (s *Sliding) rebase(slice int64) {
	nb := slice - offsetLimit/2
	shift := nb - s.base
	for i, pr := range s.pairs {
		if pr == 0 {
			continue
		}
		o := int64(pr>>8) - shift
		if o < 1 {
			s.pairs[i] = 0
			continue
		}
		s.pairs[i] = pair(uint32(o)<<8 | uint32(pr&0xff))
	}
	for r := 0; r < len(s.cur); r++ {
		s.compact(s.pairs[r*Depth : (r+1)*Depth])
	}
	s.base = nb
	s.cached = false
}

func (s *Sliding) compact(l []pair) {
	j := 0
	for _, pr := range l {
		if pr != 0 {
			l[j] = pr
			j++
		}
	}
	for ; j < len(l); j++ {
		l[j] = 0
	}
}

// Insert records that the value with 64-bit hash h occurred in slice.
func (s *Sliding) Insert(slice int64, h uint64) {
	o, ok := s.off(slice)
	if !ok {
		return
	}
	reg := h >> (64 - s.p)
	w := h<<s.p | 1<<(s.p-1)
	rank := uint8(bits.LeadingZeros64(w) + 1)
	l := s.pairs[reg*Depth : (reg+1)*Depth]
	// Pairs are in slice order with strictly decreasing rank. The new pair
	// is dominated by any pair at a slice >= it with rank >= it; it
	// dominates pairs at slices <= it with rank <= it.
	var tmp [Depth + 1]pair
	n := 0
	placed := false
	for _, pr := range l {
		if pr == 0 {
			break
		}
		po, pk := uint32(pr>>8), uint8(pr)
		if po >= o && pk >= rank {
			return
		}
		if po <= o && pk <= rank {
			continue
		}
		if !placed && po > o {
			tmp[n] = pair(o<<8 | uint32(rank))
			n++
			placed = true
		}
		tmp[n] = pr
		n++
	}
	if !placed {
		tmp[n] = pair(o<<8 | uint32(rank))
		n++
	}
	start := 0
	if n > Depth {
		start = n - Depth
	}
	copy(l, tmp[start:n])
	for i := n - start; i < Depth; i++ {
		l[i] = 0
	}
	if s.cached && slice >= s.fLo && rank > s.cur[reg] {
		old := s.cur[reg]
		if old == 0 {
			s.zeros--
		}
		s.sum += math.Ldexp(1, -int(rank)) - math.Ldexp(1, -int(old))
		s.cur[reg] = rank
	}
}

// regMax is register r's maximum rank over slices [lo, +inf): the first
// pair at or after lo, since ranks decrease along the list.
func (s *Sliding) regMax(r int, lo int64) uint8 {
	for _, pr := range s.pairs[r*Depth : (r+1)*Depth] {
		if pr == 0 {
			return 0
		}
		if s.base+int64(pr>>8) >= lo {
			return uint8(pr)
		}
	}
	return 0
}

// EstimateFrom returns the distinct-count estimate over slices [lo, +inf).
// Only such suffix windows can be answered: a pair in [lo, hi) may have
// been dominated away by a later, higher-ranked one. Repeated calls with
// the same lo are O(1): the per-register maxima are cached and Insert keeps
// them current; a new lo costs one pass over the registers.
func (s *Sliding) EstimateFrom(lo int64) float64 {
	if !s.cached || lo != s.fLo {
		s.fLo, s.sum, s.zeros = lo, 0, 0
		for r := range s.cur {
			k := s.regMax(r, lo)
			s.cur[r] = k
			if k == 0 {
				s.zeros++
			}
			s.sum += math.Ldexp(1, -int(k))
		}
		s.cached = true
	}
	return estimate(len(s.cur), s.sum, s.zeros)
}

func estimate(m int, sum float64, zeros int) float64 {
	mf := float64(m)
	var alpha float64
	switch m {
	case 16:
		alpha = 0.673
	case 32:
		alpha = 0.697
	case 64:
		alpha = 0.709
	default:
		alpha = 0.7213 / (1 + 1.079/mf)
	}
	e := alpha * mf * mf / sum
	if e <= 2.5*mf && zeros > 0 {
		return mf * math.Log(mf/float64(zeros))
	}
	return e
}

// Expire drops pairs older than slice lo; windows starting before lo can no
// longer be estimated accurately afterwards.
func (s *Sliding) Expire(lo int64) {
	if s.base == math.MinInt64 {
		return
	}
	if lo > s.fLo {
		s.cached = false
	}
	for r := 0; r < len(s.cur); r++ {
		l := s.pairs[r*Depth : (r+1)*Depth]
		changed := false
		for i, pr := range l {
			if pr == 0 {
				break
			}
			if s.base+int64(pr>>8) < lo {
				l[i] = 0
				changed = true
			}
		}
		if changed {
			s.compact(l)
		}
	}
}
