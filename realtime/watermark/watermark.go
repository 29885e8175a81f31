// Package watermark tracks event-time progress per input partition and
// derives the global watermark the speed layer closes windows with.
//
// A partition's watermark is the largest event time seen on it minus the
// bounded out-of-orderness. The global watermark is the minimum over
// partitions that are not idle; a partition is idle when it has not
// delivered an event for IdleTimeout of processing time. Processing time is
// always supplied by the caller, so a replay with the same inputs and the
// same clock readings gives the same watermarks. The global watermark never
// moves backwards.
package watermark

import (
	"math"
	"time"
)

// Partition names one input partition.
type Partition struct {
	Topic     string
	Partition int32
}

// Options configures a Tracker.
type Options struct {
	// OutOfOrderness is how far behind the newest event of a partition an
	// event may be and still be in order.
	OutOfOrderness time.Duration
	// IdleTimeout is the processing time without events after which a
	// partition no longer holds the watermark back. Zero disables idleness.
	IdleTimeout time.Duration
}

type part struct {
	maxEvent int64 // Unix ns, math.MinInt64 before the first event
	lastSeen int64 // processing time of the last event, Unix ns
}

// Tracker holds per-partition progress. It is not safe for concurrent use.
type Tracker struct {
	opts Options
	// last caches the partition of the previous event: a poll batch
	// usually holds many events of one partition.
	lastP  Partition
	last   *part
	parts  map[Partition]*part
	order  []Partition // registration order, for deterministic iteration
	global int64
}

// New returns a tracker with no partitions.
func New(opts Options) *Tracker {
	return &Tracker{opts: opts, parts: map[Partition]*part{}, global: math.MinInt64}
}

// Assign registers a partition before its first event, so that it holds
// the watermark back from the start (an assigned but silent partition
// counts as idle once IdleTimeout has passed since now).
func (t *Tracker) Assign(p Partition, now time.Time) {
	if _, ok := t.parts[p]; ok {
		return
	}
	t.parts[p] = &part{maxEvent: math.MinInt64, lastSeen: now.UnixNano()}
	t.order = append(t.order, p)
}

// Revoke forgets a partition (after a rebalance moved it away).
func (t *Tracker) Revoke(p Partition) {
	if _, ok := t.parts[p]; !ok {
		return
	}
	delete(t.parts, p)
	t.last = nil
	for i, q := range t.order {
		if q == p {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
}

// Observe records an event with event time ev read from p at processing
// time now.
func (t *Tracker) Observe(p Partition, ev, now time.Time) {
	pp, ok := t.parts[p]
	if !ok {
		t.Assign(p, now)
		pp = t.parts[p]
	}
	if e := ev.UnixNano(); e > pp.maxEvent {
		pp.maxEvent = e
	}
	pp.lastSeen = now.UnixNano()
}

// ObserveNanos is Observe with Unix nanoseconds, for hot loops.
func (t *Tracker) ObserveNanos(p Partition, ev, now int64) {
	pp := t.last
	if pp == nil || p != t.lastP {
		var ok bool
		if pp, ok = t.parts[p]; !ok {
			t.Assign(p, time.Unix(0, now))
			pp = t.parts[p]
		}
		t.lastP, t.last = p, pp
	}
	if ev > pp.maxEvent {
		pp.maxEvent = ev
	}
	pp.lastSeen = now
}

// Advance recomputes the global watermark at processing time now and
// returns it (Unix ns; math.MinInt64 until some partition has an event).
// When every partition is idle the watermark follows the most advanced
// one, so a quiet stream still closes its windows.
func (t *Tracker) Advance(now time.Time) int64 {
	n := now.UnixNano()
	low, high := int64(math.MaxInt64), int64(math.MinInt64)
	active := 0
	bound := int64(t.opts.OutOfOrderness)
	for _, p := range t.order {
		pp := t.parts[p]
		wm := int64(math.MinInt64)
		if pp.maxEvent != math.MinInt64 {
			wm = pp.maxEvent - bound
		}
		high = max(high, wm)
		if t.opts.IdleTimeout > 0 && n-pp.lastSeen >= int64(t.opts.IdleTimeout) {
			continue
		}
		active++
		low = min(low, wm)
	}
	cand := low
	if active == 0 {
		cand = high
	}
	if cand > t.global {
		t.global = cand
	}
	return t.global
}

// Watermark is the global watermark as of the last Advance.
func (t *Tracker) Watermark() int64 { return t.global }

// Idle reports whether p is idle at processing time now.
func (t *Tracker) Idle(p Partition, now time.Time) bool {
	pp, ok := t.parts[p]
	return ok && t.opts.IdleTimeout > 0 && now.UnixNano()-pp.lastSeen >= int64(t.opts.IdleTimeout)
}
