package realtime

import (
	"unsafe"

	"github.com/lambdalog/lambdalog/internal/prefetch"
	"github.com/lambdalog/lambdalog/schemas"
)

// PrefetchDistance is how many records ahead of the one it feeds a driver
// loop should call Prefetch for.
const PrefetchDistance = 4

// Prefetch hints that rec is about to be fed to the engine. A parsed poll
// is larger than the caches, so reading a record's fields (its time, the
// rules' filter and key columns) costs a cache miss or more per record;
// a driver that calls Prefetch for the record PrefetchDistance places
// ahead overlaps those misses with the work on the records before it.
// It changes nothing else; a nil or unknown record is ignored.
func Prefetch(rec schemas.Record) {
	switch r := rec.(type) {
	case *schemas.Auth:
		prefetch.Range(unsafe.Pointer(r), unsafe.Sizeof(*r))
	case *schemas.Firewall:
		prefetch.Range(unsafe.Pointer(r), unsafe.Sizeof(*r))
	case *schemas.Web:
		prefetch.Range(unsafe.Pointer(r), unsafe.Sizeof(*r))
	case *schemas.IDS:
		prefetch.Range(unsafe.Pointer(r), unsafe.Sizeof(*r))
	}
}
