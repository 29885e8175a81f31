//go:build !linux

package consumer

import "time"

// processCPU, resetPeakRSS and peakRSS are not measured on this platform.
func processCPU() time.Duration { return 0 }
func resetPeakRSS()             {}
func peakRSS() int64            { return 0 }
