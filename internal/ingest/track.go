package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batch is a run of consecutive records of one input. It is the unit of
// acknowledgement tracking: a batch is complete when every one of its
// records is acknowledged, and only complete batches move the persisted
// read position, in input order.
type batch struct {
	tr *tracker
	// pending counts records handed to the producer and not yet finished,
	// plus one while the batch is open, so that it cannot complete before
	// it is sealed.
	pending atomic.Int64
	failed  atomic.Bool
	// done is set under tr.mu when pending reaches zero.
	done bool
	// pos is the input position just past the batch's last line.
	pos     Position
	n       int
	promise func(*kgo.Record, error)
}

// tracker orders the batches of one input and reports the position up to
// which everything is acknowledged.
type tracker struct {
	g     *Ingester
	mu    sync.Mutex
	queue []*batch
	// onCommit receives each new acknowledged position (nil for inputs
	// without a position, such as stdin). It is called with mu held, in
	// input order.
	onCommit func(Position)
}

func newTracker(g *Ingester, onCommit func(Position)) *tracker {
	return &tracker{g: g, onCommit: onCommit}
}

// open starts a batch at pos.
func (t *tracker) open(pos Position) *batch {
	b := &batch{tr: t, pos: pos}
	b.pending.Store(1)
	b.promise = func(_ *kgo.Record, err error) {
		if err != nil {
			b.failed.Store(true)
			t.g.recordFailed(err)
		} else {
			t.g.stats.acked.Add(1)
		}
		if b.pending.Add(-1) == 0 {
			t.complete(b)
		}
	}
	t.mu.Lock()
	t.queue = append(t.queue, b)
	t.mu.Unlock()
	return b
}

// seal ends the batch: no record is added after it.
func (b *batch) seal() {
	if b.pending.Add(-1) == 0 {
		b.tr.complete(b)
	}
}

// complete marks b finished and advances the acknowledged position over
// every leading finished batch. A batch with a failed record is never
// passed: the position stays before it, so its lines are sent again by
// the next run (at-least-once).
func (t *tracker) complete(b *batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b.done = true
	i := 0
	for i < len(t.queue) && t.queue[i].done && !t.queue[i].failed.Load() {
		i++
	}
	if i == 0 {
		return
	}
	last := t.queue[i-1]
	clear(t.queue[:i])
	t.queue = t.queue[i:]
	if t.onCommit != nil {
		t.onCommit(last.pos)
	}
}

// slabs hands out records and key bytes from large blocks, so producing a
// line allocates nothing. A block is freed by the GC once the producer has
// released every record in it.
type slabs struct {
	recs []kgo.Record
	keys []byte
	now  time.Time
	n    int
}

const (
	recSlab = 1024
	keySlab = 64 << 10
	// nowEvery lines share one record timestamp: reading the clock per
	// record is measurable at these rates.
	nowEvery = 256
)

// record returns a zeroed record from the slab, timestamped.
func (s *slabs) record() *kgo.Record {
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]kgo.Record, 0, recSlab)
	}
	s.recs = s.recs[:len(s.recs)+1]
	if s.n%nowEvery == 0 {
		s.now = time.Now()
	}
	s.n++
	r := &s.recs[len(s.recs)-1]
	r.Timestamp = s.now
	return r
}

// keyBuf returns a buffer to append a key of up to n bytes to; commit
// with keyDone.
func (s *slabs) keyBuf(n int) []byte {
	if cap(s.keys)-len(s.keys) < n {
		s.keys = make([]byte, 0, max(keySlab, n))
	}
	return s.keys[len(s.keys):len(s.keys)]
}

// keyDone claims the bytes appended to the buffer from keyBuf. If the
// append outgrew the slab it was reallocated and k is already its own.
func (s *slabs) keyDone(k []byte) []byte {
	if len(k) == 0 {
		return nil
	}
	free := s.keys[len(s.keys):cap(s.keys)]
	if len(free) >= len(k) && &free[0] == &k[0] {
		s.keys = s.keys[:len(s.keys)+len(k)]
	}
	return k[:len(k):len(k)]
}
