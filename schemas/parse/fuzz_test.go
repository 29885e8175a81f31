package parse

import (
	"errors"
	"testing"

	"github.com/lambdalog/lambdalog/schemas"
)

// fuzzParser checks the contract every parser keeps on any input: no
// panic; either a record whose normalized JSON reads back, or a *Error with
// a known reason.
func fuzzParser(f *testing.F, format string, seeds ...string) {
	for _, name := range seeds {
		lines := readLines(f, name)
		for i, l := range lines {
			if i < 200 || i%50 == 0 {
				f.Add(l)
			}
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("\xff\xfe"))
	known := map[string]bool{ReasonEmpty: true, ReasonLineTooLong: true, ReasonInvalidUTF8: true, ReasonNotSyslog: true, ReasonBadTimestamp: true,
		ReasonNotAccess: true, ReasonNotNetfilter: true, ReasonBadJSON: true, ReasonNotEVE: true, ReasonUnsupportedEvent: true}
	p := mustNew(f, format)
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := p.Parse(line)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !known[pe.Reason] {
				t.Fatalf("Parse(%q): error %v (%T) is not a *parse.Error with a known reason", line, err, err)
			}
			if q := Quarantine(line, format, err); string(q.Raw) != string(line) {
				t.Fatalf("quarantine changed the bytes")
			}
			return
		}
		if r.EventTime().IsZero() || r.Common().EventOriginal == "" {
			t.Fatalf("Parse(%q): record without time or original: %+v", line, r)
		}
		if _, err := schemas.UnmarshalJSONRecord(schemas.AppendJSON(nil, r)); err != nil {
			t.Fatalf("Parse(%q): JSON does not read back: %v", line, err)
		}
	})
}

func FuzzSSHD(f *testing.F)   { fuzzParser(f, FormatSSHD, "OpenSSH_2k.log") }
func FuzzSyslog(f *testing.F) { fuzzParser(f, FormatSyslog, "Linux_2k.log") }
func FuzzAccess(f *testing.F) {
	fuzzParser(f, FormatAccess, "apache-test-access-basic.log", "nginx-test-test-with-host.log", "apache-test-access-ssl-request.log")
}
func FuzzNetfilter(f *testing.F) {
	fuzzParser(f, FormatNetfilter, "test-iptables-raw.log", "test-ubiquiti.log")
}
func FuzzEVE(f *testing.F)  { fuzzParser(f, FormatEVE, "test-eve-small.log", "test-eve-alerts.log") }
func FuzzJSON(f *testing.F) { fuzzParser(f, FormatJSON) }
func FuzzAuto(f *testing.F) {
	fuzzParser(f, FormatAuto, "test-eve-small.log", "nginx-test-access.log", "test-iptables-raw.log")
}
