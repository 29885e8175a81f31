package parse

import (
	"reflect"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// TestParseIntoMatchesParse: every line of the test files, and lines that
// fail, give ParseInto the same record (or error) as Parse, with one
// Scratch reused across all of them, so no field of one record survives
// into the next.
func TestParseIntoMatchesParse(t *testing.T) {
	opts := Options{Reference: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	bad := [][]byte{nil, []byte("   "), []byte("not syslog"), []byte("Jan 99 00:00:00 h sshd[1]: x"), {0xff, 0xfe}}
	for _, tc := range []struct {
		format string
		files  []string
	}{
		{FormatSSHD, []string{"OpenSSH_2k.log", "Linux_2k.log", "test-iptables-raw.log"}},
		{FormatSyslog, []string{"Linux_2k.log", "OpenSSH_2k.log"}},
		{FormatAuto, []string{"OpenSSH_2k.log", "nginx-test-access.log", "test-eve-alerts.log"}},
		{FormatAccess, []string{"nginx-test-access.log"}},
	} {
		p, err := New(tc.format, opts)
		if err != nil {
			t.Fatal(err)
		}
		var sc Scratch
		var lines [][]byte
		for _, f := range tc.files {
			lines = append(lines, readLines(t, f)...)
		}
		lines = append(lines, bad...)
		n := 0
		for _, l := range lines {
			want, werr := p.Parse(l)
			got, gerr := ParseInto(p, append([]byte(nil), l...), &sc)
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("%s %q: Parse error %v, ParseInto error %v", tc.format, l, werr, gerr)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("%s %q:\nParse     %+v\nParseInto %+v", tc.format, l, want, got)
			}
			if werr == nil {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s: no line parsed", tc.format)
		}
	}
}

// TestParseIntoNoAllocation: an sshd auth line and a plain syslog line
// parse without allocating, and the record is the scratch's.
func TestParseIntoNoAllocation(t *testing.T) {
	p := mustNew(t, FormatSSHD)
	var sc Scratch
	for _, line := range []string{
		"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
		"Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]",
		"Jun 14 15:16:01 combo cron[1]: (root) CMD (run-parts /etc/cron.hourly)",
	} {
		b := []byte(line)
		var rec schemas.Record
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if rec, err = ParseInto(p, b, &sc); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%q: %.1f allocations per line, want 0", line, allocs)
		}
		if rec != schemas.Record(&sc.auth) && rec != schemas.Record(&sc.syslog) {
			t.Errorf("%q: record %p is not the scratch's", line, rec)
		}
		if rec.Common().EventOriginal != line {
			t.Errorf("%q: event_original %q", line, rec.Common().EventOriginal)
		}
	}
}
