//go:build unix

package service

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the process has used, all
// threads included (so the GC's background work counts too). Benchmarks
// report it per event because on a shared machine wall time also counts
// the time spent waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
