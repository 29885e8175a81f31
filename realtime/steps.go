package realtime

import (
	"math"

	"github.com/lambdalog/lambdalog/realtime/window"
)

// recentSteps holds a sequence rule's step-2 events that a step-1 event
// arriving after them could still match, in buckets of one second of
// event time, ascending.
//
// Why not per key, as step-1 events are kept: step-2 events (logins) are
// most of a sequence rule's input and come from many keys, each seen
// rarely; a per-key entry made every one of them a chain of cache misses
// (table slot, entry, array). Here a step-2 event is an append to its
// second's bucket. Only a step-1 event (an IDS alert: few) searches, and
// it indexes the buckets it searches by key hash on the way, once per
// entry (lazily: appends never pay for the index).
//
// A step-1 event at time a is accepted only when a >= watermark -
// lateness, and it matches a step-2 event b >= a, so a step-2 event older
// than watermark - lateness can match nothing: expire drops its bucket.
type recentSteps struct {
	buckets []*stepBucket // ascending by sec; spare buckets in free
	free    []*stepBucket
	topics  []string // interned sample topics
	n       int      // entries held
}

// stepBucket is one second of step-2 events.
type stepBucket struct {
	sec  int64 // event time / 1 s
	ents []stepEnt
	keys []byte // the entries' keys, concatenated
	// idx indexes ents[:indexed] by key hash: open addressing with linear
	// probing, entry index + 1 (0 is empty), at most half full.
	idx     []int32
	indexed int
}

type stepEnt struct {
	kh         uint64
	time       int64
	offset     int64
	partition  int32
	topic      int32
	koff, klen uint32
}

const stepBucketNs = int64(1e9)

// add records a step-2 event of key (hash kh).
func (r *recentSteps) add(kh uint64, key string, sm window.Sample) {
	sec := window.FloorDiv(sm.Time, stepBucketNs)
	b := r.bucket(sec)
	b.ents = append(b.ents, stepEnt{kh: kh, time: sm.Time, offset: sm.Offset, partition: sm.Partition,
		topic: r.topicID(sm.Topic), koff: uint32(len(b.keys)), klen: uint32(len(key))})
	b.keys = append(b.keys, key...)
	r.n++
}

// bucket returns the bucket of second sec, adding it in order. Events come
// mostly in time order, so it looks from the newest.
func (r *recentSteps) bucket(sec int64) *stepBucket {
	i := len(r.buckets)
	for i > 0 && r.buckets[i-1].sec > sec {
		i--
	}
	if i > 0 && r.buckets[i-1].sec == sec {
		return r.buckets[i-1]
	}
	var b *stepBucket
	if n := len(r.free); n > 0 {
		b = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		b = &stepBucket{}
	}
	b.sec = sec
	r.buckets = append(r.buckets, nil)
	copy(r.buckets[i+1:], r.buckets[i:])
	r.buckets[i] = b
	return b
}

func (r *recentSteps) topicID(topic string) int32 {
	for i := len(r.topics) - 1; i >= 0; i-- {
		if r.topics[i] == topic {
			return int32(i)
		}
	}
	r.topics = append(r.topics, topic)
	return int32(len(r.topics) - 1)
}

// earliest returns the earliest step-2 event of key (hash kh) at or after
// t and at most within after it, other than not (the event itself, when
// it matches both steps).
func (r *recentSteps) earliest(kh uint64, key string, t, within int64, not window.Sample) (window.Sample, bool) {
	first := window.FloorDiv(t, stepBucketNs)
	last := window.FloorDiv(t+within, stepBucketNs)
	for _, b := range r.buckets {
		if b.sec < first {
			continue
		}
		if b.sec > last {
			break
		}
		best, found := int64(math.MaxInt64), -1
		b.index()
		mask := uint64(len(b.idx) - 1)
		for i := (kh * 0x9e3779b97f4a7c15) >> 32 & mask; ; i = (i + 1) & mask {
			j := b.idx[i]
			if j == 0 {
				break
			}
			e := &b.ents[j-1]
			if e.kh != kh || e.time < t || e.time-t > within || e.time >= best {
				continue
			}
			if string(b.keys[e.koff:e.koff+e.klen]) != key || r.sample(e) == not {
				continue
			}
			best, found = e.time, int(j-1)
		}
		if found >= 0 {
			return r.sample(&b.ents[found]), true
		}
	}
	return window.Sample{}, false
}

func (r *recentSteps) sample(e *stepEnt) window.Sample {
	return window.Sample{Topic: r.topics[e.topic], Partition: e.partition, Offset: e.offset, Time: e.time}
}

// index adds the entries appended since the last search to idx.
func (b *stepBucket) index() {
	if len(b.idx) > 0 && b.indexed == len(b.ents) {
		return
	}
	if len(b.idx) == 0 || 2*len(b.ents) > len(b.idx) {
		size := 64
		for size < 2*len(b.ents) {
			size *= 2
		}
		if cap(b.idx) >= size {
			b.idx = b.idx[:size]
			clear(b.idx)
		} else {
			b.idx = make([]int32, size)
		}
		b.indexed = 0
	}
	mask := uint64(len(b.idx) - 1)
	for ; b.indexed < len(b.ents); b.indexed++ {
		for i := (b.ents[b.indexed].kh * 0x9e3779b97f4a7c15) >> 32 & mask; ; i = (i + 1) & mask {
			if b.idx[i] == 0 {
				b.idx[i] = int32(b.indexed + 1)
				break
			}
		}
	}
}

// expire drops the buckets wholly before horizon (Unix ns), keeping their
// memory for new ones.
func (r *recentSteps) expire(horizon int64) {
	j := 0
	for j < len(r.buckets) && (r.buckets[j].sec+1)*stepBucketNs <= horizon {
		b := r.buckets[j]
		r.n -= len(b.ents)
		b.ents, b.keys, b.idx, b.indexed = b.ents[:0], b.keys[:0], b.idx[:0], 0
		if cap(b.ents) <= 1<<16 {
			r.free = append(r.free, b)
		}
		j++
	}
	if j > 0 {
		n := copy(r.buckets, r.buckets[j:])
		clear(r.buckets[n:])
		r.buckets = r.buckets[:n]
	}
}
