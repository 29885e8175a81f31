package gen

import (
	"net/netip"
	"strings"
	"time"
)

// lineKind is the shape of one line.
type lineKind uint8

const (
	lkNone lineKind = iota
	// auth (sshd)
	lkFailed           // Failed password for U from IP port P ssh2
	lkFailedInvalid    // Failed password for invalid user U from IP port P ssh2
	lkInvalidUser      // Invalid user U from IP port P
	lkAcceptedPassword // Accepted password for U from IP port P ssh2
	lkAcceptedKey      // Accepted publickey for U from IP port P ssh2: RSA SHA256:...
	lkConnClosed       // Connection closed by IP port P [preauth]
	lkSessOpened       // pam_unix(sshd:session): session opened for user U by (uid=0)
	lkSessClosed       // pam_unix(sshd:session): session closed for user U
	lkRecvDisconnect   // Received disconnect from IP port P:11: disconnected by user
	lkDisconnected     // Disconnected from user U IP port P
	// firewall (netfilter/ufw)
	lkFwAllow
	lkFwBlock
	// ids (EVE)
	lkAlert
	lkFlow
	// web (access)
	lkWeb
)

func (k lineKind) dataset() Dataset {
	switch {
	case k <= lkDisconnected:
		return Auth
	case k <= lkFwBlock:
		return Firewall
	case k <= lkFlow:
		return IDS
	}
	return Web
}

// spec is everything needed to write one line.
type spec struct {
	kind     lineKind
	slot, ts int64
	late     bool
	inst     *instance

	src, dst     uint32
	sport, dport uint16
	udp          bool
	user         []byte
	host         string
	pid          int
	fp           uint64 // key fingerprint seed

	// firewall
	length, ttl, ipid int

	// web
	method, path, query, ua, ref string
	status, bytes, durMs         int

	// ids
	sig    *signature
	flowID uint64
}

func (g *Generator) render(s *spec, l *Line) {
	d := s.kind.dataset()
	*l = Line{Dataset: d, Topic: g.o.Topics[d]}
	m := &l.Meaning
	m.SourceIP = addr(s.src)
	m.SourcePort = s.sport
	m.Late = s.late
	if s.inst != nil {
		m.Attack = s.inst.kind
		m.Instance = s.inst.id
	}
	sec := floorDiv(s.ts, int64(time.Second))
	sub := s.ts - sec*int64(time.Second)
	g.tc.set(sec)
	b := g.val[:0]
	switch d {
	case Auth:
		b = g.renderAuth(b, s, sub, m)
	case Firewall:
		b = g.renderFirewall(b, s, sub, m)
	case IDS:
		b = g.renderIDS(b, s, sub, m)
	case Web:
		b = g.renderWeb(b, s, m)
	}
	g.val = b
	// Set after the last append: appends may move the buffer.
	if d == Web {
		n := len(s.path)
		if q := strings.IndexByte(s.path, '?'); q >= 0 {
			n = q // a scanner's path may carry its own query
		}
		m.Path = g.val[g.pathAt : g.pathAt+n]
	}
	if d == Auth && g.userAt >= 0 {
		m.User = g.val[g.userAt : g.userAt+len(s.user)]
	}
	g.key = appendIP(g.key[:0], s.src)
	l.Key = g.key
	l.Value = g.val
	l.EventTime = time.Unix(0, s.ts).UTC()
}

func (g *Generator) syslogHeader(b []byte, pri string, sub int64, host, app string, pid int) []byte {
	b = append(b, pri...)
	b = append(b, '1', ' ')
	b = appendISO(b, &g.tc)
	b = append(b, '.')
	b = appendFrac(b, int(sub/int64(time.Millisecond)), 3)
	b = append(b, 'Z', ' ')
	b = append(b, host...)
	b = append(b, ' ')
	b = append(b, app...)
	b = append(b, ' ')
	if pid > 0 {
		b = appendInt(b, pid)
	} else {
		b = append(b, '-')
	}
	return append(b, " - - "...)
}

func (g *Generator) renderAuth(b []byte, s *spec, sub int64, m *Meaning) []byte {
	pri := "<38>" // auth.info
	if s.kind == lkSessOpened || s.kind == lkSessClosed {
		pri = "<86>" // authpriv.info, where pam_unix logs
	}
	b = g.syslogHeader(b, pri, sub, s.host, "sshd", s.pid)
	from := func(b []byte) []byte {
		b = append(b, " from "...)
		b = appendIP(b, s.src)
		b = append(b, " port "...)
		return appendInt(b, int(s.sport))
	}
	g.userAt = -1
	userAt := func(b []byte) []byte {
		g.userAt = len(b) - len(s.user)
		return b
	}
	switch s.kind {
	case lkFailed:
		b = append(b, "Failed password for "...)
		b = userAt(append(b, s.user...))
		b = append(from(b), " ssh2"...)
		m.Action, m.Outcome, m.Method = ActionLogin, OutcomeFailure, "password"
	case lkFailedInvalid:
		b = append(b, "Failed password for invalid user "...)
		b = userAt(append(b, s.user...))
		b = append(from(b), " ssh2"...)
		m.Action, m.Outcome, m.Method = ActionLogin, OutcomeFailure, "password"
	case lkInvalidUser:
		b = append(b, "Invalid user "...)
		b = userAt(append(b, s.user...))
		b = from(b)
		m.Action, m.Outcome = ActionInvalidUser, OutcomeFailure
	case lkAcceptedPassword:
		b = append(b, "Accepted password for "...)
		b = userAt(append(b, s.user...))
		b = append(from(b), " ssh2"...)
		m.Action, m.Outcome, m.Method = ActionLogin, OutcomeSuccess, "password"
	case lkAcceptedKey:
		b = append(b, "Accepted publickey for "...)
		b = userAt(append(b, s.user...))
		b = append(from(b), " ssh2: RSA SHA256:"...)
		b = appendFingerprint(b, s.fp)
		m.Action, m.Outcome, m.Method = ActionLogin, OutcomeSuccess, "publickey"
	case lkConnClosed:
		b = append(b, "Connection closed by "...)
		b = appendIP(b, s.src)
		b = append(b, " port "...)
		b = appendInt(b, int(s.sport))
		b = append(b, " [preauth]"...)
		m.Action = ActionConnectionClosed
	case lkSessOpened:
		b = append(b, "pam_unix(sshd:session): session opened for user "...)
		b = userAt(append(b, s.user...))
		b = append(b, " by (uid=0)"...)
		m.Action, m.Outcome, m.SourcePort, m.SourceIP = ActionSessionOpened, OutcomeSuccess, 0, netip.Addr{}
	case lkSessClosed:
		b = append(b, "pam_unix(sshd:session): session closed for user "...)
		b = userAt(append(b, s.user...))
		m.Action, m.Outcome, m.SourcePort, m.SourceIP = ActionSessionClosed, OutcomeSuccess, 0, netip.Addr{}
	case lkRecvDisconnect:
		b = append(b, "Received disconnect from "...)
		b = appendIP(b, s.src)
		b = append(b, " port "...)
		b = appendInt(b, int(s.sport))
		b = append(b, ":11: disconnected by user"...)
		m.Action = ActionDisconnect
	case lkDisconnected:
		b = append(b, "Disconnected from user "...)
		b = userAt(append(b, s.user...))
		b = append(b, ' ')
		b = appendIP(b, s.src)
		b = append(b, " port "...)
		b = appendInt(b, int(s.sport))
		m.Action = ActionDisconnected
	}
	return b
}

// fwMAC is the MAC= field: the firewall's interface, the upstream router,
// and the IPv4 ethertype.
const fwMAC = "52:54:00:3a:7c:01:00:1c:73:0f:22:e1:08:00"

func (g *Generator) renderFirewall(b []byte, s *spec, sub int64, m *Meaning) []byte {
	b = g.syslogHeader(b, "<4>", sub, s.host, "kernel", 0)
	if s.kind == lkFwBlock {
		b = append(b, "[UFW BLOCK] IN=eth0 OUT= MAC="...)
		m.Action = "deny"
	} else {
		b = append(b, "[UFW ALLOW] IN=eth0 OUT= MAC="...)
		m.Action = "allow"
	}
	b = append(b, fwMAC...)
	b = append(b, " SRC="...)
	b = appendIP(b, s.src)
	b = append(b, " DST="...)
	b = appendIP(b, s.dst)
	b = append(b, " LEN="...)
	b = appendInt(b, s.length)
	b = append(b, " TOS=0x00 PREC=0x00 TTL="...)
	b = appendInt(b, s.ttl)
	b = append(b, " ID="...)
	b = appendInt(b, s.ipid)
	if s.udp {
		b = append(b, " PROTO=UDP SPT="...)
		b = appendInt(b, int(s.sport))
		b = append(b, " DPT="...)
		b = appendInt(b, int(s.dport))
		b = append(b, " LEN="...)
		b = appendInt(b, s.length-20)
		m.Proto = "UDP"
	} else {
		b = append(b, " DF PROTO=TCP SPT="...)
		b = appendInt(b, int(s.sport))
		b = append(b, " DPT="...)
		b = appendInt(b, int(s.dport))
		b = append(b, " WINDOW="...)
		b = appendInt(b, 29200+int(s.sport%8)*1024)
		b = append(b, " RES=0x00 SYN URGP=0"...)
		m.Proto = "TCP"
	}
	m.DestIP, m.DestPort = addr(s.dst), s.dport
	return b
}

func (g *Generator) appendEVETime(b []byte, c *civil, sub int64) []byte {
	b = appendISO(b, c)
	b = append(b, '.')
	b = appendFrac(b, int(sub/int64(time.Microsecond)), 6)
	return append(b, "+0000"...)
}

func (g *Generator) renderIDS(b []byte, s *spec, sub int64, m *Meaning) []byte {
	b = append(b, `{"timestamp":"`...)
	b = g.appendEVETime(b, &g.tc, sub)
	b = append(b, `","flow_id":`...)
	b = appendInt(b, int(s.flowID))
	b = append(b, `,"in_iface":"eth0","event_type":"`...)
	switch s.kind {
	case lkAlert:
		b = append(b, "alert"...)
		m.Action = "alert"
	default:
		b = append(b, "flow"...)
		m.Action = "flow"
	}
	b = append(b, `","src_ip":"`...)
	b = appendIP(b, s.src)
	b = append(b, `","src_port":`...)
	b = appendInt(b, int(s.sport))
	b = append(b, `,"dest_ip":"`...)
	b = appendIP(b, s.dst)
	b = append(b, `","dest_port":`...)
	b = appendInt(b, int(s.dport))
	b = append(b, `,"proto":"TCP"`...)
	m.Proto = "TCP"
	m.DestIP, m.DestPort = addr(s.dst), s.dport
	// Flow start: a few hundred milliseconds before the record.
	startNs := s.ts - int64(50+s.flowID%900)*int64(time.Millisecond)
	ssec := floorDiv(startNs, int64(time.Second))
	g.tc2.set(ssec)
	switch s.kind {
	case lkAlert:
		sig := s.sig
		m.SignatureID = sig.id
		b = append(b, `,"alert":{"action":"allowed","gid":1,"signature_id":`...)
		b = appendInt(b, sig.id)
		b = append(b, `,"rev":`...)
		b = appendInt(b, sig.rev)
		b = append(b, `,"signature":"`...)
		b = append(b, sig.name...)
		b = append(b, `","category":"`...)
		b = append(b, sig.category...)
		b = append(b, `","severity":`...)
		b = appendInt(b, sig.severity)
		b = append(b, `},"flow":{"pkts_toserver":`...)
		b = appendInt(b, 1+int(s.flowID%4))
		b = append(b, `,"pkts_toclient":`...)
		b = appendInt(b, int(s.flowID%3))
		b = append(b, `,"bytes_toserver":`...)
		b = appendInt(b, 60+int(s.flowID%400))
		b = append(b, `,"bytes_toclient":`...)
		b = appendInt(b, int(s.flowID%3)*60)
		b = append(b, `,"start":"`...)
		b = g.appendEVETime(b, &g.tc2, startNs-ssec*int64(time.Second))
		b = append(b, `"}}`...)
	default:
		b = append(b, `,"app_proto":"tls","flow":{"pkts_toserver":`...)
		b = appendInt(b, 8+int(s.flowID%40))
		b = append(b, `,"pkts_toclient":`...)
		b = appendInt(b, 6+int(s.flowID%60))
		b = append(b, `,"bytes_toserver":`...)
		b = appendInt(b, 1200+int(s.flowID%9000))
		b = append(b, `,"bytes_toclient":`...)
		b = appendInt(b, 4000+int(s.flowID%90000))
		b = append(b, `,"start":"`...)
		b = g.appendEVETime(b, &g.tc2, startNs-ssec*int64(time.Second))
		b = append(b, `","end":"`...)
		b = g.appendEVETime(b, &g.tc, sub)
		b = append(b, `","age":0,"state":"closed","reason":"timeout","alerted":false}}`...)
	}
	return b
}

func (g *Generator) renderWeb(b []byte, s *spec, m *Meaning) []byte {
	b = appendIP(b, s.src)
	b = append(b, " - - ["...)
	b = appendCLF(b, &g.tc)
	b = append(b, `] "`...)
	b = append(b, s.method...)
	b = append(b, ' ')
	g.pathAt = len(b)
	b = append(b, s.path...)
	if s.query != "" {
		b = append(b, '?')
		b = append(b, s.query...)
		b = appendInt(b, int(s.flowID%10000))
	}
	b = append(b, ` HTTP/1.1" `...)
	b = appendInt(b, s.status)
	b = append(b, ' ')
	b = appendInt(b, s.bytes)
	b = append(b, ` "`...)
	b = append(b, s.ref...)
	b = append(b, `" "`...)
	b = append(b, s.ua...)
	b = append(b, `" `...)
	b = appendInt(b, s.durMs/1000)
	b = append(b, '.')
	b = appendFrac(b, s.durMs%1000, 3)
	m.Method, m.Status, m.Duration = s.method, s.status, time.Duration(s.durMs)*time.Millisecond
	return b
}
