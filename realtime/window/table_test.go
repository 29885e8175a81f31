package window

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestKeyTableAgainstMap inserts and removes keys in random order with
// hashes drawn from a tiny space (many equal homes and tags, long probe
// runs that wrap around the end of the table) and checks every lookup
// against a map after each step.
func TestKeyTableAgainstMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		const n = 300
		s := &Store{st: make([]keyState, n), keys: make([]string, n)}
		s.tab.init(0)
		for i := range s.st {
			// Homes cluster near the end of a 16-slot table, so runs wrap.
			home := uint64(12 + rng.IntN(6))
			if seed%2 == 0 {
				home = uint64(rng.IntN(1 << 20))
			}
			key := fmt.Sprint("k", i)
			switch {
			case i%3 == 0: // longer than the inline prefix, equal in it
				key = fmt.Sprint("a-long-common-prefix-", i)
			case i%5 == 1: // key i-1 with a NUL byte more: equal but for the length
				key = fmt.Sprint("k", i-1, "\x00")
			case i%7 == 2: // 15 bytes, the longest held whole inline
				key = fmt.Sprintf("%015d", i/7)
			case i%7 == 3: // 16 bytes, equal to the one above in its first 15
				key = fmt.Sprintf("%015dx", i/7)
			}
			s.keys[i] = key
			s.st[i] = keyState{kh: home | uint64(rng.IntN(3))<<32, kp: keyPrefix(key)}
		}
		in := map[int32]bool{}
		for step := 0; step < 4000; step++ {
			ref := int32(rng.IntN(n))
			ks := &s.st[ref]
			if in[ref] {
				s.remove(ks.kh, ref)
				delete(in, ref)
			} else if len(in) < n/2 || rng.IntN(2) == 0 {
				s.insert(ks.kh, ref)
				in[ref] = true
			}
			if s.tab.n != len(in) {
				t.Fatalf("seed %d step %d: table holds %d, want %d", seed, step, s.tab.n, len(in))
			}
			if step%7 != 0 {
				continue
			}
			for i := range s.st {
				got := s.find(s.st[i].kh, s.keys[i])
				want := int32(-1)
				if in[int32(i)] {
					want = int32(i)
				}
				if got != want {
					t.Fatalf("seed %d step %d: find(%s) = %d, want %d", seed, step, s.keys[i], got, want)
				}
			}
		}
	}
}

// TestKeyStateSize keeps a key's state at two cache lines (see keyState).
func TestKeyStateSize(t *testing.T) {
	if n := unsafe.Sizeof(keyState{}); n != 128 {
		t.Fatalf("keyState is %d bytes, want 128", n)
	}
}

func TestKeyPrefixMatchesBytes(t *testing.T) {
	ref := func(key string) [2]uint64 {
		var b [16]byte
		copy(b[:15], key)
		b[15] = byte(min(len(key), 16))
		return [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
	}
	s := "0123456789abcdefghijklmnopqrstuvwxyz\xff\x80"
	for i := 0; i <= len(s); i++ {
		for j := i; j <= len(s); j++ {
			if got, want := keyPrefix(s[i:j]), ref(s[i:j]); got != want {
				t.Fatalf("keyPrefix(%q) = %x, want %x", s[i:j], got, want)
			}
		}
	}
}
