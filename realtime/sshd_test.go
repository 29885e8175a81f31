package realtime

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// TestSSHBruteforceOnRealSSHDLog runs the default rules over the loghub
// OpenSSH sample and checks that ssh_bruteforce fires for exactly the
// source addresses with >= 5 failures in some aligned 60 s window,
// computed here by brute force over the parsed records.
func TestSSHBruteforceOnRealSSHDLog(t *testing.T) {
	data, err := os.ReadFile("testdata/OpenSSH_2k.log")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parse.New(parse.FormatSSHD, parse.Options{Reference: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	var recs []schemas.Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		r, err := p.Parse(sc.Bytes())
		if err != nil {
			continue // quarantined lines do not reach the speed layer
		}
		recs = append(recs, r)
	}
	if len(recs) < 1900 {
		t.Fatalf("only %d of 2000 lines parsed", len(recs))
	}

	// Brute force: per source, every aligned window [k s, k s + 60 s).
	fails := map[string][]int64{}
	for _, r := range recs {
		if a, ok := r.(*schemas.Auth); ok && a.Outcome == schemas.OutcomeFailure && a.SourceIP != "" {
			fails[a.SourceIP] = append(fails[a.SourceIP], a.Base.Timestamp.UnixNano())
		}
	}
	want := map[string]bool{}
	sec := int64(time.Second)
	for ip, ts := range fails {
		for _, x := range ts {
			for k := x/sec - 59; k <= x/sec; k++ {
				n := 0
				for _, y := range ts {
					if y >= k*sec && y < k*sec+60*sec {
						n++
					}
				}
				if n >= 5 {
					want[ip] = true
				}
			}
		}
	}

	f := newFeeder(t, nil, Options{})
	f.feed(recs...)
	got := map[string]bool{}
	for _, a := range f.alerts {
		if a.RuleID == "ssh_bruteforce" && a.Type == alert.TypeStart {
			got[a.KeyValues[0]] = true
			if a.Value < 5 || a.EventCount < 5 || len(a.Samples) == 0 {
				t.Errorf("alert for %s: value %v, %d events, %d samples", a.KeyValues[0], a.Value, a.EventCount, len(a.Samples))
			}
		}
	}
	if len(want) < 5 {
		t.Fatalf("the sample should hold several brute-forcing sources, found %d", len(want))
	}
	t.Logf("%d parsed records, %d sources with failures, ssh_bruteforce fired for %d", len(recs), len(fails), len(got))
	if !equalSets(got, want) {
		t.Fatalf("ssh_bruteforce fired for %v, want %v", keys(got), keys(want))
	}
	if len(f.late) != 0 {
		t.Errorf("%d events late in a file in time order", len(f.late))
	}

	// Cross-check without the parser: every source with 5 "Failed
	// password" lines inside 60 aligned seconds is among them.
	re := regexp.MustCompile(`^(\w{3} +\d+ [\d:]+) .*Failed password for (?:invalid user )?\S+ from (\S+) port`)
	raw := map[string][]int64{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		m := re.FindSubmatch(line)
		if m == nil {
			continue
		}
		ts, err := time.Parse("Jan _2 15:04:05 2006", string(bytes.Join(bytes.Fields(m[1]), []byte(" ")))+" 2016")
		if err != nil {
			ts, err = time.Parse("Jan 2 15:04:05 2006", string(bytes.Join(bytes.Fields(m[1]), []byte(" ")))+" 2016")
		}
		if err != nil {
			t.Fatalf("timestamp %q: %v", m[1], err)
		}
		raw[string(m[2])] = append(raw[string(m[2])], ts.UnixNano())
	}
	for ip, ts := range raw {
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		for i := 0; i+4 < len(ts); i++ {
			if ts[i+4]/sec-ts[i]/sec < 60 && (ts[i]/sec)/60 == (ts[i+4]/sec)/60 && !got[ip] {
				t.Errorf("%s has 5 Failed password lines within one minute but no alert", ip)
			}
		}
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
