package parse

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

func TestAccessLines(t *testing.T) {
	p := mustNew(t, FormatAccess)
	for _, tc := range []struct {
		line string
		want schemas.Web
		host string
		ts   time.Time
	}{
		// Common Log Format with ident/authuser (apache-test-access-basic.log).
		{line: `127.0.0.1 user-identity frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
			ts:   utc(2000, 10, 10, 20, 55, 36, 0),
			want: schemas.Web{SourceIP: "127.0.0.1", User: "frank", Method: "GET", Path: "/apache_pb.gif", HTTPVersion: "1.0", Status: 200, Bytes: 2326}},
		// Combined, IPv4 (nginx-test-access.log).
		{line: `67.43.156.13 - - [25/Oct/2016:14:49:34 +0200] "GET /favicon.ico HTTP/1.1" 404 571 "http://localhost:8080/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36"`,
			ts: utc(2016, 10, 25, 12, 49, 34, 0),
			want: schemas.Web{SourceIP: "67.43.156.13", Method: "GET", Path: "/favicon.ico", HTTPVersion: "1.1", Status: 404, Bytes: 571, Referrer: "http://localhost:8080/",
				UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36"}},
		// IPv6 client, "-" request and size (apache-test-access-darwin.log).
		{line: `::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -`,
			ts:   utc(2016, 12, 26, 14, 16, 48, 0),
			want: schemas.Web{SourceIP: "::1", Status: 408}},
		// Virtual host prefix and X-Forwarded-For list (nginx-test-test-with-host.log).
		{line: `example.com:80 "10.5.102.222, 199.96.1.1, 204.246.1.1" 10.2.1.185 - - [22/Jan/2016:13:18:29 +0000] "GET /assets/xxxx?q=100 HTTP/1.1" 200 25507 "-" "Amazon CloudFront"`,
			ts: utc(2016, 1, 22, 13, 18, 29, 0), host: "example.com",
			want: schemas.Web{SourceIP: "10.5.102.222", Method: "GET", Path: "/assets/xxxx", Query: "q=100", HTTPVersion: "1.1", Status: 200, Bytes: 25507, UserAgent: "Amazon CloudFront"}},
		{line: `lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] "GET /a.mp4 HTTP/1.1" 206 7648063 "http://lessons.example.com/" "Silk/81.2.16"`,
			ts: utc(2020, 6, 9, 19, 10, 39, 0), host: "lessons.example.com",
			want: schemas.Web{SourceIP: "192.168.0.1", Method: "GET", Path: "/a.mp4", HTTPVersion: "1.1", Status: 206, Bytes: 7648063, Referrer: "http://lessons.example.com/", UserAgent: "Silk/81.2.16"}},
		// Written for this test: escaped quotes in request and user agent,
		// nginx $request_time and Apache %D durations, [v6]:port client.
		{line: `203.0.113.9 - bob [01/Jan/2025:00:00:01 +0000] "GET /q?x=\"1\" HTTP/1.1" 200 10 "-" "curl \"quoted\" \\ agent" 0.125`,
			ts:   utc(2025, 1, 1, 0, 0, 1, 0),
			want: schemas.Web{SourceIP: "203.0.113.9", User: "bob", Method: "GET", Path: "/q", Query: `x="1"`, HTTPVersion: "1.1", Status: 200, Bytes: 10, UserAgent: `curl "quoted" \ agent`, Duration: 125000000}},
		{line: `[2001:db8::1]:443 - - [01/Jan/2025:00:00:01 +0100] "POST /login HTTP/2.0" 401 0 "https://x/" "ua" 5321`,
			ts:   utc(2024, 12, 31, 23, 0, 1, 0),
			want: schemas.Web{SourceIP: "2001:db8::1", Method: "POST", Path: "/login", HTTPVersion: "2.0", Status: 401, Referrer: "https://x/", UserAgent: "ua", Duration: 5321000}},
		// Apache ssl_request_log (apache-test-access-ssl-request.log).
		{line: `[16/Oct/2019:11:53:47 +0200] 89.160.20.156 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "GET /appl/x.php?cmd=y HTTP/1.1" -`,
			ts:   utc(2019, 10, 16, 9, 53, 47, 0),
			want: schemas.Web{SourceIP: "89.160.20.156", Method: "GET", Path: "/appl/x.php", Query: "cmd=y", HTTPVersion: "1.1"}},
	} {
		r := parseOK(t, p, tc.line)
		want := tc.want
		want.Base = schemas.Common{Timestamp: tc.ts, Host: tc.host, EventOriginal: tc.line, ParseVersion: schemas.Version}
		if !reflect.DeepEqual(r, &want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.line, r, &want)
		}
	}
	for _, bad := range []string{
		`1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 5`,         // unterminated request
		`1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" abc 5`,        // bad status
		`1.2.3.4 - - [32/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5`,        // bad day
		`Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 1.2.3.4`, // not access
	} {
		if _, err := p.Parse([]byte(bad)); err == nil || reasonOf(t, err) != ReasonNotAccess {
			t.Errorf("Parse(%q) error = %v, want %s", bad, err, ReasonNotAccess)
		}
	}
}

func TestNetfilterLines(t *testing.T) {
	p := mustNew(t, FormatNetfilter)
	for _, tc := range []struct {
		line string
		want schemas.Firewall
		host string
		ts   time.Time
	}{
		// Written for this test in ufw's format.
		{line: "Jan  4 10:00:00 gw kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= MAC=00:11 SRC=198.51.100.7 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
			host: "gw", ts: utc(2025, 1, 4, 10, 0, 0, 0),
			want: schemas.Firewall{Action: "deny", Transport: "tcp", NetworkType: "ipv4", SourceIP: "198.51.100.7", SourcePort: 40000, DestinationIP: "10.0.0.2", DestinationPort: 22, InInterface: "eth0", Bytes: 60, Packets: 1, Rule: "UFW BLOCK"}},
		{line: "Jan  4 10:00:01 gw kernel: [UFW ALLOW] IN=eth0 OUT= SRC=198.51.100.8 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=53 DPT=5353 LEN=20",
			host: "gw", ts: utc(2025, 1, 4, 10, 0, 1, 0),
			want: schemas.Firewall{Action: "allow", Transport: "udp", NetworkType: "ipv4", SourceIP: "198.51.100.8", SourcePort: 53, DestinationIP: "10.0.0.2", DestinationPort: 5353, InInterface: "eth0", Bytes: 40, Packets: 1, Rule: "UFW ALLOW"}},
		{line: "Jan  4 10:00:02 gw kernel: REJECT-IN IN=eth1 OUT=eth0 SRC=10.1.1.1 DST=10.2.2.2 LEN=84 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1",
			host: "gw", ts: utc(2025, 1, 4, 10, 0, 2, 0),
			want: schemas.Firewall{Action: "reject", Transport: "icmp", NetworkType: "ipv4", SourceIP: "10.1.1.1", DestinationIP: "10.2.2.2", InInterface: "eth1", OutInterface: "eth0", Bytes: 84, Packets: 1, Rule: "REJECT-IN"}},
		// test-iptables-raw.log (elastic/integrations).
		{line: "Jan  8 03:37:09 example-host kernel: iptables DROP_INPUT: IN=eth0 OUT= MAC=90:10:35:5a:1e:3a:90:10:9e:ec:2c:71:08:00 SRC=81.2.69.143 DST=172.16.54.114 LEN=52 TOS=0x00 PREC=0x00 TTL=115 ID=15743 DF PROTO=TCP SPT=17805 DPT=445 WINDOW=8192 RES=0x00 SYN URGP=0 ",
			host: "example-host", ts: utc(2025, 1, 8, 3, 37, 9, 0).AddDate(-1, 0, 0),
			want: schemas.Firewall{Action: "drop", Transport: "tcp", NetworkType: "ipv4", SourceIP: "81.2.69.143", SourcePort: 17805, DestinationIP: "172.16.54.114", DestinationPort: 445, InInterface: "eth0", Bytes: 52, Packets: 1, Rule: "iptables DROP_INPUT"}},
		{line: "<6>2021-03-12T14:10:18Z Hostname kernel: [wan-lan-default-D]IN=eth0 OUT= MAC=90:10:20:76:8d:20:90:10:65:29:b6:2a:08:00 SRC=67.43.156.15 DST=10.4.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=0 DF PROTO=TCP SPT=38842 DPT=443 WINDOW=2853 RES=0x00 ACK URGP=0",
			host: "Hostname", ts: utc(2021, 3, 12, 14, 10, 18, 0),
			want: schemas.Firewall{Action: "drop", Transport: "tcp", NetworkType: "ipv4", SourceIP: "67.43.156.15", SourcePort: 38842, DestinationIP: "10.4.0.5", DestinationPort: 443, InInterface: "eth0", Bytes: 52, Packets: 1, Rule: "wan-lan-default-D"}},
		{line: "Jan 22 09:05:05 ubuntu-bionic kernel: [16571.459614] IN= OUT=lo SRC=2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6 DST=2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=868225 PROTO=ICMPv6 TYPE=128 CODE=0 ID=3427 SEQ=1 ",
			host: "ubuntu-bionic", ts: utc(2024, 1, 22, 9, 5, 5, 0),
			want: schemas.Firewall{Action: "log", Transport: "ipv6-icmp", NetworkType: "ipv6", SourceIP: "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6", DestinationIP: "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6", OutInterface: "lo", Bytes: 104, Packets: 1}},
		// No host, ICMP error with an inner header whose SRC= must not win.
		{line: "Jan  8 03:37:09 DENY: IN=eth0 OUT= SRC=192.168.2.71 DST=192.168.2.83 LEN=88 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.168.2.83 DST=192.168.173.191 LEN=60 PROTO=TCP SPT=1 DPT=2 ]",
			ts:   utc(2024, 1, 8, 3, 37, 9, 0),
			want: schemas.Firewall{Action: "deny", Transport: "icmp", NetworkType: "ipv4", SourceIP: "192.168.2.71", DestinationIP: "192.168.2.83", InInterface: "eth0", Bytes: 88, Packets: 1, Rule: "DENY"}},
	} {
		r := parseOK(t, p, tc.line)
		want := tc.want
		want.Base = schemas.Common{Timestamp: tc.ts, Host: tc.host, EventOriginal: tc.line, ParseVersion: schemas.Version}
		if !reflect.DeepEqual(r, &want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.line, r, &want)
		}
	}
	// A truncated appliance fragment (test-ubiquiti.log) is quarantined.
	_, err := p.Parse([]byte("May  5 20:46:45 My-Office-Gateway user.info kernel: TTL=126 ID=15317 DF PROTO=TCP SPT=59344 DPT=443 WINDOW=8212 RES=0x00 ACK PSH URGP=0"))
	if err == nil || reasonOf(t, err) != ReasonNotNetfilter {
		t.Fatalf("fragment: %v", err)
	}
	// The syslog parser routes kernel netfilter lines to firewall too.
	s := mustNew(t, FormatSyslog)
	if r := parseOK(t, s, "Jan  4 10:00:00 gw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=2"); r.Dataset() != schemas.DatasetFirewall {
		t.Fatalf("syslog parser gave %s", r.Dataset())
	}
}

func TestEVE(t *testing.T) {
	p := mustNew(t, FormatEVE)
	lines := readLines(t, "test-eve-small.log")
	byType := map[string]schemas.Record{}
	for _, l := range lines {
		r, err := p.Parse(l)
		if err != nil {
			if reasonOf(t, err) != ReasonUnsupportedEvent {
				t.Errorf("%v: %.80s", err, l)
			}
			continue
		}
		if byType[r.Dataset()] == nil {
			byType[r.Dataset()] = r // keep the first of each
		}
	}
	ids, ok := byType["ids"].(*schemas.IDS)
	if !ok {
		t.Fatalf("no alert in test-eve-small.log")
	}
	want := &schemas.IDS{SignatureID: 2024833, Signature: "ET POLICY Observed IP Lookup Domain (l2 .io in TLS SNI)", Category: "Potential Corporate Privacy Violation",
		Severity: 1, Transport: "tcp", AppProtocol: "tls", SourceIP: "192.168.86.85", SourcePort: 55641, DestinationIP: "192.168.156.70", DestinationPort: 443,
		Action: "allowed", FlowID: 904992230150281, Interface: "en0"}
	want.Base = ids.Base
	if !reflect.DeepEqual(ids, want) || !ids.Base.Timestamp.Equal(utc(2018, 7, 5, 19, 7, 20, 910626000)) {
		t.Errorf("alert\n got %+v\nwant %+v", ids, want)
	}
	web, ok := byType["web"].(*schemas.Web)
	if !ok || web.Path != "/dd.xml" || web.Method != "GET" || web.Status != 200 || web.Base.Host != "192.168.86.28" ||
		web.UserAgent != "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36" ||
		web.HTTPVersion != "1.1" || web.SourceIP != "192.168.86.85" || web.DestinationIP != "192.168.86.28" {
		t.Errorf("http = %+v", byType["web"])
	}
	fw, ok := byType["firewall"].(*schemas.Firewall)
	if !ok || fw.Action != "flow" || fw.NetworkType != "ipv6" || fw.Transport != "udp" || fw.SourcePort != 546 || fw.Packets == 0 {
		t.Errorf("flow = %+v", byType["firewall"])
	}
	// Keys in another order, escaped strings, nested unknown values.
	line := `{"alert":{"signature":"A \"quoted\" \u00e9 \ud83d\ude00 sig","signature_id":7,"severity":2,"category":"c","action":"blocked","metadata":{"x":[1,{"y":null}]}},"src_port":1,"event_type":"alert","timestamp":"2024-02-29T23:59:59.5+0100","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","host":"sensor-a"}`
	r := parseOK(t, p, line).(*schemas.IDS)
	if r.Signature != "A \"quoted\" é 😀 sig" || r.SignatureID != 7 || r.Action != "blocked" || r.Base.Host != "sensor-a" || !r.Base.Timestamp.Equal(utc(2024, 2, 29, 22, 59, 59, 5e8)) {
		t.Errorf("reordered alert = %+v", r)
	}
	for in, reason := range map[string]string{
		`{"event_type":"alert","timestamp":"2024-01-01T00:00:00Z"`:           ReasonBadJSON,
		`{"event_type":"alert","timestamp":"2024-01-01T00:00:00Z"} trailing`: ReasonBadJSON,
		`{"timestamp":"2024-01-01T00:00:00Z"}`:                               ReasonNotEVE,
		`{"event_type":"alert","timestamp":"yesterday","alert":{}}`:          ReasonBadTimestamp,
		`{"event_type":"dns","timestamp":"2024-01-01T00:00:00Z"}`:            ReasonUnsupportedEvent,
		`[1,2]`: ReasonBadJSON,
		`{"event_type":"alert","timestamp":"2024-01-01T00:00:00Z","a":"\x"}`: ReasonBadJSON,
	} {
		if _, err := p.Parse([]byte(in)); err == nil || reasonOf(t, err) != reason {
			t.Errorf("Parse(%s) error = %v, want %s", in, err, reason)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	p := mustNew(t, FormatJSON)
	src := parseOK(t, mustNew(t, FormatSSHD), "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
	line := schemas.AppendJSON(nil, src)
	r, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, src) {
		t.Fatalf("json round trip\n got %+v\nwant %+v", r, src)
	}
	for in, reason := range map[string]string{
		`{"dataset":"auth"`:                   ReasonBadJSON,
		`{"dataset":"nope","timestamp":null}`: ReasonBadJSON,
		`{"dataset":"auth","user_name":"x"}`:  ReasonBadTimestamp,
	} {
		if _, err := p.Parse([]byte(in)); err == nil || reasonOf(t, err) != reason {
			t.Errorf("Parse(%s) = %v, want %s", in, err, reason)
		}
	}
}

func TestAutoDetects(t *testing.T) {
	p := mustNew(t, FormatAuto)
	for line, ds := range map[string]string{
		"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186":                                      "auth",
		"Jun 14 15:16:01 combo syslogd 1.4.1: restart.":                                                                      "syslog",
		`::1 - - [26/Dec/2016:16:16:29 +0200] "GET /favicon.ico HTTP/1.1" 404 209`:                                           "web",
		"Jan  8 03:37:09 DENY: IN=eth0 OUT= SRC=192.168.2.71 DST=192.168.2.83 LEN=88 PROTO=ICMP TYPE=3 CODE=3":               "firewall",
		`{"timestamp":"2018-07-05T15:07:20.910626-0400","event_type":"alert","alert":{"signature_id":1},"src_ip":"1.2.3.4"}`: "ids",
		`{"dataset":"syslog","timestamp":"2024-01-01T00:00:00Z","message":"m"}`:                                              "syslog",
	} {
		r := parseOK(t, p, line)
		if r.Dataset() != ds {
			t.Errorf("auto(%q) = %s, want %s", line, r.Dataset(), ds)
		}
	}
	if got := Detect([]byte(`  {"event_type":"flow"}`)); got != FormatEVE {
		t.Errorf("Detect = %s", got)
	}
}

func TestErrorsAndQuarantine(t *testing.T) {
	p, err := New(FormatSSHD, Options{Reference: ref, MaxLineBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	for in, reason := range map[string]string{
		"":                       ReasonEmpty,
		"  \t\r\n":               ReasonEmpty,
		strings.Repeat("x", 101): ReasonLineTooLong,
		"Dec 10 06:55:46 h sshd[1]: \xff\xfe bad": ReasonInvalidUTF8,
		"hello world":                       ReasonNotSyslog,
		"Dec 32 06:55:46 h sshd[1]: x":      ReasonBadTimestamp,
		"Dec 10 25:55:46 h sshd[1]: x":      ReasonBadTimestamp,
		"2024-13-01T00:00:00Z h sshd[1]: x": ReasonBadTimestamp,
		"<999999>Dec 10 06:55:46 h x: y":    ReasonNotSyslog,
		"Dec 10 06:55:46":                   ReasonNotSyslog,
	} {
		_, err := p.Parse([]byte(in))
		if err == nil {
			t.Errorf("Parse(%q) succeeded", in)
			continue
		}
		if got := reasonOf(t, err); got != reason {
			t.Errorf("Parse(%q) reason %s, want %s (%v)", in, got, reason, err)
		}
		q := Quarantine([]byte(in), p.Format(), err)
		if string(q.Raw) != in || q.Reason != reason || q.SourceFormat != FormatSSHD || q.Message != err.Error() || q.Base.Timestamp.IsZero() {
			t.Errorf("Quarantine(%q) = %+v", in, q)
		}
	}
	if _, err := New("nope", Options{}); err == nil || reasonOf(t, err) != ReasonUnknownFormat {
		t.Fatalf("New(nope) = %v", err)
	}
	// A trailing newline is tolerated and not part of event_original.
	r, err := p.Parse([]byte("Dec 10 06:55:46 h x: y\r\n"))
	if err != nil || r.Common().EventOriginal != "Dec 10 06:55:46 h x: y" {
		t.Fatalf("CRLF line: %v %+v", err, r)
	}
}
