package parse

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/lambdalog/lambdalog/schemas"
)

// eveParser parses Suricata EVE JSON with a hand-written scanner that reads
// only the keys it maps and skips every other value without decoding it.
//
// Mapping: event_type "alert" -> ids, "http" -> web, "flow" and "netflow"
// -> firewall with event_action "flow" (bytes and packets summed over both
// directions). Other event types (dns, tls, ssh, fileinfo, stats, ...)
// have no dataset yet and are rejected with ReasonUnsupportedEvent, so
// they land in the quarantine intact and can be replayed when one exists.
type eveParser struct{ c *config }

func (p *eveParser) Format() string { return p.c.format }

// eveEvent collects the fields read from one EVE record.
type eveEvent struct {
	ts                    string
	eventType             string
	srcIP, destIP         string
	srcPort, destPort     int64
	proto, appProto       string
	iface, host           string
	flowID                int64
	alert, http, flow     int // offsets of the nested objects, -1 if absent
	sawSrcPort, sawDstPrt bool
}

func (p *eveParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	return p.c.parseEVE(s)
}

func (c *config) parseEVE(s string) (schemas.Record, error) {
	ev := eveEvent{alert: -1, http: -1, flow: -1}
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, c.err(ReasonBadJSON, "not a JSON object")
	}
	end, ok := walkObject(s, i, func(key string, v int) (int, bool) {
		switch key {
		case "timestamp":
			return readStringInto(s, v, &ev.ts)
		case "event_type":
			return readStringInto(s, v, &ev.eventType)
		case "src_ip":
			return readStringInto(s, v, &ev.srcIP)
		case "dest_ip":
			return readStringInto(s, v, &ev.destIP)
		case "proto":
			return readStringInto(s, v, &ev.proto)
		case "app_proto":
			return readStringInto(s, v, &ev.appProto)
		case "in_iface":
			return readStringInto(s, v, &ev.iface)
		case "host":
			return readStringInto(s, v, &ev.host)
		case "src_port":
			return readIntInto(s, v, &ev.srcPort)
		case "dest_port":
			return readIntInto(s, v, &ev.destPort)
		case "flow_id":
			return readIntInto(s, v, &ev.flowID)
		case "alert":
			ev.alert = v
		case "http":
			ev.http = v
		case "flow":
			ev.flow = v
		}
		return skipValue(s, v, 0)
	})
	if !ok {
		return nil, c.err(ReasonBadJSON, "malformed JSON")
	}
	if skipWS(s, end) != len(s) {
		return nil, c.err(ReasonBadJSON, "data after the JSON object")
	}
	if ev.eventType == "" {
		return nil, c.err(ReasonNotEVE, "no event_type")
	}
	ts, n, ok := parseISO(ev.ts, c.loc)
	if !ok || n != len(ev.ts) {
		return nil, c.err(ReasonBadTimestamp, "bad EVE timestamp")
	}
	sp, dp := uint16(0), uint16(0)
	if ev.srcPort > 0 && ev.srcPort <= 65535 {
		sp = uint16(ev.srcPort)
	}
	if ev.destPort > 0 && ev.destPort <= 65535 {
		dp = uint16(ev.destPort)
	}
	switch ev.eventType {
	case "alert":
		if ev.alert < 0 {
			return nil, c.err(ReasonNotEVE, "alert without an alert object")
		}
		r := &schemas.IDS{Transport: transport(ev.proto), AppProtocol: ev.appProto, SourceIP: ev.srcIP, SourcePort: sp,
			DestinationIP: ev.destIP, DestinationPort: dp, FlowID: ev.flowID, Interface: ev.iface}
		_, ok := walkObject(s, ev.alert, func(key string, v int) (int, bool) {
			switch key {
			case "signature_id":
				return readIntInto(s, v, &r.SignatureID)
			case "signature":
				return readStringInto(s, v, &r.Signature)
			case "category":
				return readStringInto(s, v, &r.Category)
			case "severity":
				return readIntInto(s, v, &r.Severity)
			case "action":
				return readStringInto(s, v, &r.Action)
			}
			return skipValue(s, v, 0)
		})
		if !ok {
			return nil, c.err(ReasonBadJSON, "malformed alert object")
		}
		setCommon(&r.Base, ts, ev.host, s)
		return r, nil
	case "http":
		if ev.http < 0 {
			return nil, c.err(ReasonNotEVE, "http without an http object")
		}
		r := &schemas.Web{SourceIP: ev.srcIP, DestinationIP: ev.destIP}
		var host, url, proto string
		var status int64
		_, ok := walkObject(s, ev.http, func(key string, v int) (int, bool) {
			switch key {
			case "hostname":
				return readStringInto(s, v, &host)
			case "url":
				return readStringInto(s, v, &url)
			case "http_user_agent":
				return readStringInto(s, v, &r.UserAgent)
			case "http_refer", "http_referer":
				return readStringInto(s, v, &r.Referrer)
			case "http_method":
				return readStringInto(s, v, &r.Method)
			case "protocol":
				return readStringInto(s, v, &proto)
			case "status":
				return readIntInto(s, v, &status)
			case "length":
				return readIntInto(s, v, &r.Bytes)
			}
			return skipValue(s, v, 0)
		})
		if !ok {
			return nil, c.err(ReasonBadJSON, "malformed http object")
		}
		if status > 0 && status < 1000 {
			r.Status = uint16(status)
		}
		if q := strings.IndexByte(url, '?'); q >= 0 {
			r.Path, r.Query = url[:q], url[q+1:]
		} else {
			r.Path = url
		}
		r.HTTPVersion = strings.TrimPrefix(proto, "HTTP/")
		setCommon(&r.Base, ts, host, s)
		return r, nil
	case "flow", "netflow":
		r := &schemas.Firewall{Action: "flow", Transport: transport(ev.proto), NetworkType: "ipv4", SourceIP: ev.srcIP, SourcePort: sp,
			DestinationIP: ev.destIP, DestinationPort: dp, InInterface: ev.iface}
		if strings.IndexByte(ev.srcIP, ':') >= 0 {
			r.NetworkType = "ipv6"
		}
		if ev.flow >= 0 {
			var ps, pc, bs, bc int64
			_, ok := walkObject(s, ev.flow, func(key string, v int) (int, bool) {
				switch key {
				case "pkts_toserver", "pkts":
					return readIntInto(s, v, &ps)
				case "pkts_toclient":
					return readIntInto(s, v, &pc)
				case "bytes_toserver", "bytes":
					return readIntInto(s, v, &bs)
				case "bytes_toclient":
					return readIntInto(s, v, &bc)
				}
				return skipValue(s, v, 0)
			})
			if !ok {
				return nil, c.err(ReasonBadJSON, "malformed flow object")
			}
			r.Packets, r.Bytes = ps+pc, bs+bc
		}
		setCommon(&r.Base, ts, ev.host, s)
		return r, nil
	}
	return nil, c.err(ReasonUnsupportedEvent, "event_type "+strconv.Quote(ev.eventType)+" has no dataset")
}

// --- a minimal JSON scanner -------------------------------------------

const maxJSONDepth = 64

func skipWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// walkObject calls fn for each member of the object starting at s[i]
// ('{'); fn gets the key and the offset of the value and returns the offset
// after the value. It returns the offset after the closing '}'.
func walkObject(s string, i int, fn func(key string, v int) (int, bool)) (int, bool) {
	i = skipWS(s, i)
	if i >= len(s) || s[i] != '{' {
		return 0, false
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		key, next, ok := readString(s, i)
		if !ok {
			return 0, false
		}
		i = skipWS(s, next)
		if i >= len(s) || s[i] != ':' {
			return 0, false
		}
		i = skipWS(s, i+1)
		if i >= len(s) {
			return 0, false
		}
		if i, ok = fn(key, i); !ok {
			return 0, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return 0, false
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

func readStringInto(s string, i int, dst *string) (int, bool) {
	if i < len(s) && s[i] != '"' {
		// A non-string where a string was expected: keep it empty.
		return skipValue(s, i, 0)
	}
	v, next, ok := readString(s, i)
	if ok {
		*dst = v
	}
	return next, ok
}

func readIntInto(s string, i int, dst *int64) (int, bool) {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	start := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == start || (j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E')) {
		return skipValue(s, i, 0) // not an integer: ignore the value
	}
	n, ok := atoiPos(s[start:j])
	if ok {
		if s[i] == '-' {
			n = -n
		}
		*dst = n
	}
	return j, true
}

// readString reads the JSON string at s[i]. Without escapes the result is
// a substring of s; with escapes it is decoded into a new string.
func readString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	escaped := false
	for j := start; j < len(s); j++ {
		switch c := s[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			if !escaped {
				return s[start:j], j + 1, true
			}
			v, ok := unescapeJSON(s[start:j])
			return v, j + 1, ok
		case c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// skipString returns the offset after the JSON string at s[i] without
// decoding it, so skipped values never allocate.
func skipString(s string, i int) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '\\':
			j++
			if j >= len(s) {
				return 0, false
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := hex4(s, j+1); !ok {
					return 0, false
				}
				j += 4
			default:
				return 0, false
			}
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

func unescapeJSON(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			b.WriteByte(s[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, ok := hex4(s, i+3); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 6
						}
					}
				}
			}
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), true
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipValue returns the offset after the JSON value at s[i].
func skipValue(s string, i, depth int) (int, bool) {
	if i >= len(s) || depth > maxJSONDepth {
		return 0, false
	}
	switch c := s[i]; {
	case c == '"':
		return skipString(s, i)
	case c == '{':
		return walkObject(s, i, func(_ string, v int) (int, bool) { return skipValue(s, v, depth+1) })
	case c == '[':
		i = skipWS(s, i+1)
		if i < len(s) && s[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(s, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(s, i)
			if i >= len(s) {
				return 0, false
			}
			if s[i] == ']' {
				return i + 1, true
			}
			if s[i] != ',' {
				return 0, false
			}
			i = skipWS(s, i+1)
		}
	case c == 't':
		return literal(s, i, "true")
	case c == 'f':
		return literal(s, i, "false")
	case c == 'n':
		return literal(s, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(s) {
			d := s[j]
			if d >= '0' && d <= '9' || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-' {
				j++
				continue
			}
			break
		}
		return j, true
	}
	return 0, false
}

func literal(s string, i int, lit string) (int, bool) {
	if strings.HasPrefix(s[i:], lit) {
		return i + len(lit), true
	}
	return 0, false
}
