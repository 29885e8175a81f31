package parse

import (
	"reflect"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

func TestSSHDLines(t *testing.T) {
	p := mustNew(t, FormatSSHD)
	dec10 := utc(2024, 12, 10, 6, 55, 46, 0)
	cases := []struct {
		line string
		want schemas.Auth // Base is filled from the line by the test
		ts   time.Time
		host string
	}{
		// Lines from testdata/OpenSSH_2k.log (loghub).
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "173.234.31.186", SourceDomain: "ns.marryaldkfaczcz.com", Outcome: "unknown", Action: ActionReverseMapping, Reason: "POSSIBLE BREAK-IN ATTEMPT", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "webmaster", SourceIP: "173.234.31.186", Outcome: "failure", Action: ActionInvalidUser, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "webmaster", Outcome: "failure", Action: ActionInvalidUserRequest, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
			want: schemas.Auth{Program: "sshd", PID: 24200, Outcome: "failure", Action: ActionUserUnknown, Reason: "user unknown", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186 ",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "173.234.31.186", Outcome: "failure", Action: ActionAuthFailure, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "webmaster", SourceIP: "173.234.31.186", SourcePort: 38926, Method: "password", Outcome: "failure", Action: ActionSSHLogin, Reason: "invalid user", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "173.234.31.186", Outcome: "unknown", Action: ActionConnectionClosed, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Received disconnect from 173.234.31.186: 11: Bye Bye [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "173.234.31.186", Outcome: "unknown", Action: ActionDisconnect, Reason: "Bye Bye", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: error: Received disconnect from 103.99.0.122: 14: No more user authentication methods available. [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "103.99.0.122", Outcome: "unknown", Action: ActionDisconnect, Reason: "No more user authentication methods available.", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3  user=root",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "root", SourceIP: "112.95.230.3", Outcome: "failure", Action: ActionAuthFailure, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 112.95.230.3 port 49234 ssh2",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "root", SourceIP: "112.95.230.3", SourcePort: 49234, Method: "password", Outcome: "failure", Action: ActionSSHLogin, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Failed none for invalid user 0 from 183.62.140.253 port 54227 ssh2",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "0", SourceIP: "183.62.140.253", SourcePort: 54227, Method: "none", Outcome: "failure", Action: ActionSSHLogin, Reason: "invalid user", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
			want: schemas.Auth{Program: "sshd", PID: 24200, User: "fztu", SourceIP: "119.137.62.142", SourcePort: 49116, Method: "password", Outcome: "success", Action: ActionSSHLogin, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24200]: Did not receive identification string from 123.235.32.19",
			want: schemas.Auth{Program: "sshd", PID: 24200, SourceIP: "123.235.32.19", Outcome: "failure", Action: ActionNoIdentification, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
			want: schemas.Auth{Program: "sshd", PID: 24227, User: "root", SourceIP: "5.36.59.76", SourcePort: 42393, Method: "password", Outcome: "failure", Action: ActionSSHLogin, Count: 5}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24227]: Disconnecting: Too many authentication failures for root [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 24227, User: "root", Outcome: "failure", Action: ActionTooManyAuthFailures, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24227]: PAM 4 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76  user=root",
			want: schemas.Auth{Program: "sshd", PID: 24227, User: "root", SourceIP: "5.36.59.76", Outcome: "failure", Action: ActionAuthFailure, Count: 4}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24227]: PAM service(sshd) ignoring max retries; 5 > 3",
			want: schemas.Auth{Program: "sshd", PID: 24227, Outcome: "unknown", Action: ActionMaxRetriesIgnored, Reason: "5 > 3", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[24227]: pam_unix(sshd:session): session opened for user fztu by (uid=0)",
			want: schemas.Auth{Program: "sshd", PID: 24227, User: "fztu", Outcome: "success", Action: ActionSessionOpened, Count: 1}},
		// Modern OpenSSH messages, written for this test in the same format.
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Accepted publickey for alice from 2001:db8::7 port 50022 ssh2: ED25519 SHA256:abcdef",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "alice", SourceIP: "2001:db8::7", SourcePort: 50022, Method: "publickey", Outcome: "success", Action: ActionSSHLogin, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Failed keyboard-interactive/pam for bob from 10.0.0.9 port 4000 ssh2",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "bob", SourceIP: "10.0.0.9", SourcePort: 4000, Method: "keyboard-interactive", Outcome: "failure", Action: ActionSSHLogin, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Connection closed by authenticating user root 10.0.0.9 port 4001 [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "root", SourceIP: "10.0.0.9", SourcePort: 4001, Outcome: "unknown", Action: ActionConnectionClosed, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Connection closed by invalid user admin 10.0.0.9 port 4002 [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "admin", SourceIP: "10.0.0.9", SourcePort: 4002, Outcome: "unknown", Action: ActionConnectionClosed, Reason: "invalid user", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Invalid user oracle from 10.0.0.9 port 4003",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "oracle", SourceIP: "10.0.0.9", SourcePort: 4003, Outcome: "failure", Action: ActionInvalidUser, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: error: maximum authentication attempts exceeded for invalid user test from 10.0.0.9 port 4004 ssh2 [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "test", SourceIP: "10.0.0.9", SourcePort: 4004, Outcome: "failure", Action: ActionMaxAuthAttempts, Reason: "invalid user", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Disconnecting authenticating user root 10.0.0.9 port 4005: Too many authentication failures [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "root", SourceIP: "10.0.0.9", SourcePort: 4005, Outcome: "failure", Action: ActionTooManyAuthFailures, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Received disconnect from 10.0.0.9 port 4006:11: disconnected by user",
			want: schemas.Auth{Program: "sshd", PID: 999, SourceIP: "10.0.0.9", SourcePort: 4006, Outcome: "unknown", Action: ActionDisconnect, Reason: "disconnected by user", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Disconnected from user carol 10.0.0.9 port 4007",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "carol", SourceIP: "10.0.0.9", SourcePort: 4007, Outcome: "unknown", Action: ActionDisconnected, Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: User root from 10.0.0.9 not allowed because not listed in AllowUsers",
			want: schemas.Auth{Program: "sshd", PID: 999, User: "root", SourceIP: "10.0.0.9", Outcome: "failure", Action: ActionUserNotAllowed, Reason: "not listed in AllowUsers", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Unable to negotiate with 10.0.0.9 port 4008: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
			want: schemas.Auth{Program: "sshd", PID: 999, SourceIP: "10.0.0.9", SourcePort: 4008, Outcome: "failure", Action: ActionNegotiationFailed, Reason: "no matching key exchange method found. Their offer: diffie-hellman-group1-sha1", Count: 1}},
		{line: "Dec 10 06:55:46 LabSZ sshd[999]: Did not receive identification string from 10.0.0.9 port 4009",
			want: schemas.Auth{Program: "sshd", PID: 999, SourceIP: "10.0.0.9", SourcePort: 4009, Outcome: "failure", Action: ActionNoIdentification, Count: 1}},
		// RFC 5424 header.
		{line: `<38>1 2024-12-10T06:55:46.123456+01:00 bastion sshd 4242 - [meta x="a\]b"] Failed publickey for deploy from 192.0.2.10 port 61000 ssh2`,
			ts: utc(2024, 12, 10, 5, 55, 46, 123456000), host: "bastion",
			want: schemas.Auth{Program: "sshd", PID: 4242, User: "deploy", SourceIP: "192.0.2.10", SourcePort: 61000, Method: "publickey", Outcome: "failure", Action: ActionSSHLogin, Count: 1}},
		// Old PAM tag format (testdata/Linux_2k.log, loghub).
		{line: "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
			ts: utc(2024, 6, 15, 2, 4, 59, 0), host: "combo",
			want: schemas.Auth{Program: "sshd", PID: 20882, User: "root", SourceDomain: "220-135-151-1.hinet-ip.hinet.net", Outcome: "failure", Action: ActionAuthFailure, Count: 1}},
		{line: "Jun 15 02:04:59 combo su(pam_unix)[9558]: session opened for user news by (uid=0)",
			ts: utc(2024, 6, 15, 2, 4, 59, 0), host: "combo",
			want: schemas.Auth{Program: "su", PID: 9558, User: "news", Outcome: "success", Action: ActionSessionOpened, Count: 1}},
	}
	for _, tc := range cases {
		r := parseOK(t, p, tc.line)
		want := tc.want
		ts, host := tc.ts, tc.host
		if ts.IsZero() {
			ts, host = dec10, "LabSZ"
		}
		want.Base = schemas.Common{Timestamp: ts, Host: host, EventOriginal: tc.line, ParseVersion: schemas.Version}
		if !reflect.DeepEqual(r, &want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.line, r, &want)
		}
	}
}

func TestSyslogNotSecurityRelevant(t *testing.T) {
	p := mustNew(t, FormatSyslog)
	for _, tc := range []struct {
		line         string
		program, msg string
		pid          int64
		host         string
	}{
		{"Jun 14 15:16:01 combo syslogd 1.4.1: restart.", "syslogd", "1.4.1: restart.", 0, "combo"},
		{"Jul 27 14:41:57 combo kernel: Linux version 2.6.5-1.358 (bhcompile@bugs.build.redhat.com)", "kernel", "Linux version 2.6.5-1.358 (bhcompile@bugs.build.redhat.com)", 0, "combo"},
		{"Jun 17 07:07:00 combo ftpd[29504]: connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Fri Jun 17 07:07:00 2005 ", "ftpd", "connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Fri Jun 17 07:07:00 2005 ", 29504, "combo"},
		{"Dec 10 11:03:53 LabSZ sshd[25457]: fatal: Write failed: Connection reset by peer [preauth]", "sshd", "fatal: Write failed: Connection reset by peer [preauth]", 25457, "LabSZ"},
		{"Dec 10 11:03:53 LabSZ sshd[1]: Server listening on 0.0.0.0 port 22.", "sshd", "Server listening on 0.0.0.0 port 22.", 1, "LabSZ"},
		{"<30>1 2024-12-10T11:03:53Z web1 nginx - - - worker started", "nginx", "worker started", 0, "web1"},
	} {
		r := parseOK(t, p, tc.line)
		s, ok := r.(*schemas.Syslog)
		if !ok {
			t.Errorf("Parse(%q) = %s record, want syslog", tc.line, r.Dataset())
			continue
		}
		if s.Program != tc.program || s.Message != tc.msg || s.PID != tc.pid || s.Base.Host != tc.host {
			t.Errorf("Parse(%q) = %+v", tc.line, s)
		}
	}
}

func TestYearInference(t *testing.T) {
	ny := time.Date(2025, 1, 1, 0, 0, 30, 0, time.UTC)
	newYearsEve := time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ref  time.Time
		loc  *time.Location
		line string
		want time.Time
	}{
		{"Dec 31 read on Jan 1 is last year", ny, nil, "Dec 31 23:59:59 h sshd[1]: x", utc(2024, 12, 31, 23, 59, 59, 0)},
		{"Jan 1 read on Jan 1 is this year", ny, nil, "Jan  1 00:00:10 h sshd[1]: x", utc(2025, 1, 1, 0, 0, 10, 0)},
		{"Jan 1 read just before midnight is next year", newYearsEve, nil, "Jan  1 00:00:01 h sshd[1]: x", utc(2025, 1, 1, 0, 0, 1, 0)},
		{"June read in January is last year", ny, nil, "Jun 14 15:16:01 combo x: y", utc(2024, 6, 14, 15, 16, 1, 0)},
		{"a day of clock skew stays this year", time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), nil, "Mar  2 11:00:00 h x: y", utc(2025, 3, 2, 11, 0, 0, 0)},
		{"explicit year is kept", ny, nil, "Mar  2 11:00:00 2019 h x: y", utc(2019, 3, 2, 11, 0, 0, 0)},
		{"fractional seconds", ny, nil, "Dec 30 10:00:00.250 h x: y", utc(2024, 12, 30, 10, 0, 0, 250000000)},
		{"source time zone", ny, berlin, "Dec 31 23:30:00 h x: y", utc(2024, 12, 31, 22, 30, 0, 0)},
		{"source time zone in summer", ny, berlin, "Jul 31 12:00:00 h x: y", utc(2024, 7, 31, 10, 0, 0, 0)},
		{"Feb 29 of the last leap year", time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), nil, "Feb 29 08:00:00 h x: y", utc(2024, 2, 29, 8, 0, 0, 0)},
	} {
		p, err := New(FormatSyslog, Options{Reference: tc.ref, Location: tc.loc})
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Parse([]byte(tc.line))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := r.EventTime(); !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
