package parse

import (
	"strings"

	"github.com/lambdalog/lambdalog/schemas"
)

// Firewall actions (event_action).
const (
	FirewallAllow  = "allow"
	FirewallDeny   = "deny"
	FirewallDrop   = "drop"
	FirewallReject = "reject"
	// FirewallLog is a logged packet whose prefix names no decision.
	FirewallLog = "log"
)

// netfilterParser parses Linux netfilter (iptables, ufw, nftables) kernel
// log lines with any syslog header, or none but a timestamp.
type netfilterParser struct{ c *config }

func (p *netfilterParser) Format() string { return p.c.format }

func (p *netfilterParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	h, err := p.c.parseHeader(s)
	if err != nil {
		return nil, err
	}
	fw, ok := parseNetfilterBody(h.body)
	if !ok {
		return nil, p.c.err(ReasonNotNetfilter, "no IN= ... SRC= fields")
	}
	setCommon(&fw.Base, h.ts, h.host, s)
	return fw, nil
}

// tokenStart finds key at the start of a token (after start of s, a space
// or a ']').
func tokenStart(s, key string) int {
	for i := 0; ; {
		j := strings.Index(s[i:], key)
		if j < 0 {
			return -1
		}
		j += i
		if j == 0 || s[j-1] == ' ' || s[j-1] == ']' {
			return j
		}
		i = j + len(key)
	}
}

// parseNetfilterBody parses "[kernel: ][[uptime] ]PREFIX IN=.. OUT=.. SRC=..".
func parseNetfilterBody(body string) (*schemas.Firewall, bool) {
	idx := tokenStart(body, "IN=")
	if idx < 0 {
		return nil, false
	}
	fw := &schemas.Firewall{Packets: 1, NetworkType: "ipv4"}
	fw.Rule = rulePrefix(body[:idx])
	s := body[idx:]
	seenLen := false
	for len(s) > 0 {
		var tok string
		tok, s = cutWord(s)
		if tok == "" {
			continue
		}
		if tok[0] == '[' {
			break // ICMP error: the quoted inner header follows
		}
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		switch k {
		case "IN":
			fw.InInterface = v
		case "OUT":
			fw.OutInterface = v
		case "SRC":
			fw.SourceIP = v
		case "DST":
			fw.DestinationIP = v
		case "LEN":
			if !seenLen { // the first LEN is the IP length; UDP repeats its own
				if n, ok := atoiPos(v); ok {
					fw.Bytes = n
				}
				seenLen = true
			}
		case "PROTO":
			fw.Transport = transport(v)
		case "SPT":
			fw.SourcePort, _ = port(v)
		case "DPT":
			fw.DestinationPort, _ = port(v)
		case "TC", "HOPLIMIT", "FLOWLBL":
			fw.NetworkType = "ipv6"
		}
	}
	if fw.SourceIP == "" || fw.DestinationIP == "" {
		return nil, false
	}
	if strings.IndexByte(fw.SourceIP, ':') >= 0 {
		fw.NetworkType = "ipv6"
	}
	fw.Action = firewallAction(fw.Rule)
	return fw, true
}

// rulePrefix extracts the log prefix from the text before IN=, dropping a
// "kernel:" tag and the "[  307.757925]" uptime stamp.
func rulePrefix(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "kernel:")
	s = strings.TrimLeft(s, " ")
	if len(s) > 0 && s[0] == '[' {
		if end := strings.IndexByte(s, ']'); end > 0 && isUptime(s[1:end]) {
			s = strings.TrimLeft(s[end+1:], " ")
		}
	}
	s = strings.TrimRight(s, " :")
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' && strings.IndexByte(s[1:], '[') < 0 {
		s = s[1 : len(s)-1]
	}
	return s
}

func isUptime(s string) bool {
	s = strings.TrimLeft(s, " ")
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return dot
}

// transport maps PROTO= to ECS network.transport without allocating for
// the common protocols.
func transport(v string) string {
	switch v {
	case "TCP", "6":
		return "tcp"
	case "UDP", "17":
		return "udp"
	case "ICMP", "1":
		return "icmp"
	case "ICMPv6", "ICMPV6", "IPv6-ICMP", "58":
		return "ipv6-icmp"
	case "ESP", "50":
		return "esp"
	case "AH", "51":
		return "ah"
	case "GRE", "47":
		return "gre"
	case "SCTP", "132":
		return "sctp"
	case "UDPLITE":
		return "udplite"
	}
	return strings.ToLower(v)
}

// firewallAction reads the decision from the log prefix: ufw's
// [UFW BLOCK]/[UFW ALLOW], prefixes naming DROP/REJECT/DENY/ACCEPT, and
// EdgeRouter "RULESET-RULE-A|D|R" names.
func firewallAction(rule string) string {
	switch {
	case containsFold(rule, "UFW BLOCK"), containsFold(rule, "UFW LIMIT"):
		return FirewallDeny
	case containsFold(rule, "UFW ALLOW"):
		return FirewallAllow
	case containsFold(rule, "UFW AUDIT"):
		return FirewallLog
	case containsFold(rule, "REJECT"):
		return FirewallReject
	case containsFold(rule, "DROP"):
		return FirewallDrop
	case containsFold(rule, "DENY"), containsFold(rule, "BLOCK"):
		return FirewallDeny
	case containsFold(rule, "ACCEPT"), containsFold(rule, "ALLOW"):
		return FirewallAllow
	}
	if n := len(rule); n > 2 && rule[n-2] == '-' {
		switch rule[n-1] {
		case 'A':
			return FirewallAllow
		case 'D':
			return FirewallDrop
		case 'R':
			return FirewallReject
		}
	}
	return FirewallLog
}

// containsFold reports whether s contains the upper-case ASCII word sub,
// ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
