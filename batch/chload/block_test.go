package chload

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortByTime checks the three ways a bucket gets ordered (already in
// order, counting sort over a short span, comparison sort over a long one)
// against a stable sort by second.
func TestSortByTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		n      int
		spanUs int64
		sorted bool
	}{
		{"in order", 500, 3600e6, true},
		{"short span", 5000, 600e6, false},
		{"long span", 300, 86400e6, false},
		{"negative times", 400, 900e6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			micros := make([]int64, tc.n)
			for i := range micros {
				micros[i] = 1_775_000_000e6 + rng.Int64N(tc.spanUs)
				if tc.name == "negative times" {
					micros[i] -= 1_775_000_300e6
				}
			}
			if tc.sorted {
				slices.Sort(micros)
			}
			rows := make([]rowRef, tc.n)
			for i := range rows {
				rows[i] = rowRef{row: int32(i)}
			}
			want := slices.Clone(rows)
			slices.SortStableFunc(want, func(x, y rowRef) int {
				return cmp.Compare(floorDiv(micros[x.row], 1e6), floorDiv(micros[y.row], 1e6))
			})
			var b block
			if kept := b.sortByTime(rows, micros); kept != tc.sorted {
				t.Errorf("sortByTime reports kept=%v for rows that were sorted=%v", kept, tc.sorted)
			}
			if !slices.Equal(rows, want) {
				t.Fatalf("order differs from a stable sort by second")
			}
		})
	}
}
