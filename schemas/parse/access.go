package parse

import (
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// accessParser parses Apache and Nginx access logs: Common and Combined
// Log Format, an optional leading virtual host ("%v %h", "$host
// $remote_addr", also with ":port"), X-Forwarded-For style client lists,
// extra trailing fields and an optional trailing request duration (a
// decimal number of seconds, as nginx $request_time, or an integer number
// of microseconds, as Apache %D), and Apache's ssl_request_log.
type accessParser struct{ c *config }

func (p *accessParser) Format() string { return p.c.format }

func (p *accessParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	w, err := p.c.parseAccess(s)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// findCLFTime finds "[dd/Mon/yyyy:HH:MM:SS +zzzz]" at the start of s or
// after a space and returns its start index and time.
func findCLFTime(s string) (int, time.Time, bool) {
	for i := 0; ; {
		j := strings.IndexByte(s[i:], '[')
		if j < 0 {
			return -1, time.Time{}, false
		}
		j += i
		if j == 0 || s[j-1] == ' ' {
			if t, ok := parseCLFTime(s[j:]); ok {
				return j, t, true
			}
		}
		i = j + 1
	}
}

// parseCLFTime parses "[10/Oct/2000:13:55:36 -0700]".
func parseCLFTime(s string) (time.Time, bool) {
	if len(s) < 28 || s[0] != '[' || s[3] != '/' || s[7] != '/' || s[12] != ':' || s[15] != ':' || s[18] != ':' || s[21] != ' ' || s[27] != ']' {
		return time.Time{}, false
	}
	d, ok1 := digits2(s, 1, false)
	mo, ok2 := month(s[4:7])
	y, ok3 := digitsN(s, 8, 4)
	h, ok4 := digits2(s, 13, false)
	mi, ok5 := digits2(s, 16, false)
	sec, ok6 := digits2(s, 19, false)
	oh, ok7 := digits2(s, 23, false)
	om, ok8 := digits2(s, 25, false)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8) || !validYear(y) || d < 1 || d > daysIn(mo, y) || !validClock(h, mi, sec) || om > 59 {
		return time.Time{}, false
	}
	off := time.Duration(oh*60+om) * time.Minute
	switch s[22] {
	case '-':
		off = -off
	case '+':
	default:
		return time.Time{}, false
	}
	return time.Date(y, mo, d, h, mi, sec, 0, time.UTC).Add(-off), true
}

func (c *config) parseAccess(s string) (*schemas.Web, error) {
	at, ts, ok := findCLFTime(s)
	if !ok {
		return nil, c.err(ReasonNotAccess, "no [dd/Mon/yyyy:HH:MM:SS +zzzz] timestamp")
	}
	w := &schemas.Web{}
	setCommon(&w.Base, ts, "", s)
	rest := s[at+28:]
	if at == 0 {
		// ssl_request_log: [time] client protocol cipher "request" bytes
		if !c.sslRequest(w, rest) {
			return nil, c.err(ReasonNotAccess, "bad ssl_request_log line")
		}
		return w, nil
	}
	if !c.accessHead(w, s[:at-1]) {
		return nil, c.err(ReasonNotAccess, "expected [vhost] client ident user before the timestamp")
	}
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return nil, c.err(ReasonNotAccess, "no request")
	}
	req, rest, ok := quoted(rest)
	if !ok {
		return nil, c.err(ReasonNotAccess, "unterminated request")
	}
	splitRequest(w, req)
	// status
	rest = strings.TrimLeft(rest, " ")
	var tok string
	tok, rest = cutWord(rest)
	st, ok := atoiPos(tok)
	if !ok || st < 100 || st > 999 {
		return nil, c.err(ReasonNotAccess, "bad status")
	}
	w.Status = uint16(st)
	// bytes: a number or "-"; Apache may log a second size column.
	tok, rest = cutWord(rest)
	switch {
	case tok == "-":
	case tok == "":
		return nil, c.err(ReasonNotAccess, "no response size")
	default:
		n, ok := atoiPos(tok)
		if !ok {
			return nil, c.err(ReasonNotAccess, "bad response size")
		}
		w.Bytes = n
	}
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		var extra string
		extra, rest = cutWord(rest)
		if rest == "" {
			// A lone trailing number after the size is the duration.
			w.Duration = duration(extra)
			return w, nil
		}
	}
	if len(rest) > 0 && rest[0] == '"' {
		var ref, ua string
		ref, rest, ok = quoted(rest)
		if !ok {
			return nil, c.err(ReasonNotAccess, "unterminated referrer")
		}
		rest = strings.TrimLeft(rest, " ")
		if len(rest) > 0 && rest[0] == '"' {
			ua, rest, ok = quoted(rest)
			if !ok {
				return nil, c.err(ReasonNotAccess, "unterminated user agent")
			}
		}
		w.Referrer, w.UserAgent = dash(ref), dash(ua)
	}
	// Extra fields (X-Forwarded-For, upstream times, ...) stay in
	// event_original; a trailing number is the request duration.
	rest = strings.TrimRight(rest, " ")
	if i := strings.LastIndexByte(rest, ' '); rest != "" {
		last := rest[i+1:]
		if last != "" && last[0] >= '0' && last[0] <= '9' {
			w.Duration = duration(last)
		}
	}
	return w, nil
}

// accessHead parses "[vhost ]client[, client...] ident authuser".
func (c *config) accessHead(w *schemas.Web, s string) bool {
	s = strings.TrimRight(s, " ")
	// authuser and ident are the last two words.
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return false
	}
	w.User = dash(s[i+1:])
	s = s[:i]
	i = strings.LastIndexByte(s, ' ')
	if i < 0 {
		return false
	}
	s = strings.TrimRight(s[:i], " ") // drop ident (RFC 1413, never trusted)
	if s == "" {
		return false
	}
	first, rest := cutWord(s)
	client := first
	if rest != "" {
		// A virtual host precedes the client (list).
		w.Base.Host = stripPort(first)
		rest = strings.TrimLeft(rest, " ")
		if rest[0] == '"' {
			if q, _, ok := quoted(rest); ok {
				rest = q
			}
		}
		client, _ = cutWord(rest)
	}
	client = strings.TrimSuffix(client, ",")
	if k := strings.IndexByte(client, ','); k >= 0 {
		client = client[:k]
	}
	w.SourceIP = stripPort(client)
	return w.SourceIP != ""
}

// stripPort removes ":port" from "host:port" and "[v6]:port", leaving bare
// IPv6 addresses alone.
func stripPort(s string) string {
	if len(s) > 0 && s[0] == '[' {
		if end := strings.IndexByte(s, ']'); end > 0 {
			return s[1:end]
		}
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || strings.IndexByte(s[i+1:], ':') >= 0 {
		return s
	}
	if _, ok := port(s[i+1:]); ok {
		return s[:i]
	}
	return s
}

// sslRequest parses the rest of an Apache ssl_request_log line.
func (c *config) sslRequest(w *schemas.Web, s string) bool {
	s = strings.TrimLeft(s, " ")
	client, s := cutWord(s)
	_, s = cutWord(s) // TLS protocol
	_, s = cutWord(s) // cipher
	if client == "" || len(s) == 0 || s[0] != '"' {
		return false
	}
	req, rest, ok := quoted(s)
	if !ok {
		return false
	}
	w.SourceIP = client
	splitRequest(w, req)
	size, _ := cutWord(strings.TrimLeft(rest, " "))
	if n, ok := atoiPos(size); ok {
		w.Bytes = n
	}
	return true
}

// splitRequest splits "METHOD TARGET PROTOCOL" into the record. Anything
// else (a bare "-", probes, TLS bytes) leaves the fields empty; the raw
// line keeps it.
func splitRequest(w *schemas.Web, req string) {
	method, rest := cutWord(req)
	target, proto := cutWord(rest)
	if method == "" || method == "-" || target == "" {
		return
	}
	w.Method = method
	if i := strings.IndexByte(target, '?'); i >= 0 {
		w.Path, w.Query = target[:i], target[i+1:]
	} else {
		w.Path = target
	}
	if v, ok := strings.CutPrefix(proto, "HTTP/"); ok {
		w.HTTPVersion = v
	}
}

// quoted reads a double-quoted field at the start of s in which \" and \\
// are escapes (as Apache and Nginx write them). It returns the unescaped
// value (allocating only when an escape is present) and the rest after the
// closing quote.
func quoted(s string) (val, rest string, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", s, false
	}
	escaped := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			val = s[1:i]
			if escaped {
				val = unescapeQuoted(val)
			}
			return val, s[i+1:], true
		}
	}
	return "", s, false
}

// unescapeQuoted turns \" into " and \\ into \; other escapes such as
// \x16 stay as written so the value remains valid UTF-8.
func unescapeQuoted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// duration converts a trailing duration field to nanoseconds: decimal
// seconds ("0.123", nginx $request_time) or integer microseconds (Apache
// %D).
func duration(s string) int64 {
	if whole, frac, ok := strings.Cut(s, "."); ok {
		sec, ok1 := atoiPos(whole)
		if !ok1 || len(frac) == 0 || len(frac) > 9 {
			return 0
		}
		f, ok2 := atoiPos(frac)
		if !ok2 {
			return 0
		}
		for i := len(frac); i < 9; i++ {
			f *= 10
		}
		return sec*1e9 + f
	}
	us, ok := atoiPos(s)
	if !ok || us > 1<<40 {
		return 0
	}
	return us * 1000
}
