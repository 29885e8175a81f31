package realtime

import "strings"

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

// keyPrefix is the key's first 16 bytes, zero-padded, as two words.
func keyPrefix(key string) [2]uint64 {
	lo, hi := keyWords(key)
	return [2]uint64{lo, hi}
}

// keyWords is keyPrefix as two words, read with word loads from the
// string: copying the bytes into an array and reading words back stalls
// on store forwarding, on every lookup (and an array result comes back
// through the stack).
func keyWords(key string) (lo, hi uint64) {
	n := len(key)
	switch {
	case n >= 16:
		return le64(key), le64(key[8:])
	case n > 8:
		return le64(key), le64(key[n-8:]) >> (8 * (16 - n))
	case n == 8:
		return le64(key), 0
	case n >= 4:
		// Two overlapping 4-byte loads; the overlapping bytes are equal.
		return uint64(le32(key)) | uint64(le32(key[n-4:]))<<(8*(n-4)), 0
	}
	for i := 0; i < n; i++ {
		lo |= uint64(key[i]) << (8 * i)
	}
	return lo, 0
}

// le64 is the little-endian word in s[:8].
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// le32 is the little-endian word in s[:4].
func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// get returns key's value, or nil. kh is the key's hash under the
// engine's seed.
func (x *keyIndex[T]) get(kh uint64, key string) *T {
	tag := uint32(kh >> 32)
	var kp0, kp1 uint64
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
			kp0, kp1 = keyWords(key)
			prefix = true
		}
		if e.kp[0] == kp0 && e.kp[1] == kp1 && (len(key) <= 16 || e.key == key) {
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
