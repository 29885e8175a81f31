package realtime

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestKeyIndexAgainstMap puts, gets and deletes keys with hashes drawn
// from a tiny space (long probe runs) and keys that share their inline
// prefix (long keys, keys equal but for a trailing NUL, 15- and 16-byte
// keys), checking every lookup against a map.
func TestKeyIndexAgainstMap(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		const n = 200
		keys := make([]string, n)
		hashes := make([]uint64, n)
		for i := range keys {
			switch {
			case i%3 == 0:
				keys[i] = fmt.Sprint("a-long-common-prefix-", i)
			case i%5 == 1:
				keys[i] = fmt.Sprint("k", i-1, "\x00")
			case i%7 == 2:
				keys[i] = fmt.Sprintf("%015d", i/7)
			case i%7 == 3:
				keys[i] = fmt.Sprintf("%015dx", i/7)
			default:
				keys[i] = fmt.Sprint("k", i)
			}
			hashes[i] = uint64(rng.IntN(8)) | uint64(rng.IntN(2))<<32
			if seed%2 == 0 {
				hashes[i] = rng.Uint64()
			}
		}
		x := newKeyIndex[int]()
		want := map[int]int{}
		for step := 0; step < 5000; step++ {
			i := rng.IntN(n)
			if v := x.get(hashes[i], keys[i]); v != nil {
				if w, ok := want[i]; !ok || *v != w {
					t.Fatalf("seed %d step %d: get(%q) = %d, want %d (present %v)", seed, step, keys[i], *v, w, ok)
				}
				if rng.IntN(3) == 0 {
					x.deleteIf(func(key string, _ *int) bool { return key == keys[i] })
					delete(want, i)
				}
			} else {
				if _, ok := want[i]; ok {
					t.Fatalf("seed %d step %d: get(%q) = nil, want %d", seed, step, keys[i], want[i])
				}
				*x.put(hashes[i], keys[i]) = step
				want[i] = step
			}
			if x.Len() != len(want) {
				t.Fatalf("seed %d step %d: %d keys, want %d", seed, step, x.Len(), len(want))
			}
		}
	}
}

func TestKeyPrefixMatchesBytes(t *testing.T) {
	ref := func(key string) [2]uint64 {
		var b [16]byte
		copy(b[:], key)
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
