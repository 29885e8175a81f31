package parse

import (
	"net/netip"
	"strings"
	"time"
)

// Small allocation-free scanning helpers over strings.

// atoiPos parses a non-empty run of ASCII digits (at most 18) as int64.
func atoiPos(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// port parses a decimal TCP/UDP port.
func port(s string) (uint16, bool) {
	n, ok := atoiPos(s)
	if !ok || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// digits2 parses exactly two ASCII digits at s[i:]; a leading space is
// accepted as 0 when spaceOK (BSD syslog pads the day with a space).
func digits2(s string, i int, spaceOK bool) (int, bool) {
	if i+2 > len(s) {
		return 0, false
	}
	a, b := s[i], s[i+1]
	if a == ' ' && spaceOK {
		a = '0'
	}
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

func digitsN(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+n; j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// month parses an English three-letter month abbreviation.
func month(s string) (time.Month, bool) {
	if len(s) < 3 {
		return 0, false
	}
	// Pack the three letters, case-folded, into one switch key.
	k := uint32(s[0]|0x20)<<16 | uint32(s[1]|0x20)<<8 | uint32(s[2]|0x20)
	switch k {
	case 'j'<<16 | 'a'<<8 | 'n':
		return time.January, true
	case 'f'<<16 | 'e'<<8 | 'b':
		return time.February, true
	case 'm'<<16 | 'a'<<8 | 'r':
		return time.March, true
	case 'a'<<16 | 'p'<<8 | 'r':
		return time.April, true
	case 'm'<<16 | 'a'<<8 | 'y':
		return time.May, true
	case 'j'<<16 | 'u'<<8 | 'n':
		return time.June, true
	case 'j'<<16 | 'u'<<8 | 'l':
		return time.July, true
	case 'a'<<16 | 'u'<<8 | 'g':
		return time.August, true
	case 's'<<16 | 'e'<<8 | 'p':
		return time.September, true
	case 'o'<<16 | 'c'<<8 | 't':
		return time.October, true
	case 'n'<<16 | 'o'<<8 | 'v':
		return time.November, true
	case 'd'<<16 | 'e'<<8 | 'c':
		return time.December, true
	}
	return 0, false
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

func validClock(h, mi, s int) bool { return h < 24 && mi < 60 && s < 61 }

// validYear bounds years to what every store can hold: Unix time from 1970
// (ClickHouse DateTime) and four-digit RFC 3339 years.
func validYear(y int) bool { return y >= 1970 && y <= 9998 }

// parseISO parses an RFC 3339 / ISO 8601 timestamp at the start of s:
// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM|±HHMM)?; without a zone it is in loc.
// It returns the time in UTC and the number of bytes consumed.
func parseISO(s string, loc *time.Location) (time.Time, int, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, 0, false
	}
	y, ok1 := digitsN(s, 0, 4)
	mo, ok2 := digits2(s, 5, false)
	d, ok3 := digits2(s, 8, false)
	h, ok4 := digits2(s, 11, false)
	mi, ok5 := digits2(s, 14, false)
	sec, ok6 := digits2(s, 17, false)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || !validYear(y) || mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || !validClock(h, mi, sec) {
		return time.Time{}, 0, false
	}
	i := 19
	nsec := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		scale := 100000000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if scale > 0 {
				nsec += int(s[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return time.Time{}, 0, false
		}
	}
	zone := loc
	off := 0
	switch {
	case i < len(s) && (s[i] == 'Z' || s[i] == 'z'):
		zone = nil
		i++
	case i < len(s) && (s[i] == '+' || s[i] == '-'):
		oh, ok := digits2(s, i+1, false)
		if !ok {
			return time.Time{}, 0, false
		}
		j := i + 3
		if j < len(s) && s[j] == ':' {
			j++
		}
		om, ok := digits2(s, j, false)
		if !ok || oh > 23 || om > 59 {
			return time.Time{}, 0, false
		}
		off = (oh*60 + om) * 60
		if s[i] == '-' {
			off = -off
		}
		zone = nil
		i = j + 2
	}
	var t time.Time
	if zone == nil {
		t = time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC).Add(-time.Duration(off) * time.Second)
	} else {
		t = time.Date(y, time.Month(mo), d, h, mi, sec, nsec, zone).UTC()
	}
	return t, i, true
}

// isIP reports whether s is an IPv4 or IPv6 address.
func isIP(s string) bool {
	if len(s) < 2 || len(s) > 45 {
		return false
	}
	c := s[0]
	if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':') {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// cutWord returns the text up to the first space and the rest after it.
func cutWord(s string) (word, rest string) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// trimPreauth removes a trailing " [preauth]" (and spaces).
func trimPreauth(s string) string {
	s = strings.TrimRight(s, " ")
	s = strings.TrimSuffix(s, "[preauth]")
	return strings.TrimRight(s, " ")
}
