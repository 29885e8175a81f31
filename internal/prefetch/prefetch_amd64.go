package prefetch

// lines prefetches every cache line in [from, to) (64-byte aligned) with
// PREFETCHT0.
//
//go:noescape
func lines(from, to uintptr)
