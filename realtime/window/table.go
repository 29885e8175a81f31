package window

// keyTable maps keys to their state index with open addressing and linear
// probing over a flat array of 8-byte slots: the key's 64-bit hash picks
// the home slot (low bits) and a 32-bit tag (high bits) is kept inline, so
// a lookup touches one cache line of the table and then only the state of
// a key whose tag matches. Deletion shifts the following entries back
// (no tombstones), so a long-running store never degrades.
//
// The keys and their full hashes live in the store's key states; the
// table only indexes them. It is sized to stay at most 3/4 full.
type keyTable struct {
	slots []tslot
	mask  uint64
	n     int
}

type tslot struct {
	tag uint32 // high 32 bits of the key hash
	ref int32  // key state index + 1; 0 is an empty slot
}

const minTable = 16

func (t *keyTable) init(n int) {
	size := minTable
	for size*3 < n*4 {
		size *= 2
	}
	t.slots = make([]tslot, size)
	t.mask = uint64(size - 1)
	t.n = 0
}

// find returns the state index of key (hash h), or -1. A key of up to
// 15 bytes (an IPv4 address, most user names) is compared with the copy
// of its bytes and length inside the key state, so a lookup does not
// touch the key string's own memory, which would be one more cache miss
// per store.
func (s *Store) find(h uint64, key string) int32 {
	t := &s.tab
	tag := uint32(h >> 32)
	var kp0, kp1 uint64
	prefix := false
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		sl := t.slots[i]
		if sl.ref == 0 {
			return -1
		}
		if sl.tag != tag {
			continue
		}
		ks := &s.st[sl.ref-1]
		if ks.kh != h {
			continue
		}
		if !prefix {
			kp0, kp1 = keyWords(key)
			prefix = true
		}
		if ks.kp[0] == kp0 && ks.kp[1] == kp1 && (len(key) < 16 || s.keys[sl.ref-1] == key) {
			return sl.ref - 1
		}
	}
}

// keyPrefix packs the first 15 bytes of key, zero-padded, and its length
// in the last byte (16 for any longer key): equal prefixes mean equal
// keys for keys shorter than 16 bytes. It is computed with whole-word
// loads from the string (two overlapping ones for 8..15 bytes), not by
// copying the bytes into an array and reading words back, which stalls
// on store forwarding on every lookup.
func keyPrefix(key string) [2]uint64 {
	lo, hi := keyWords(key)
	return [2]uint64{lo, hi}
}

// keyWords is keyPrefix as two words, which come back in registers (an
// array return goes through the stack).
func keyWords(key string) (lo, hi uint64) {
	n := len(key)
	switch {
	case n >= 16:
		lo = le64(key)
		hi = le64(key[8:])&(1<<56-1) | 16<<56
		return lo, hi
	case n > 8:
		lo = le64(key)
		hi = le64(key[n-8:]) >> (8 * (16 - n))
	case n == 8:
		lo = le64(key)
	case n >= 4:
		// Two overlapping 4-byte loads; the overlapping bytes are equal.
		lo = uint64(le32(key)) | uint64(le32(key[n-4:]))<<(8*(n-4))
	default:
		for i := 0; i < n; i++ {
			lo |= uint64(key[i]) << (8 * i)
		}
	}
	return lo, hi | uint64(n)<<56
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

// insert indexes state ref, whose key is not in the table, under hash h.
func (s *Store) insert(h uint64, ref int32) {
	t := &s.tab
	if (t.n+1)*4 > len(t.slots)*3 {
		s.grow()
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i].ref == 0 {
			t.slots[i] = tslot{tag: uint32(h >> 32), ref: ref + 1}
			t.n++
			return
		}
	}
}

func (s *Store) grow() {
	old := s.tab.slots
	s.tab.slots = make([]tslot, 2*len(old))
	s.tab.mask = uint64(len(s.tab.slots) - 1)
	for _, sl := range old {
		if sl.ref == 0 {
			continue
		}
		for i := s.st[sl.ref-1].kh & s.tab.mask; ; i = (i + 1) & s.tab.mask {
			if s.tab.slots[i].ref == 0 {
				s.tab.slots[i] = sl
				break
			}
		}
	}
}

// remove drops state ref (hash h) from the table, moving back the entries
// after it in its probe run that would otherwise become unreachable.
func (s *Store) remove(h uint64, ref int32) {
	t := &s.tab
	i := h & t.mask
	for t.slots[i].ref != ref+1 {
		if t.slots[i].ref == 0 {
			return // not indexed
		}
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.slots[j].ref != 0; j = (j + 1) & t.mask {
		home := s.st[t.slots[j].ref-1].kh & t.mask
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = tslot{}
	t.n--
}
