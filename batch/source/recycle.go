package source

import (
	"math/bits"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// recycler is an Arrow allocator for one scan worker that reuses the
// buffers of files it has finished reading.
//
// Every batch pqarrow reads allocates fresh column buffers, and Go zeroes
// each large allocation, often on pages the kernel must fault in: about a
// tenth of a load's client CPU, and most of its allocation rate, which the
// GC then pays for again. A buffer Arrow frees is reused only once the
// reader of its file is closed (endFile): Free means Arrow's reference
// count reached zero, but an earlier pool that reused buffers at once
// failed with "dict eof exception" (docs/benchmarks.md; not reproduced
// since), and waiting for the file costs nothing measurable while ruling
// out any reader state outliving a Free. Reused buffers are zeroed, as
// Arrow's own allocators promise.
//
// Callers whose chunk callback keeps Arrow memory past the callback must
// not use it (ScanOptions.Recycle).
type recycler struct {
	pending [][]byte
	free    [64][][]byte // by size class: cap in [2^k, 2^(k+1))
	// held bounds the bytes kept in free.
	held, limit int
	reused      int // buffers handed out again
}

// minRecycle is the smallest buffer worth pooling: below it Go's small
// allocator is cheap and the bookkeeping would cost more than it saves.
const minRecycle = 32 << 10

func newRecycler(limit int) *recycler { return &recycler{limit: limit} }

func (r *recycler) Allocate(size int) []byte {
	if size >= minRecycle {
		// size is in class k; a buffer of class k may be too small, any
		// of class k+1 fits (at most four times size: not wasteful).
		k := bits.Len(uint(size)) - 1
		for c := k; c <= k+1 && c < len(r.free); c++ {
			l := r.free[c]
			for i := len(l) - 1; i >= 0; i-- {
				if b := l[i]; cap(b) >= size {
					l[i] = l[len(l)-1]
					r.free[c] = l[:len(l)-1]
					r.held -= cap(b)
					r.reused++
					b = b[:size]
					clear(b)
					return b
				}
			}
		}
	}
	return make([]byte, size, roundUp(size))
}

// roundUp gives pooled buffers some headroom (an eighth), so a batch a
// little larger than the last one still fits a recycled buffer.
func roundUp(size int) int {
	if size < minRecycle {
		return size
	}
	return size + size/8
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

func (r *recycler) Free(b []byte) {
	if cap(b) >= minRecycle {
		r.pending = append(r.pending, b)
	}
}

// endFile makes the buffers freed while reading the file just closed
// available again, keeping at most limit bytes.
func (r *recycler) endFile() {
	for i, b := range r.pending {
		r.pending[i] = nil
		if r.held+cap(b) > r.limit {
			continue
		}
		k := bits.Len(uint(cap(b))) - 1
		r.free[k] = append(r.free[k], b)
		r.held += cap(b)
	}
	r.pending = r.pending[:0]
}

var _ memory.Allocator = (*recycler)(nil)
