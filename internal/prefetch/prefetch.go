// Package prefetch asks the CPU to start loading memory that will be read
// soon, without waiting for it: a hint that lets a loop over records that
// are not in the caches overlap one record's cache misses with the work
// on the records before it. It has no effect on what a program computes.
package prefetch

import "unsafe"

// Range hints that the n bytes at p will be read soon.
func Range(p unsafe.Pointer, n uintptr) {
	if p == nil || n == 0 {
		return
	}
	lines(span(uintptr(p), n))
}

// span is the range of whole 64-byte cache lines holding [p, p+n).
func span(p, n uintptr) (from, to uintptr) {
	return p &^ 63, (p + n + 63) &^ 63
}
