package parse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// ref is the reference time of the tests: the loghub files (December and
// June/July, no year) are read as if in January 2025.
var ref = time.Date(2025, 1, 5, 12, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, format string) Parser {
	t.Helper()
	p, err := New(format, Options{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readLines returns the lines of a testdata file.
func readLines(t testing.TB, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.Split(b, []byte("\n"))
}

// parseOK parses line and fails the test on error.
func parseOK(t *testing.T, p Parser, line string) schemas.Record {
	t.Helper()
	r, err := p.Parse([]byte(line))
	if err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	if r.Common().EventOriginal != line || r.Common().ParseVersion != schemas.Version {
		t.Fatalf("Parse(%q): event_original %q, parse_version %d", line, r.Common().EventOriginal, r.Common().ParseVersion)
	}
	return r
}

// reasonOf returns the *Error reason of err, failing on other errors.
func reasonOf(t testing.TB, err error) string {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *parse.Error", err, err)
	}
	return pe.Reason
}

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}
