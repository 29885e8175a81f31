//go:build !amd64 && !arm64

package prefetch

// lines does nothing where no prefetch instruction is wired up.
func lines(from, to uintptr) {}
