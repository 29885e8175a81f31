package parse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/lambdalog/lambdalog/schemas"
)

// maxReadLine bounds the memory one input line may take in Run: longer
// lines are cut there (and then rejected by the parser as line_too_long).
const maxReadLine = 1 << 20

// Summary counts what Run did.
type Summary struct {
	// Lines is the number of lines read.
	Lines int64
	// Parsed counts parsed lines per dataset.
	Parsed map[string]int64
	// Quarantined counts rejected lines per reason.
	Quarantined map[string]int64
}

// ParsedTotal is the number of parsed lines.
func (s Summary) ParsedTotal() int64 { return sum(s.Parsed) }

// QuarantinedTotal is the number of rejected lines.
func (s Summary) QuarantinedTotal() int64 { return sum(s.Quarantined) }

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// String renders the summary on one line, keys sorted:
// "lines 3: parsed 2 (auth 1, syslog 1), quarantined 1 (not_syslog 1)".
func (s Summary) String() string {
	return fmt.Sprintf("lines %d: parsed %d%s, quarantined %d%s", s.Lines, s.ParsedTotal(), counts(s.Parsed), s.QuarantinedTotal(), counts(s.Quarantined))
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// Run parses every line of in with p. Each parsed record is written to out
// as one normalized JSON object (schemas.AppendJSON) per line; each
// rejected line is written to quarantine (if not nil) as the JSON of its
// schemas.Quarantine record, which carries the raw bytes and the reason.
// Rejected lines are not an error. Run stops at the first read or write
// error, or when ctx is done, and returns the counts so far.
func Run(ctx context.Context, in io.Reader, out, quarantine io.Writer, p Parser) (Summary, error) {
	sum := Summary{Parsed: map[string]int64{}, Quarantined: map[string]int64{}}
	br := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriterSize(out, 64<<10)
	var qw *bufio.Writer
	if quarantine != nil {
		qw = bufio.NewWriterSize(quarantine, 16<<10)
	}
	var buf, long []byte
	for {
		if sum.Lines&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return sum, flushAll(err, bw, qw)
			}
		}
		line, err := readLine(br, &long)
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return sum, flushAll(nil, bw, qw)
			}
			return sum, flushAll(fmt.Errorf("parse: read input: %w", err), bw, qw)
		}
		sum.Lines++
		rec, perr := p.Parse(line)
		if perr != nil {
			q := Quarantine(line, p.Format(), perr)
			sum.Quarantined[q.Reason]++
			if qw != nil {
				buf = append(schemas.AppendJSON(buf[:0], q), '\n')
				if _, werr := qw.Write(buf); werr != nil {
					return sum, flushAll(fmt.Errorf("parse: write quarantine: %w", werr), bw, qw)
				}
			}
		} else {
			sum.Parsed[rec.Dataset()]++
			buf = append(schemas.AppendJSON(buf[:0], rec), '\n')
			if _, werr := bw.Write(buf); werr != nil {
				return sum, flushAll(fmt.Errorf("parse: write output: %w", werr), bw, qw)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sum, flushAll(nil, bw, qw)
			}
			return sum, flushAll(fmt.Errorf("parse: read input: %w", err), bw, qw)
		}
	}
}

// readLine returns the next line without its newline. Lines longer than
// maxReadLine are cut there and the rest of the line is discarded. The
// result is valid until the next call.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return trimEOL(line), err
	}
	*long = append((*long)[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = br.ReadSlice('\n')
		if room := maxReadLine - len(*long); room > 0 {
			if len(line) > room {
				*long = append(*long, line[:room]...)
			} else {
				*long = append(*long, line...)
			}
		}
	}
	return trimEOL(*long), err
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func flushAll(err error, ws ...*bufio.Writer) error {
	for _, w := range ws {
		if w == nil {
			continue
		}
		if ferr := w.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("parse: flush: %w", ferr)
		}
	}
	return err
}
