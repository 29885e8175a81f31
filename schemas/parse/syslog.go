package parse

import (
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// header is a parsed syslog header (RFC 3164 or RFC 5424).
type header struct {
	ts      time.Time
	host    string
	program string // tag without pid, e.g. "sshd"
	module  string // old PAM tags: "pam_unix" in "sshd(pam_unix)[12]:"
	tag     string // program with module, as logged: "sshd(pam_unix)"
	body    string // everything after the host: tag and message
	pid     int64
	msg     string
}

// parseHeader parses the syslog header of s. It accepts an optional <PRI>,
// RFC 5424 ("<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG"), BSD
// timestamps "Mmm dd HH:MM:SS" (with an optional year or fraction) whose
// year is inferred from c's reference time, and ISO 8601 timestamps. A
// missing host ("Jan  8 03:37:09 DENY: msg") leaves host empty.
func (c *config) parseHeader(s string) (header, error) {
	var h header
	if len(s) > 0 && s[0] == '<' {
		end := strings.IndexByte(s, '>')
		if end < 2 || end > 4 {
			return h, c.err(ReasonNotSyslog, "bad PRI")
		}
		if _, ok := atoiPos(s[1:end]); !ok {
			return h, c.err(ReasonNotSyslog, "bad PRI")
		}
		s = s[end+1:]
		if len(s) > 2 && s[0] == '1' && s[1] == ' ' {
			return c.parse5424(s[2:])
		}
	}
	var n int
	var ok bool
	if len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
		h.ts, n, ok = parseISO(s, c.loc)
		if !ok {
			return h, c.err(ReasonBadTimestamp, "bad ISO 8601 timestamp")
		}
	} else {
		h.ts, n, ok = c.parseBSD(s)
		if !ok {
			if len(s) >= 3 {
				if _, isMonth := month(s); isMonth {
					return h, c.err(ReasonBadTimestamp, "bad BSD timestamp")
				}
			}
			return h, c.err(ReasonNotSyslog, "no timestamp")
		}
	}
	s = s[n:]
	if len(s) == 0 || s[0] != ' ' {
		return h, c.err(ReasonNotSyslog, "no space after the timestamp")
	}
	s = strings.TrimLeft(s, " ")
	word, rest := cutWord(s)
	if word == "" {
		return h, c.err(ReasonNotSyslog, "no host")
	}
	if word[len(word)-1] != ':' {
		h.host = word
		s = rest
	}
	h.body = s
	c.parseTag(&h, s)
	return h, nil
}

// parseTag splits "prog(module)[pid]: msg" (any part optional) into h.
func (c *config) parseTag(h *header, s string) {
	i := 0
	for i < len(s) {
		ch := s[i]
		if ch == '[' || ch == ':' || ch == ' ' {
			break
		}
		i++
	}
	tag := s[:i]
	h.tag = tag
	if j := strings.IndexByte(tag, '('); j > 0 && tag[len(tag)-1] == ')' {
		h.module = tag[j+1 : len(tag)-1]
		tag = tag[:j]
	}
	h.program = tag
	s = s[i:]
	if len(s) > 0 && s[0] == '[' {
		if end := strings.IndexByte(s, ']'); end > 0 {
			if pid, ok := atoiPos(s[1:end]); ok {
				h.pid = pid
			}
			s = s[end+1:]
		}
	}
	if len(s) > 0 && s[0] == ':' {
		s = s[1:]
	}
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	h.msg = s
}

// parseBSD parses "Mmm dd HH:MM:SS" with optional ".frac" and optional
// " YYYY", choosing the year from the reference time when absent.
func (c *config) parseBSD(s string) (time.Time, int, bool) {
	if len(s) < 15 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' {
		return time.Time{}, 0, false
	}
	mo, ok := month(s)
	if !ok {
		return time.Time{}, 0, false
	}
	d, ok1 := digits2(s, 4, true)
	h, ok2 := digits2(s, 7, false)
	mi, ok3 := digits2(s, 10, false)
	sec, ok4 := digits2(s, 13, false)
	if !(ok1 && ok2 && ok3 && ok4) || d < 1 || d > 31 || !validClock(h, mi, sec) {
		return time.Time{}, 0, false
	}
	n := 15
	nsec := 0
	if n < len(s) && s[n] == '.' {
		n++
		scale := 100000000
		start := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			if scale > 0 {
				nsec += int(s[n]-'0') * scale
				scale /= 10
			}
			n++
		}
		if n == start {
			return time.Time{}, 0, false
		}
	}
	year := 0
	if n+5 <= len(s) && s[n] == ' ' {
		if y, ok := digitsN(s, n+1, 4); ok && (n+5 == len(s) || s[n+5] == ' ') {
			year = y
			n += 5
		}
	}
	if year != 0 {
		if !validYear(year) || d > daysIn(mo, year) {
			return time.Time{}, 0, false
		}
		return time.Date(year, mo, d, h, mi, sec, nsec, c.loc).UTC(), n, true
	}
	ref := c.now()
	year = ref.In(c.loc).Year()
	if mo == time.February && d == 29 && daysIn(mo, year) == 28 {
		year-- // only a leap year has Feb 29; try the one before
		if daysIn(mo, year) == 28 {
			return time.Time{}, 0, false
		}
	}
	t := time.Date(year, mo, d, h, mi, sec, nsec, c.loc)
	// A line more than two days "ahead" of the reference is from last
	// year: a Dec 31 line read on Jan 1. One almost a year behind is from
	// next year: a Jan 1 line read a few seconds early.
	switch {
	case t.After(ref.Add(48 * time.Hour)):
		year--
	case t.Before(ref.Add(-363 * 24 * time.Hour)):
		year++
	default:
		return t.UTC(), n, true
	}
	if d > daysIn(mo, year) {
		return time.Time{}, 0, false
	}
	return time.Date(year, mo, d, h, mi, sec, nsec, c.loc).UTC(), n, true
}

// parse5424 parses the rest of an RFC 5424 line after "<PRI>1 ".
func (c *config) parse5424(s string) (header, error) {
	var h header
	ts, rest := cutWord(s)
	if ts == "-" {
		h.ts = c.now().UTC()
	} else {
		t, n, ok := parseISO(ts, c.loc)
		if !ok || n != len(ts) {
			return h, c.err(ReasonBadTimestamp, "bad RFC 5424 timestamp")
		}
		h.ts = t
	}
	var host, app, procid, msgid string
	host, rest = cutWord(rest)
	app, rest = cutWord(rest)
	procid, rest = cutWord(rest)
	msgid, rest = cutWord(rest)
	if host == "" || app == "" || procid == "" || msgid == "" {
		return h, c.err(ReasonNotSyslog, "short RFC 5424 header")
	}
	if host != "-" {
		h.host = host
	}
	if app != "-" {
		h.program = app
	}
	if pid, ok := atoiPos(procid); ok {
		h.pid = pid
	}
	// Structured data: "-" or one or more [id k="v" ...] elements, where
	// values may contain escaped \] and \".
	switch {
	case strings.HasPrefix(rest, "-"):
		rest = rest[1:]
	case strings.HasPrefix(rest, "["):
		i := 0
		for i < len(rest) && rest[i] == '[' {
			inQuote := false
			i++
			for ; i < len(rest); i++ {
				ch := rest[i]
				if ch == '\\' {
					i++
					continue
				}
				if ch == '"' {
					inQuote = !inQuote
				} else if ch == ']' && !inQuote {
					i++
					break
				}
			}
		}
		rest = rest[i:]
	default:
		return h, c.err(ReasonNotSyslog, "bad RFC 5424 structured data")
	}
	rest = strings.TrimPrefix(rest, " ")
	rest = strings.TrimPrefix(rest, "\ufeff")
	h.msg = rest
	h.body = rest
	return h, nil
}

// syslogParser parses syslog lines (formats "syslog" and "sshd"): sshd and
// PAM messages become auth records, kernel netfilter lines firewall
// records, every other valid line a syslog record.
type syslogParser struct{ c *config }

func (p *syslogParser) Format() string { return p.c.format }

func (p *syslogParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	h, err := p.c.parseHeader(s)
	if err != nil {
		return nil, err
	}
	return p.c.dispatch(&h, s, nil), nil
}

// parseInto is Parse filling sc's records, its strings aliasing line.
func (p *syslogParser) parseInto(line []byte, sc *Scratch) (schemas.Record, error) {
	s, err := p.c.prepareAlias(line)
	if err != nil {
		return nil, err
	}
	h, err := p.c.parseHeader(s)
	if err != nil {
		return nil, err
	}
	return p.c.dispatch(&h, s, sc), nil
}

// dispatch builds the record for a parsed syslog line, in sc's records
// when sc is not nil.
func (c *config) dispatch(h *header, raw string, sc *Scratch) schemas.Record {
	var dst *schemas.Auth
	if sc != nil {
		dst = &sc.auth
	}
	if a := classifyAuth(h, dst); a != nil {
		setCommon(&a.Base, h.ts, h.host, raw)
		return a
	}
	if strings.Contains(h.msg, "IN=") && strings.Contains(h.msg, "SRC=") {
		if fw, ok := parseNetfilterBody(h.msg); ok {
			setCommon(&fw.Base, h.ts, h.host, raw)
			return fw
		}
	}
	var r *schemas.Syslog
	if sc != nil {
		sc.syslog = schemas.Syslog{Program: h.tag, PID: h.pid, Message: h.msg}
		r = &sc.syslog
	} else {
		r = &schemas.Syslog{Program: h.tag, PID: h.pid, Message: h.msg}
	}
	if r.Program == "" {
		r.Program = h.program // RFC 5424 APP-NAME
	}
	setCommon(&r.Base, h.ts, h.host, raw)
	return r
}
