package httpserve

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per client key (the client's IP address):
// each key may make Burst requests at once and Rate per second after
// that. It is small on purpose: one mutex, one map, buckets of idle
// clients swept once a minute, so memory follows the number of clients
// seen in the last minute, bounded by maxKeys.
type limiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// defaultMaxKeys bounds the limiter's table: 100k clients is far more
// than any lambdalog API sees, and a few MiB of memory.
const defaultMaxKeys = 100_000

func newLimiter(rate float64, burst int, maxKeys int, now func() time.Time) *limiter {
	if burst < 1 {
		burst = max(1, int(math.Ceil(rate)))
	}
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	return &limiter{rate: rate, burst: float64(burst), maxKeys: maxKeys, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket. When there is none it returns
// false and how long until one is there (at least a second, as
// Retry-After counts whole seconds).
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= time.Minute {
		l.sweep(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxKeys {
			// Refuse rather than grow without bound: a flood from this
			// many addresses is an attack, and existing clients keep
			// their buckets.
			return false, time.Second
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, max(wait, time.Second)
}

// sweep drops the buckets that have refilled completely: forgetting
// them changes nothing, since a new bucket starts full.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}

// size is the number of tracked clients (for tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
