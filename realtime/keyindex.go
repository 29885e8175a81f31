package realtime

import (
	"encoding/binary"
	"strings"
)

// keyIndex maps keys to values of type T held in one slice: open
// addressing with linear probing over 8-byte slots (a 32-bit hash tag and
// the entry index), the 64-bit hash and the first 16 key bytes inline in
// the entry, so a lookup with a precomputed hash rarely touches the key
// string. It is the engine's per-rule state for sequences and suppression,
// keyed by the hash the dataset plan computes once per event.
//
// Pointers returned by get and put are valid until the next put or del.
type keyIndex[T any] struct {
	slots []islot
	mask  uint64
	ents  []ientry[T]
	free  []int32
	n     int
}

type islot struct {
	tag uint32 // high 32 bits of the key hash
	ref int32  // entry index + 1; 0 is empty
}

type ientry[T any] struct {
	key  string
	kh   uint64
	kp   [2]uint64
	live bool
	v    T
}

func newKeyIndex[T any]() *keyIndex[T] {
	return &keyIndex[T]{slots: make([]islot, 16), mask: 15}
}

// Len is the number of keys.
func (x *keyIndex[T]) Len() int { return x.n }

func keyPrefix(key string) [2]uint64 {
	var b [16]byte
	copy(b[:], key)
	return [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// get returns key's value, or nil. kh is the key's hash under the
// engine's seed.
func (x *keyIndex[T]) get(kh uint64, key string) *T {
	tag := uint32(kh >> 32)
	var kp [2]uint64
	prefix := false
	for i := kh & x.mask; ; i = (i + 1) & x.mask {
		sl := x.slots[i]
		if sl.ref == 0 {
			return nil
		}
		if sl.tag != tag {
			continue
		}
		e := &x.ents[sl.ref-1]
		if e.kh != kh || len(e.key) != len(key) {
			continue
		}
		if !prefix {
			kp, prefix = keyPrefix(key), true
		}
		if e.kp == kp && (len(key) <= 16 || e.key == key) {
			return &e.v
		}
	}
}

// put adds key, which must be absent, with a zero value, and returns the
// value. The key is cloned: it may be a view of a reused buffer.
func (x *keyIndex[T]) put(kh uint64, key string) *T {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	var ref int32
	if n := len(x.free); n > 0 {
		ref = x.free[n-1]
		x.free = x.free[:n-1]
	} else {
		x.ents = append(x.ents, ientry[T]{})
		ref = int32(len(x.ents) - 1)
	}
	e := &x.ents[ref]
	*e = ientry[T]{key: strings.Clone(key), kh: kh, kp: keyPrefix(key), live: true}
	x.place(kh, ref)
	x.n++
	return &e.v
}

func (x *keyIndex[T]) place(kh uint64, ref int32) {
	for i := kh & x.mask; ; i = (i + 1) & x.mask {
		if x.slots[i].ref == 0 {
			x.slots[i] = islot{tag: uint32(kh >> 32), ref: ref + 1}
			return
		}
	}
}

func (x *keyIndex[T]) grow() {
	old := x.slots
	x.slots = make([]islot, 2*len(old))
	x.mask = uint64(len(x.slots) - 1)
	for _, sl := range old {
		if sl.ref != 0 {
			x.place(x.ents[sl.ref-1].kh, sl.ref-1)
		}
	}
}

// del removes entry ref, shifting back the entries after it in its probe
// run that would otherwise become unreachable.
func (x *keyIndex[T]) del(ref int32) {
	e := &x.ents[ref]
	i := e.kh & x.mask
	for x.slots[i].ref != ref+1 {
		i = (i + 1) & x.mask
	}
	for j := (i + 1) & x.mask; x.slots[j].ref != 0; j = (j + 1) & x.mask {
		home := x.ents[x.slots[j].ref-1].kh & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = islot{}
	*e = ientry[T]{}
	x.free = append(x.free, ref)
	x.n--
}

// deleteIf removes every entry for which drop returns true.
func (x *keyIndex[T]) deleteIf(drop func(key string, v *T) bool) {
	for i := range x.ents {
		if e := &x.ents[i]; e.live && drop(e.key, &e.v) {
			x.del(int32(i))
		}
	}
}
