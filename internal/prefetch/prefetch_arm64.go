package prefetch

// lines prefetches every cache line in [from, to) (64-byte aligned) with
// PRFM PLDL1KEEP, arm64's load prefetch into the L1 cache. Cores with
// 128-byte lines (some Apple and server parts) get each line hinted
// twice, which is harmless.
//
//go:noescape
func lines(from, to uintptr)
