package parse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lambdalog/lambdalog/schemas"
)

// tally parses every line of a testdata file and counts datasets, actions
// and quarantine reasons.
type tally struct {
	lines    int
	datasets map[string]int
	actions  map[string]int
	reasons  map[string]int
}

func parseFile(t *testing.T, format, name string) tally {
	t.Helper()
	p := mustNew(t, format)
	tl := tally{datasets: map[string]int{}, actions: map[string]int{}, reasons: map[string]int{}}
	for _, l := range readLines(t, name) {
		tl.lines++
		r, err := p.Parse(l)
		if err != nil {
			tl.reasons[reasonOf(t, err)]++
			continue
		}
		tl.datasets[r.Dataset()]++
		switch v := r.(type) {
		case *schemas.Auth:
			tl.actions[v.Action]++
		case *schemas.Firewall:
			tl.actions[v.Action]++
		}
	}
	parsed := 0
	for _, n := range tl.datasets {
		parsed += n
	}
	t.Logf("%s (%s): %d/%d lines parsed (%.1f%%) %v; quarantined %v; actions %v", name, format, parsed, tl.lines, 100*float64(parsed)/float64(tl.lines), tl.datasets, tl.reasons, tl.actions)
	return tl
}

func TestRealFiles(t *testing.T) {
	// OpenSSH_2k: counts from the shared dataset's README (520 failed
	// password + 4 failed none + 1 accepted = 525 logins; 494 pam_unix and
	// 10 "PAM N more" authentication failures) and the one fatal: line
	// that is valid syslog but not an authentication event.
	ssh := parseFile(t, FormatSSHD, "OpenSSH_2k.log")
	wantSSH := map[string]int{
		ActionSSHLogin: 525, ActionInvalidUser: 113, ActionInvalidUserRequest: 113, ActionAuthFailure: 504, ActionUserUnknown: 135,
		ActionDisconnect: 468, ActionReverseMapping: 85, ActionConnectionClosed: 34, ActionNoIdentification: 10,
		ActionTooManyAuthFailures: 3, ActionMaxRetriesIgnored: 7, ActionSessionOpened: 1, ActionSessionClosed: 1,
	}
	if !reflect.DeepEqual(ssh.actions, wantSSH) || ssh.datasets["auth"] != 1999 || ssh.datasets["syslog"] != 1 {
		t.Errorf("OpenSSH_2k: datasets %v actions %v, want %v", ssh.datasets, ssh.actions, wantSSH)
	}
	// Linux_2k: every line is valid syslog; the 677 sshd(pam_unix), 172
	// su(pam_unix) and 4 login/gdm PAM lines are auth.
	lin := parseFile(t, FormatSyslog, "Linux_2k.log")
	if lin.datasets["auth"] != 853 || lin.datasets["syslog"] != 1147 || len(lin.reasons) != 0 {
		t.Errorf("Linux_2k: %v %v", lin.datasets, lin.reasons)
	}
	if lin.actions[ActionAuthFailure] != 490 || lin.actions[ActionSessionOpened] != 123 || lin.actions[ActionUserUnknown] != 117 {
		t.Errorf("Linux_2k actions %v", lin.actions)
	}
	// Access logs: every line of every variant parses.
	for _, f := range []string{"apache-test-access-basic.log", "apache-test-access-darwin.log", "apache-test-access-ssl-request.log",
		"apache-test-access-vhost.log", "nginx-test-access.log", "nginx-test-test-with-host.log"} {
		a := parseFile(t, FormatAccess, f)
		if a.datasets["web"] != a.lines {
			t.Errorf("%s: %d of %d lines parsed, rejected %v", f, a.datasets["web"], a.lines, a.reasons)
		}
	}
	// Netfilter: every complete line parses; the 6 truncated Ubiquiti
	// fragments are quarantined.
	raw := parseFile(t, FormatNetfilter, "test-iptables-raw.log")
	if raw.datasets["firewall"] != 24 || raw.actions["drop"] != 14 || raw.actions["allow"] != 6 || raw.actions["deny"] != 1 || raw.actions["log"] != 3 {
		t.Errorf("iptables-raw: %v %v", raw.datasets, raw.actions)
	}
	ubi := parseFile(t, FormatNetfilter, "test-ubiquiti.log")
	if ubi.datasets["firewall"] != 5 || ubi.reasons[ReasonNotNetfilter] != 6 {
		t.Errorf("ubiquiti: %v %v", ubi.datasets, ubi.reasons)
	}
	// EVE: 23 alerts, 3 http, 1 flow; dns/tls/ssh/fileinfo/stats have no
	// dataset (35 lines).
	eve := tally{datasets: map[string]int{}, reasons: map[string]int{}}
	for _, f := range []string{"test-eve-small.log", "test-eve-alerts.log", "test-eve-6-0.log", "test-eve-dns-4-1-4.log"} {
		e := parseFile(t, FormatEVE, f)
		for k, v := range e.datasets {
			eve.datasets[k] += v
		}
		for k, v := range e.reasons {
			eve.reasons[k] += v
		}
	}
	if !reflect.DeepEqual(eve.datasets, map[string]int{"ids": 23, "web": 3, "firewall": 1}) || !reflect.DeepEqual(eve.reasons, map[string]int{ReasonUnsupportedEvent: 32}) {
		t.Errorf("eve: %v %v", eve.datasets, eve.reasons)
	}
	// Auto detection agrees with the explicit formats on every file.
	for _, f := range []string{"OpenSSH_2k.log", "Linux_2k.log", "nginx-test-access.log", "test-iptables-raw.log", "test-eve-alerts.log"} {
		a := parseFile(t, FormatAuto, f)
		if a.reasons[ReasonNotSyslog]+a.reasons[ReasonBadJSON] != 0 {
			t.Errorf("auto on %s: %v", f, a.reasons)
		}
	}
}

func TestRun(t *testing.T) {
	in := strings.Join([]string{
		"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
		"Jun 14 15:16:01 combo syslogd 1.4.1: restart.",
		"garbage \xff line",
		"",
		`::1 - - [26/Dec/2016:16:16:29 +0200] "GET /favicon.ico HTTP/1.1" 404 209`,
		"no timestamp here",
	}, "\n") // no trailing newline on the last line
	var out, q bytes.Buffer
	sum, err := Run(context.Background(), strings.NewReader(in), &out, &q, mustNew(t, FormatAuto))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lines != 6 || !reflect.DeepEqual(sum.Parsed, map[string]int64{"auth": 1, "syslog": 1, "web": 1}) ||
		!reflect.DeepEqual(sum.Quarantined, map[string]int64{ReasonInvalidUTF8: 1, ReasonEmpty: 1, ReasonNotSyslog: 1}) {
		t.Fatalf("summary %s", sum)
	}
	if got := sum.String(); got != "lines 6: parsed 3 (auth 1, syslog 1, web 1), quarantined 3 (empty 1, invalid_utf8 1, not_syslog 1)" {
		t.Errorf("String() = %q", got)
	}
	outLines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(outLines) != 3 {
		t.Fatalf("%d output lines", len(outLines))
	}
	r, err := schemas.UnmarshalJSONRecord([]byte(outLines[0]))
	if err != nil || r.(*schemas.Auth).User != "webmaster" || r.(*schemas.Auth).SourceIP != "173.234.31.186" {
		t.Errorf("first output %s: %v", outLines[0], err)
	}
	var qs []*schemas.Quarantine
	for _, l := range strings.Split(strings.TrimSuffix(q.String(), "\n"), "\n") {
		r, err := schemas.UnmarshalJSONRecord([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, r.(*schemas.Quarantine))
	}
	if len(qs) != 3 || string(qs[0].Raw) != "garbage \xff line" || qs[0].Reason != ReasonInvalidUTF8 || qs[0].SourceFormat != FormatAuto ||
		string(qs[2].Raw) != "no timestamp here" || qs[2].Reason != ReasonNotSyslog {
		t.Errorf("quarantine %+v", qs)
	}
	var generic map[string]any
	if err := json.Unmarshal([]byte(outLines[2]), &generic); err != nil || generic["dataset"] != "web" || generic["http_response_status_code"] != 404.0 {
		t.Errorf("web output %s", outLines[2])
	}

	// A line longer than the read limit is cut, quarantined, and the
	// following line still parses.
	long := strings.Repeat("a", maxReadLine+10) + "\nJun 14 15:16:01 combo x: y\n"
	sum, err = Run(context.Background(), strings.NewReader(long), &out, nil, mustNew(t, FormatSyslog))
	if err != nil || sum.Lines != 2 || sum.Quarantined[ReasonLineTooLong] != 1 || sum.Parsed["syslog"] != 1 {
		t.Fatalf("long line: %s %v", sum, err)
	}
	// Cancellation stops the run with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, strings.NewReader("x\n"), &out, nil, mustNew(t, FormatSyslog)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	// Write errors are reported.
	if _, err := Run(context.Background(), strings.NewReader(strings.Repeat("Jun 14 15:16:01 combo x: y\n", 5000)), failWriter{}, nil, mustNew(t, FormatSyslog)); err == nil {
		t.Fatal("write error not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
