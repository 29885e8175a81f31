package parse

import (
	"strings"

	"github.com/lambdalog/lambdalog/schemas"
)

// autoParser detects the format of every line: JSON objects are EVE when
// they have an "event_type" key and normalized JSON otherwise; lines with a
// [dd/Mon/yyyy:HH:MM:SS +zzzz] timestamp are access logs; lines with
// netfilter's IN= and SRC= fields are netfilter; everything else is syslog.
type autoParser struct {
	c         *config
	sys       *syslogParser
	access    *accessParser
	netfilter *netfilterParser
	eve       *eveParser
	json      *jsonParser
}

func newAuto(c *config) *autoParser {
	return &autoParser{
		c:         c,
		sys:       &syslogParser{c: c},
		access:    &accessParser{c: c},
		netfilter: &netfilterParser{c: c},
		eve:       &eveParser{c: c},
		json:      &jsonParser{c: c},
	}
}

func (p *autoParser) Format() string { return p.c.format }

func (p *autoParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	return p.parseString(s)
}

// Detect names the format auto would use for line.
func Detect(line []byte) string {
	return detect(strings.TrimSpace(string(line)))
}

func detect(s string) string {
	t := strings.TrimLeft(s, " \t")
	if len(t) > 0 && t[0] == '{' {
		if strings.Contains(t, `"event_type"`) {
			return FormatEVE
		}
		return FormatJSON
	}
	if _, _, ok := findCLFTime(s); ok {
		return FormatAccess
	}
	if tokenStart(s, "IN=") >= 0 && strings.Contains(s, " SRC=") {
		return FormatNetfilter
	}
	return FormatSyslog
}

func (p *autoParser) parseString(s string) (schemas.Record, error) {
	switch detect(s) {
	case FormatEVE:
		return p.c.parseEVE(s)
	case FormatJSON:
		return p.json.Parse([]byte(s))
	case FormatAccess:
		return p.c.parseAccess(s)
	case FormatNetfilter:
		h, err := p.c.parseHeader(s)
		if err != nil {
			return nil, err
		}
		if fw, ok := parseNetfilterBody(h.body); ok {
			setCommon(&fw.Base, h.ts, h.host, s)
			return fw, nil
		}
		return p.c.dispatch(&h, s, nil), nil
	}
	h, err := p.c.parseHeader(s)
	if err != nil {
		return nil, err
	}
	return p.c.dispatch(&h, s, nil), nil
}
