// Package window keeps event-time sliding and tumbling window aggregates
// per key, sharing work between overlapping windows.
//
// Windows are aligned: window k covers [k*Slide, k*Slide+Size) in Unix
// nanoseconds. Time is cut into slices of g = gcd(Size, Slide); a key keeps
// one small record per non-empty slice (count, partial sum/min/max, first
// and last event time), so every window is a run of consecutive slices and
// overlapping windows share them (the slicing of Flink and Scotty).
//
// For each key the store keeps running totals over its frontier window:
// the earliest window that contains the key's newest event. For an event
// in order that window holds every event of every window containing the
// new event, so for count, non-negative sum, max and distinct count it has
// the largest aggregate of them all and is the only one that needs
// checking. It moves forward by whole slides and its totals are updated by
// subtracting the slices that leave it (invertible aggregates), by
// rescanning the window when the current extreme leaves it (min/max), or
// through last-occurrence counters (distinct: each value is counted in the
// slice of its last occurrence). An event is O(1) amortised; an event
// behind the frontier window re-evaluates the few windows containing it
// that the frontier does not, by scanning their slices.
//
// Distinct counts are exact up to Options.ExactDistinct values per key;
// past that the key switches to a sliding HyperLogLog (package hll) and its
// values are estimates.
package window

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"time"

	"github.com/lambdalog/lambdalog/realtime/hll"
)

// Op is a window aggregate.
type Op uint8

// Aggregates.
const (
	Count Op = iota + 1
	Sum
	Min
	Max
	Distinct
)

// String is the aggregate's name as used in rules files.
func (o Op) String() string {
	switch o {
	case Count:
		return "count"
	case Sum:
		return "sum"
	case Min:
		return "min"
	case Max:
		return "max"
	case Distinct:
		return "distinct"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Spec defines the windows of one store.
type Spec struct {
	// Size and Slide of the windows; Slide == Size is a tumbling window.
	Size, Slide time.Duration
	// Op is the aggregate.
	Op Op
	// Lateness is how long after the watermark passes a window's end the
	// window still accepts events (the engine's allowed lateness). Slices
	// are kept until no accepted event can reach them.
	Lateness time.Duration
}

// Options bounds the store's memory.
type Options struct {
	// MaxKeys caps the keys tracked; when full, the least recently advanced
	// key is evicted (its state is lost; Stats.ForcedEvictions counts it).
	// Zero means DefaultMaxKeys.
	MaxKeys int
	// ExactDistinct is the number of distinct values per key counted
	// exactly before switching to a HyperLogLog estimate. Zero means
	// DefaultExactDistinct.
	ExactDistinct int
	// HLLPrecision is the sketches' precision (2^p registers). Zero means
	// DefaultHLLPrecision.
	HLLPrecision uint8
	// MaxSketches caps the keys holding a HyperLogLog. A key that would
	// need one past the cap stops counting new values (its value is a lower
	// bound, reported as an estimate). Zero means DefaultMaxSketches.
	MaxSketches int
	// Samples is the number of recent event references kept per key.
	// Zero means none.
	Samples int
	// Seed seeds the key hash (HashKey). Stores given the same seed
	// accept the same precomputed hashes in AddHash, so a caller running
	// several stores over the same key hashes each key once. The zero
	// value means a fresh random seed.
	Seed maphash.Seed
}

// Defaults for Options.
const (
	DefaultMaxKeys       = 2_000_000
	DefaultExactDistinct = 1024
	DefaultHLLPrecision  = 10
	DefaultMaxSketches   = 1024
)

// Sample references one event: where it was read and when it happened.
type Sample struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      int64 // event time, Unix ns
}

// Value is the aggregate of one window of one key.
type Value struct {
	// Start and End bound the window, Unix ns, [Start, End).
	Start, End int64
	// V is the aggregate (the count for Count).
	V float64
	// N is the number of events in the window.
	N int64
	// Exact is false for distinct counts past the exact bound.
	Exact bool
}

// Stats counts what the store did.
type Stats struct {
	Keys            int
	Sketches        int
	Evictions       uint64 // keys dropped because no accepted event can reach them
	ForcedEvictions uint64 // keys dropped because MaxKeys was reached
	ForcedPrunes    uint64 // slices dropped because a key ran far ahead of the watermark
	Saturated       uint64 // distinct values not counted because MaxSketches was reached
}

// slot is the partial aggregate of one non-empty slice of one key.
type slot struct {
	idx        int64   // slice index: event time / g
	n          uint32  // events
	dl         uint32  // distinct values whose last occurrence is this slice
	v          float64 // partial sum, min or max
	tmin, tmax uint32  // first and last event time, µs after the slice start
}

const none = -1

// keyState is 128 bytes, so that in the (128-byte aligned) state array
// a key's state is one aligned pair of cache lines, which the adjacent
// line prefetcher fetches together: the key string, needed only for keys
// longer than keyPrefix holds and for alerts, lives in Store.keys.
type keyState struct {
	kh    uint64    // HashKey(key)
	kp    [2]uint64 // the key's first 15 bytes and its length (keyPrefix)
	slots []slot    // ascending idx
	head  int32     // first slot of the frontier window
	smpAt int32     // next sample to overwrite once smp is full
	fs    int64     // frontier window start, slice index
	max   int64     // newest slice
	runN  int64     // events in the frontier window
	runV  float64
	d     *distinct
	smp   []csample
	prev  int32
	next  int32
}

// csample is a Sample as kept per key: the topic as an index into the
// store's topics, so the ring holds no pointers (the GC does not scan it
// and writing it needs no write barrier).
type csample struct {
	topic     int32
	partition int32
	offset    int64
	time      int64
}

// Store holds the windows of one aggregate for many keys. It is not safe
// for concurrent use; the engine drives it from one goroutine.
type Store struct {
	spec    Spec
	opts    Options
	g       int64 // slice width, ns
	q       int64 // slide, slices
	n       int64 // size, slices
	late    int64 // lateness, ns
	keep    int   // slots kept behind the frontier window before forced pruning
	seed    maphash.Seed
	salt    uint64 // salts distinct-value positions, from seed
	tab     keyTable
	st      []keyState
	keys    []string // the key of st[i]
	free    []int32
	lruHead int32
	lruTail int32
	wm      int64
	last    Value // the window the last AddHash returned
	stats   Stats
	// sampleFloor is the least window value whose event is kept as a
	// sample (SetSampleFloor).
	sampleFloor float64
	// topics interns the sample topics; lastTopic is the most recent.
	topics    []string
	lastTopic int32
	// The slice of the previous event: events come mostly in time order,
	// so most find their slice index and frontier start here without the
	// two 64-bit divisions (tens of cycles each) of computing them.
	cLo, cHi int64 // [cLo, cHi) in ns is slice cX; empty when cLo > cHi
	cX, cFS  int64 // slice index and frontierStart(cX)
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// FloorDiv is a/b rounded towards negative infinity.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// NewStore checks spec and returns an empty store.
func NewStore(spec Spec, opts Options) (*Store, error) {
	if spec.Size <= 0 || spec.Slide <= 0 {
		return nil, fmt.Errorf("window: size %v and slide %v must be positive", spec.Size, spec.Slide)
	}
	if spec.Slide > spec.Size {
		return nil, fmt.Errorf("window: slide %v longer than size %v", spec.Slide, spec.Size)
	}
	if spec.Op < Count || spec.Op > Distinct {
		return nil, fmt.Errorf("window: unknown aggregate %v", spec.Op)
	}
	if spec.Lateness < 0 {
		return nil, fmt.Errorf("window: negative lateness %v", spec.Lateness)
	}
	g := gcd(int64(spec.Size), int64(spec.Slide))
	if g < int64(time.Millisecond) {
		return nil, fmt.Errorf("window: size %v and slide %v share no whole millisecond", spec.Size, spec.Slide)
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.ExactDistinct <= 0 {
		opts.ExactDistinct = DefaultExactDistinct
	}
	if opts.HLLPrecision == 0 {
		opts.HLLPrecision = DefaultHLLPrecision
	}
	if opts.MaxSketches <= 0 {
		opts.MaxSketches = DefaultMaxSketches
	}
	s := &Store{
		spec:    spec,
		opts:    opts,
		g:       g,
		q:       int64(spec.Slide) / g,
		n:       int64(spec.Size) / g,
		late:    int64(spec.Lateness),
		seed:    opts.Seed,
		lruHead: none,
		lruTail: none,
		wm:      math.MinInt64,

		sampleFloor: math.Inf(-1),
	}
	if s.seed == (maphash.Seed{}) {
		s.seed = maphash.MakeSeed()
	}
	s.salt = maphash.String(s.seed, "distinct values")
	s.tab.init(0)
	s.lastTopic = none
	s.cLo, s.cHi = 1, 0 // no cached slice yet
	s.keep = int(s.n + s.late/g + s.q + 2)
	return s, nil
}

// Spec returns the store's window definition.
func (s *Store) Spec() Spec { return s.spec }

// Stats returns counters and the current number of keys.
func (s *Store) Stats() Stats {
	st := s.stats
	st.Keys = s.tab.n
	return st
}

// Len is the number of keys tracked.
func (s *Store) Len() int { return s.tab.n }

// HashKey is the hash of key that AddHash expects, under the store's seed.
func (s *Store) HashKey(key string) uint64 { return maphash.String(s.seed, key) }

// frontierStart is the start slice of the earliest window containing
// slice x.
func (s *Store) frontierStart(x int64) int64 { return (FloorDiv(x-s.n, s.q) + 1) * s.q }

// deadBefore reports whether no event accepted at the watermark can reach
// any window containing slice x: the last such window ends before
// watermark - lateness.
func (s *Store) dead(x int64) bool {
	if s.wm == math.MinInt64 {
		return false
	}
	end := (FloorDiv(x, s.q)*s.q + s.n) * s.g
	return end <= s.wm-s.late
}

// Add adds one event at event time t (Unix ns) to key's windows: v is the
// value for Sum, Min and Max, h the 64-bit hash of the value for Distinct.
// It returns the window containing the event with the largest aggregate
// (the frontier window for an in-order event) and a handle to the key for
// Details, valid until the next Add or Advance. The caller has already
// rejected events beyond the allowed lateness.
func (s *Store) Add(key string, t int64, v float64, h uint64, sm Sample) (Value, int32) {
	_, ref := s.AddHash(key, s.HashKey(key), t, v, h, sm)
	return s.last, ref
}

// Last is the window the last Add or AddHash returned, valid until the
// next one. It is a pointer so that a caller reading one field (the
// engine reads the start of a suppressed window) does not copy the
// whole Value (see setLast).
func (s *Store) Last() *Value { return &s.last }

// AddHash is Add with the key's hash already computed (kh must be
// HashKey(key) of a store with the same Seed) that returns only the
// window's aggregate; Last has the whole window. (A Value returned from
// here was spilled by the caller and copied with wide loads of its
// narrower stores: see setLast.)
func (s *Store) AddHash(key string, kh uint64, t int64, v float64, h uint64, sm Sample) (float64, int32) {
	x, fsx := s.cX, s.cFS
	if t < s.cLo || t >= s.cHi {
		x, fsx = s.slice(t)
	}
	ref := s.find(kh, key)
	if ref < 0 {
		ref = s.newKey(key, kh, x)
	}
	ks := &s.st[ref]
	if x > ks.max {
		ks.max = x
		if fsx != ks.fs {
			s.advance(ks, fsx)
		}
		s.touch(ref)
	}
	i := s.slotFor(ks, x)
	sl := &ks.slots[i]
	off := uint32(min((t-x*s.g)/1000, math.MaxUint32))
	if sl.n == 0 {
		sl.tmin, sl.tmax = off, off
		if s.spec.Op == Min || s.spec.Op == Max {
			sl.v = v
		}
	} else {
		sl.tmin, sl.tmax = min(sl.tmin, off), max(sl.tmax, off)
	}
	sl.n++
	switch s.spec.Op {
	case Sum:
		sl.v += v
	case Min:
		sl.v = min(sl.v, v)
	case Max:
		sl.v = max(sl.v, v)
	}
	inFrontier := x >= ks.fs
	if inFrontier {
		switch s.spec.Op {
		case Sum:
			ks.runV += v
		case Min:
			if ks.runN == 0 || v < ks.runV {
				ks.runV = v
			}
		case Max:
			if ks.runN == 0 || v > ks.runV {
				ks.runV = v
			}
		}
		ks.runN++
	}
	if s.spec.Op == Distinct {
		s.addDistinct(ks, x, h)
	}
	// The frontier window dominates every window containing the newest
	// slice. An event behind it is also in windows that start before the
	// frontier window, which its totals do not cover: scan those (their
	// number is the event's delay in slides).
	//
	// The result is kept in scalars until the return: Value has five
	// fields, too many for the compiler to keep a Value in registers, and
	// copying one through the stack costs store-forwarding stalls.
	if inFrontier && fsx >= ks.fs {
		// The common case: no window before the frontier to scan.
		v, exact := s.frontierV(ks)
		s.setLast(ks.fs*s.g, (ks.fs+s.n)*s.g, v, ks.runN, exact)
		if s.opts.Samples > 0 && (v >= s.sampleFloor || !exact) {
			s.keepSample(ks, sm)
		}
		return v, ref
	}
	best := Value{V: math.Inf(-1)}
	if inFrontier {
		best = s.frontier(ks)
	}
	for a := fsx; a < ks.fs && a <= x; a += s.q {
		if w := s.window(ks, a); w.V > best.V {
			best = w
		}
	}
	s.setLast(best.Start, best.End, best.V, best.N, best.Exact)
	if s.opts.Samples > 0 && (best.V >= s.sampleFloor || !best.Exact) {
		s.keepSample(ks, sm)
	}
	return best.V, ref
}

// keepSample puts sm in the key's ring of recent events.
func (s *Store) keepSample(ks *keyState, sm Sample) {
	c := csample{topic: s.topicID(sm.Topic), partition: sm.Partition, offset: sm.Offset, time: sm.Time}
	if len(ks.smp) < s.opts.Samples {
		ks.smp = append(ks.smp, c)
		return
	}
	ks.smp[ks.smpAt] = c
	if ks.smpAt++; int(ks.smpAt) == len(ks.smp) {
		ks.smpAt = 0
	}
}

// SetSampleFloor makes AddHash keep an event in its key's samples only
// when the window value it returns is at least floor (or an estimate);
// the default, -Inf, keeps every event.
//
// Writing the ring costs a cache line per event, which for the long
// tail of keys that never come near an alert is about a tenth of the
// engine's time, for samples no alert will show. A caller whose
// aggregate grows by at most one per event (Count, Distinct) and that
// alerts at value >= T loses nothing with floor T - Samples: every one of
// the last Samples events before the crossing that lies in the crossing
// window returned a value above the floor (that window already held all
// but the later ones of them), so the samples Details returns for that
// window are the same. Events out of time order can only add samples
// of the window that the full ring had pushed out.
func (s *Store) SetSampleFloor(floor float64) { s.sampleFloor = floor }

// setLast records the window AddHash returns field by field: a Value
// literal assigned whole is built on the stack and copied with wide
// loads of its narrower stores, which cannot be forwarded and wait until
// every older store (this event's updates of its key, often cache
// misses) has reached the cache.
func (s *Store) setLast(start, end int64, v float64, n int64, exact bool) {
	s.last.Start = start
	s.last.End = end
	s.last.V = v
	s.last.N = n
	s.last.Exact = exact
}

// slice returns the slice index of event time t and the start of the
// earliest window containing it, and caches them for the next event.
func (s *Store) slice(t int64) (x, fsx int64) {
	x = FloorDiv(t, s.g)
	fsx = s.frontierStart(x)
	lo := x * s.g
	if lo/s.g == x && lo <= math.MaxInt64-s.g { // no overflow at the ends of time
		s.cLo, s.cHi, s.cX, s.cFS = lo, lo+s.g, x, fsx
	}
	return x, fsx
}

// topicID interns a sample's topic. A store sees very few topics, and
// almost always the same one as the event before.
func (s *Store) topicID(topic string) int32 {
	if s.lastTopic != none && s.topics[s.lastTopic] == topic {
		return s.lastTopic
	}
	for i, t := range s.topics {
		if t == topic {
			s.lastTopic = int32(i)
			return s.lastTopic
		}
	}
	s.topics = append(s.topics, topic)
	s.lastTopic = int32(len(s.topics) - 1)
	return s.lastTopic
}

func (s *Store) frontier(ks *keyState) Value {
	// The fields are computed into locals and the Value built in one
	// literal: assigning them one by one into a Value made the compiler
	// build it on the stack with 8-byte stores and copy it out with
	// 16-byte loads, which stall on store forwarding (a measurable share
	// of the engine's time, as the frontier is read on every event).
	v, exact := s.frontierV(ks)
	return Value{Start: ks.fs * s.g, End: (ks.fs + s.n) * s.g, V: v, N: ks.runN, Exact: exact}
}

// frontierV is the aggregate of the frontier window and whether it is
// exact.
func (s *Store) frontierV(ks *keyState) (float64, bool) {
	switch s.spec.Op {
	case Count:
		return float64(ks.runN), true
	case Distinct:
		return ks.d.frontier(ks.fs)
	}
	return ks.runV, true
}

// window computes the aggregate of the window starting at slice a by
// scanning its slices.
func (s *Store) window(ks *keyState, a int64) Value {
	if a == ks.fs {
		return s.frontier(ks)
	}
	b := a + s.n
	w := Value{Start: a * s.g, End: b * s.g, Exact: true}
	first := true
	for i := s.search(ks, a); i < len(ks.slots) && ks.slots[i].idx < b; i++ {
		sl := &ks.slots[i]
		w.N += int64(sl.n)
		switch s.spec.Op {
		case Sum:
			w.V += sl.v
		case Min:
			if first || sl.v < w.V {
				w.V = sl.v
			}
		case Max:
			if first || sl.v > w.V {
				w.V = sl.v
			}
		}
		first = false
	}
	switch s.spec.Op {
	case Count:
		w.V = float64(w.N)
	case Distinct:
		w.V, w.Exact = ks.d.window(a, b)
	}
	return w
}

// search returns the index of the first slot with idx >= x.
func (s *Store) search(ks *keyState, x int64) int {
	lo, hi := 0, len(ks.slots)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ks.slots[m].idx < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// slotFor returns the index of slice x's slot, inserting an empty one.
func (s *Store) slotFor(ks *keyState, x int64) int {
	n := len(ks.slots)
	if n > 0 && ks.slots[n-1].idx == x {
		return n - 1
	}
	var i int
	if n == 0 || ks.slots[n-1].idx < x {
		i = n
	} else {
		i = s.search(ks, x)
		if ks.slots[i].idx == x {
			return i
		}
	}
	ks.slots = append(ks.slots, slot{})
	copy(ks.slots[i+1:], ks.slots[i:])
	ks.slots[i] = slot{idx: x}
	if i < int(ks.head) || (i == int(ks.head) && x < ks.fs) {
		ks.head++
	}
	return i
}

// advance moves the frontier window to start nfs, subtracting the slices
// that leave it, then prunes slices no accepted event can reach.
func (s *Store) advance(ks *keyState, nfs int64) {
	ks.fs = nfs
	rescan := false
	for int(ks.head) < len(ks.slots) && ks.slots[ks.head].idx < nfs {
		sl := &ks.slots[ks.head]
		ks.runN -= int64(sl.n)
		switch s.spec.Op {
		case Sum:
			ks.runV -= sl.v
		case Min, Max:
			if sl.v == ks.runV {
				rescan = true
			}
		case Distinct:
			ks.d.dcount -= int64(sl.dl)
		}
		ks.head++
	}
	if ks.runN == 0 {
		ks.runV = 0
	} else if rescan {
		first := true
		for _, sl := range ks.slots[ks.head:] {
			if first || (s.spec.Op == Min && sl.v < ks.runV) || (s.spec.Op == Max && sl.v > ks.runV) {
				ks.runV = sl.v
			}
			first = false
		}
	}
	s.prune(ks)
}

// prune drops slots before the frontier window that are dead, and, when a
// key runs far ahead of the watermark, the oldest ones past s.keep.
func (s *Store) prune(ks *keyState) {
	j, head := 0, int(ks.head)
	for j < head && s.dead(ks.slots[j].idx) {
		j++
	}
	if head-j > s.keep {
		s.stats.ForcedPrunes += uint64(head - j - s.keep)
		j = head - s.keep
	}
	// Shift only when it pays: amortised O(1) per slot.
	if j == 0 || (j < 8 && j*2 < len(ks.slots)) {
		return
	}
	if ks.d != nil {
		// Values whose last occurrence is in a dropped slot go with it;
		// when every slot is dropped, every value goes.
		upto := ks.slots[len(ks.slots)-1].idx + 1
		if j < len(ks.slots) {
			upto = ks.slots[j].idx
		}
		ks.d.expire(upto, s.salt)
	}
	copy(ks.slots, ks.slots[j:])
	ks.slots = ks.slots[:len(ks.slots)-j]
	ks.head -= int32(j)
}

func (s *Store) newKey(key string, kh uint64, x int64) int32 {
	if s.tab.n >= s.opts.MaxKeys && s.lruHead != none {
		s.stats.ForcedEvictions++
		s.evict(s.lruHead)
	}
	var ref int32
	if n := len(s.free); n > 0 {
		ref = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.st = append(s.st, keyState{})
		s.keys = append(s.keys, "")
		ref = int32(len(s.st) - 1)
	}
	ks := &s.st[ref]
	slots := ks.slots[:0]
	smp := ks.smp[:0]
	d := ks.d // an evicted key's, reset (see evict)
	*ks = keyState{kh: kh, kp: keyPrefix(key), slots: slots, smp: smp, max: x, fs: s.frontierStart(x), prev: none, next: none}
	if cap(ks.slots) == 0 {
		ks.slots = make([]slot, 0, 1)
	}
	if s.spec.Op == Distinct {
		if d == nil {
			d = &distinct{}
		}
		ks.d = d
	}
	// The key string is cloned: the caller's may be a substring of a whole
	// log line that would otherwise stay in memory.
	s.keys[ref] = string(append(make([]byte, 0, len(key)), key...))
	s.insert(kh, ref)
	s.linkTail(ref)
	return ref
}

func (s *Store) linkTail(ref int32) {
	ks := &s.st[ref]
	ks.prev, ks.next = s.lruTail, none
	if s.lruTail != none {
		s.st[s.lruTail].next = ref
	} else {
		s.lruHead = ref
	}
	s.lruTail = ref
}

func (s *Store) unlink(ref int32) {
	ks := &s.st[ref]
	if ks.prev != none {
		s.st[ks.prev].next = ks.next
	} else {
		s.lruHead = ks.next
	}
	if ks.next != none {
		s.st[ks.next].prev = ks.prev
	} else {
		s.lruTail = ks.prev
	}
	ks.prev, ks.next = none, none
}

// touch moves a key whose frontier advanced to the back of the eviction
// order.
func (s *Store) touch(ref int32) {
	if s.lruTail == ref {
		return
	}
	s.unlink(ref)
	s.linkTail(ref)
}

func (s *Store) evict(ref int32) {
	s.unlink(ref)
	ks := &s.st[ref]
	s.remove(ks.kh, ref)
	if ks.d != nil && ks.d.sk != nil {
		s.stats.Sketches--
	}
	// Keep small slot buffers for reuse; drop big ones (a hot key's).
	slots, smp := ks.slots[:0], ks.smp[:0]
	if cap(slots) > 64 {
		slots = nil
	}
	// Likewise a distinct set that stayed small and exact: most keys are
	// short-lived, and reusing it saves an allocation and its entries'
	// regrowth per new key (less garbage, fewer GC cycles).
	d := ks.d
	if d != nil {
		if d.sk == nil && cap(d.ents) <= 64 {
			*d = distinct{ents: d.ents[:0]}
		} else {
			d = nil
		}
	}
	*ks = keyState{slots: slots, smp: smp, d: d, prev: none, next: none}
	s.keys[ref] = ""
	s.free = append(s.free, ref)
}

// Advance records the watermark (Unix ns) and evicts keys that no accepted
// event can reach any more. Keys are checked in the order their newest
// event last advanced, which stops at the first live key: O(evicted).
func (s *Store) Advance(wm int64) {
	if wm <= s.wm {
		return
	}
	s.wm = wm
	for s.lruHead != none {
		ks := &s.st[s.lruHead]
		if !s.dead(ks.max) {
			break
		}
		s.stats.Evictions++
		s.evict(s.lruHead)
	}
}

// Query returns key's window starting at start (Unix ns, a multiple of
// the slide), computed from the retained slices. ok is false when the key
// is not tracked.
func (s *Store) Query(key string, start int64) (Value, bool) {
	ref := s.find(s.HashKey(key), key)
	if ref < 0 {
		return Value{}, false
	}
	return s.window(&s.st[ref], FloorDiv(start, s.g)), true
}

// Details returns the first and last event time (Unix ns, µs precision)
// of window w of the key behind ref, and appends to dst the kept samples
// whose event time falls in the window, oldest first.
func (s *Store) Details(ref int32, w Value, dst []Sample) (first, last int64, samples []Sample) {
	ks := &s.st[ref]
	a, b := FloorDiv(w.Start, s.g), FloorDiv(w.End, s.g)
	first, last = math.MaxInt64, math.MinInt64
	for i := s.search(ks, a); i < len(ks.slots) && ks.slots[i].idx < b; i++ {
		sl := &ks.slots[i]
		first = min(first, sl.idx*s.g+int64(sl.tmin)*1000)
		last = max(last, sl.idx*s.g+int64(sl.tmax)*1000)
	}
	if first == math.MaxInt64 {
		first, last = 0, 0
	}
	n := len(ks.smp)
	for i := 0; i < n; i++ {
		c := ks.smp[(int(ks.smpAt)+i)%n]
		if c.time >= w.Start && c.time < w.End {
			dst = append(dst, Sample{Topic: s.topics[c.topic], Partition: c.partition, Offset: c.offset, Time: c.time})
		}
	}
	return first, last, dst
}

// Each calls fn with every tracked key and its frontier window (the
// earliest window holding the key's newest slice: its current aggregate),
// in no particular order, until fn returns false. For live views
// (top keys); the key string stays valid after Each returns.
func (s *Store) Each(fn func(key string, v Value) bool) {
	for _, sl := range s.tab.slots {
		if sl.ref == 0 {
			continue
		}
		ks := &s.st[sl.ref-1]
		if !fn(s.keys[sl.ref-1], s.frontier(ks)) {
			return
		}
	}
}

// Key returns the key behind ref.
func (s *Store) Key(ref int32) string { return s.keys[ref] }

// distinct tracks a key's distinct values: exactly, with each value's
// last occurrence and a bitmap of its occurrences in the 128 slices up to
// it, or, past the exact bound, in a sliding HyperLogLog.
type distinct struct {
	ents []dent
	// idx indexes ents by value hash past linearLimit entries: open
	// addressing with linear probing, entry index + 1 (0 is empty), at
	// most half full. Positions are salted per store (see find).
	idx    []int32
	shift  uint8 // 64 - log2(len(idx))
	dcount int64 // values whose last occurrence is in the frontier window
	sk     *hll.Sliding
	sat    bool
}

type dent struct {
	h      uint64
	last   int64
	m0, m1 uint64 // bit i: the value occurred in slice last-i
}

const linearLimit = 16

// pos is value hash h's home in idx: the hashes come from the rules
// (unseeded), so they are salted with the store's seed before the
// multiplicative spread, which keeps crafted values from piling up in one
// probe run.
func (d *distinct) pos(h, salt uint64) uint64 {
	return ((h ^ salt) * 0x9e3779b97f4a7c15) >> d.shift
}

func (d *distinct) find(h, salt uint64) int {
	if d.idx != nil {
		mask := uint64(len(d.idx) - 1)
		for i := d.pos(h, salt); ; i = (i + 1) & mask {
			j := d.idx[i]
			if j == 0 {
				return -1
			}
			if d.ents[j-1].h == h {
				return int(j - 1)
			}
		}
	}
	for i := range d.ents {
		if d.ents[i].h == h {
			return i
		}
	}
	return -1
}

func (s *Store) slotDL(ks *keyState, x int64, delta int) {
	// The event's own slice is almost always the newest slot.
	i := len(ks.slots) - 1
	if i < 0 || ks.slots[i].idx != x {
		i = s.search(ks, x)
	}
	if i < len(ks.slots) && ks.slots[i].idx == x {
		ks.slots[i].dl = uint32(int(ks.slots[i].dl) + delta)
		if x >= ks.fs {
			ks.d.dcount += int64(delta)
		}
	}
}

func (s *Store) addDistinct(ks *keyState, x int64, h uint64) {
	d := ks.d
	if d.sk != nil {
		d.sk.Insert(x, h)
		return
	}
	i := d.find(h, s.salt)
	if i < 0 {
		if len(d.ents) >= s.opts.ExactDistinct {
			if s.stats.Sketches >= s.opts.MaxSketches {
				d.sat = true
				s.stats.Saturated++
				return
			}
			s.toSketch(d)
			d.sk.Insert(x, h)
			return
		}
		d.ents = append(d.ents, dent{h: h, last: x, m0: 1})
		if d.idx != nil && 2*len(d.ents) <= len(d.idx) {
			d.place(len(d.ents)-1, s.salt)
		} else if len(d.ents) > linearLimit {
			d.reindex(s.salt)
		}
		s.slotDL(ks, x, 1)
		return
	}
	e := &d.ents[i]
	switch {
	case x > e.last:
		sh := uint64(x - e.last)
		switch {
		case sh >= 128:
			e.m0, e.m1 = 0, 0
		case sh >= 64:
			e.m1, e.m0 = e.m0<<(sh-64), 0
		default:
			e.m1 = e.m1<<sh | e.m0>>(64-sh)
			e.m0 <<= sh
		}
		e.m0 |= 1
		s.slotDL(ks, e.last, -1)
		e.last = x
		s.slotDL(ks, x, 1)
	case x < e.last:
		setBit(e, uint64(e.last-x))
	}
}

func setBit(e *dent, i uint64) {
	switch {
	case i < 64:
		e.m0 |= 1 << i
	case i < 128:
		e.m1 |= 1 << (i - 64)
	}
}

// reindex rebuilds idx for the current entries: none while there has not
// been one and the entries fit linearLimit, where a scan is faster. An
// existing index keeps its size while it is at most twice the size the
// entries need: a busy key's values expire at every prune and come back, and
// shrinking the index each time meant allocating a smaller one and then
// rebuilding it at every doubling on the way back (measured: most of the
// distinct rules' rebuild and allocation time on the zipf benchmark).
func (d *distinct) reindex(salt uint64) {
	if len(d.ents) <= linearLimit && d.idx == nil {
		return
	}
	size := 64
	for size < 2*len(d.ents) {
		size *= 2
	}
	if n := len(d.idx); n >= size && n <= 2*size {
		size = n
		clear(d.idx)
	} else {
		d.idx = make([]int32, size)
	}
	d.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for i := range d.ents {
		d.place(i, salt)
	}
}

// place indexes entry i, which is not in idx.
func (d *distinct) place(i int, salt uint64) {
	mask := uint64(len(d.idx) - 1)
	for j := d.pos(d.ents[i].h, salt); ; j = (j + 1) & mask {
		if d.idx[j] == 0 {
			d.idx[j] = int32(i + 1)
			return
		}
	}
}

func (s *Store) toSketch(d *distinct) {
	d.sk = hll.New(s.opts.HLLPrecision)
	s.stats.Sketches++
	for _, e := range d.ents {
		for i := uint64(0); i < 128; i++ {
			if (i < 64 && e.m0&(1<<i) != 0) || (i >= 64 && e.m1&(1<<(i-64)) != 0) {
				d.sk.Insert(e.last-int64(i), e.h)
			}
		}
	}
	d.ents, d.idx, d.dcount = nil, nil, 0
}

// frontier is the distinct count over [a, +inf).
func (d *distinct) frontier(a int64) (float64, bool) {
	if d.sk != nil {
		return d.sk.EstimateFrom(a), false
	}
	return float64(d.dcount), !d.sat
}

// window is the distinct count over slices [a, b). With a sketch only
// suffix windows can be answered; the suffix estimate is an upper bound.
func (d *distinct) window(a, b int64) (float64, bool) {
	if d.sk != nil {
		return d.sk.EstimateFrom(a), false
	}
	n := 0
	for i := range d.ents {
		e := &d.ents[i]
		lo, hi := max(e.last-b+1, 0), min(e.last-a, 127)
		if lo > hi {
			continue
		}
		if bitsIn(e, uint64(lo), uint64(hi)) {
			n++
		}
	}
	return float64(n), !d.sat
}

func bitsIn(e *dent, lo, hi uint64) bool {
	for i := lo; i <= hi; i++ {
		if (i < 64 && e.m0&(1<<i) != 0) || (i >= 64 && e.m1&(1<<(i-64)) != 0) {
			return true
		}
	}
	return false
}

// expire drops values whose last occurrence is before slice x.
func (d *distinct) expire(x int64, salt uint64) {
	if d.sk != nil {
		d.sk.Expire(x)
		return
	}
	j := 0
	for _, e := range d.ents {
		if e.last >= x {
			d.ents[j] = e
			j++
		}
	}
	if j != len(d.ents) {
		d.ents = d.ents[:j]
		d.reindex(salt)
	}
}
