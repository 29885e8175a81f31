package ingest

import (
	"bytes"
	"fmt"
	"io"
)

// minRead is the least free space the arena keeps for one read call.
const minRead = 64 << 10

// line is one line cut from the input.
type line struct {
	// value is the line without its "\n" or "\r\n". For a normal line it
	// aliases the arena, which is never written again, so it stays valid
	// for as long as it is referenced (the producer holds it until acked).
	value []byte
	// start is the input offset of the line's first byte.
	start int64
	// end is the input offset just past the line's newline (or past its
	// last byte for a final line without one).
	end int64
	// total is the line's length in bytes without the line ending; it
	// differs from len(value) only for an over-long line that was cut.
	total int64
	// long marks a line over the size limit: value holds its first
	// min(total, keep) bytes and it goes to quarantine.
	long bool
}

// splitter cuts an input stream into lines with bounded memory. Bytes are
// read into an append-only arena; complete lines are slices of it, so a
// line is never copied on its way to the producer. When the arena is full
// a new one is allocated and only the incomplete tail is copied over; old
// arenas are freed by the GC once their lines are acknowledged.
//
// A line longer than max bytes stops being buffered in the arena as soon as
// that is known: its first keep bytes are copied aside and the rest is only
// counted, so one unbounded line costs at most keep bytes plus one arena.
type splitter struct {
	arena     []byte
	arenaSize int
	start     int   // arena index of the current line's first byte
	scan      int   // arena index from which to look for '\n'
	off       int64 // input offset of arena[start] (or of the long line)
	max, keep int

	inLong     bool
	longBuf    []byte // first keep bytes of the over-long line
	longTotal  int64  // bytes of the over-long line seen so far
	longLastCR bool   // the last byte seen of it was '\r'
}

func newSplitter(max, keep, arenaSize int) *splitter {
	if keep < 1 {
		keep = 1
	}
	// The arena must hold a maximal line (max+"\r\n") plus one read.
	if need := max + 2 + minRead; arenaSize < need {
		arenaSize = need
	}
	return &splitter{max: max, keep: keep, arenaSize: arenaSize}
}

// reset forgets everything buffered and continues at input offset off (a
// new file, or a truncated one read again from 0).
func (s *splitter) reset(off int64) {
	s.arena = s.arena[:s.start] // the old bytes may be referenced: never reuse them
	s.arena = s.arena[len(s.arena):]
	s.start, s.scan, s.off = 0, 0, off
	s.inLong, s.longBuf, s.longTotal, s.longLastCR = false, nil, 0, false
}

// pending is the number of bytes read that do not yet form a complete line.
func (s *splitter) pending() int64 {
	if s.inLong {
		return s.longTotal
	}
	return int64(len(s.arena) - s.start)
}

// readFrom does one Read from r into the arena. It returns the bytes read
// and r's error (io.EOF included).
func (s *splitter) readFrom(r io.Reader) (int, error) {
	if cap(s.arena)-len(s.arena) < minRead {
		s.grow()
	}
	free := s.arena[len(s.arena):cap(s.arena)]
	n, err := r.Read(free)
	if n < 0 || n > len(free) {
		return 0, fmt.Errorf("ingest: reader returned %d bytes for a %d-byte buffer", n, len(free))
	}
	s.arena = s.arena[:len(s.arena)+n]
	return n, err
}

// grow moves the incomplete tail into a fresh arena.
func (s *splitter) grow() {
	tail := s.arena[s.start:]
	na := make([]byte, len(tail), s.arenaSize)
	copy(na, tail)
	s.scan -= s.start
	s.start = 0
	s.arena = na
}

// next returns the next complete line in the arena, if there is one.
func (s *splitter) next() (line, bool) {
	for {
		buf := s.arena[s.scan:]
		i := bytes.IndexByte(buf, '\n')
		if s.inLong {
			if i < 0 {
				s.addLong(buf)
				s.arena = s.arena[:s.scan] // nothing here is kept: reuse the space
				return line{}, false
			}
			s.addLong(buf[:i])
			s.scan += i + 1
			s.start = s.scan
			return s.endLong(1), true
		}
		if i < 0 {
			s.scan = len(s.arena)
			// Without the final "\n", a trailing '\r' may still be part
			// of a "\r\n" ending; allow one byte for it.
			if len(s.arena)-s.start > s.max+1 {
				s.startLong()
				continue
			}
			return line{}, false
		}
		end := s.scan + i
		raw := s.arena[s.start:end]
		s.scan = end + 1
		s.start = s.scan
		l := line{value: trimCR(raw), start: s.off, end: s.off + int64(len(raw)) + 1}
		l.total = int64(len(l.value))
		s.off = l.end
		if len(l.value) > s.max {
			l.long = true
			l.value = cut(l.value, s.keep)
		}
		return l, true
	}
}

// final returns the incomplete last line at the end of the input (a file
// that does not end in "\n"), if any.
func (s *splitter) final() (line, bool) {
	if s.inLong {
		s.arena = s.arena[:s.start]
		return s.endLong(0), true
	}
	if len(s.arena) == s.start {
		return line{}, false
	}
	raw := s.arena[s.start:]
	s.start, s.scan = len(s.arena), len(s.arena)
	l := line{value: trimCR(raw), start: s.off, end: s.off + int64(len(raw))}
	l.total = int64(len(l.value))
	s.off = l.end
	if len(l.value) > s.max {
		l.long = true
		l.value = cut(l.value, s.keep)
	}
	return l, true
}

func (s *splitter) startLong() {
	s.inLong = true
	s.longBuf = make([]byte, 0, min(s.keep, len(s.arena)-s.start))
	s.longTotal = 0
	s.addLong(s.arena[s.start:])
	s.arena = s.arena[:s.start]
	s.scan = s.start
}

func (s *splitter) addLong(b []byte) {
	if len(b) == 0 {
		return
	}
	s.longLastCR = b[len(b)-1] == '\r'
	s.longTotal += int64(len(b))
	if room := s.keep - len(s.longBuf); room > 0 {
		s.longBuf = append(s.longBuf, b[:min(room, len(b))]...)
	}
}

// endLong finishes the over-long line; nl is the length of its newline
// (0 at the end of the input). A '\r' before the "\n" is not part of the
// line: it is neither counted in total nor kept.
func (s *splitter) endLong(nl int) line {
	total, v := s.longTotal, s.longBuf
	if nl == 1 && s.longLastCR {
		total--
		if int64(len(v)) > total {
			v = v[:total]
		}
	}
	l := line{value: v, start: s.off, end: s.off + s.longTotal + int64(nl), total: total, long: true}
	s.off = l.end
	s.inLong, s.longBuf, s.longTotal, s.longLastCR = false, nil, 0, false
	return l
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func cut(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n:n]
	}
	return b
}
