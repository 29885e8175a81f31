package catalog

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Type is a parameter type.
type Type string

// Parameter types.
const (
	// TypeDate is a UTC calendar day, YYYY-MM-DD or today / today-N.
	TypeDate Type = "date"
	// TypeInt is a decimal integer within [Min, Max].
	TypeInt Type = "int"
	// TypeIP is an IPv4 or IPv6 address, rendered in canonical form.
	TypeIP Type = "ip"
	// TypeString is free text (a user name, ...), printable, at most 256
	// bytes, rendered as an escaped string literal.
	TypeString Type = "string"
	// TypeEnum is one of Values.
	TypeEnum Type = "enum"
)

// maxString is the longest string parameter accepted.
const maxString = 256

// Param is one typed report parameter.
type Param struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// Default is used when the parameter is absent; HasDefault says
	// whether there is one (parameters without are required).
	Default    string `json:"default,omitempty"`
	HasDefault bool   `json:"-"`
	// Min and Max bound int parameters.
	Min int64 `json:"min,omitempty"`
	Max int64 `json:"max,omitempty"`
	// Values are the choices of an enum.
	Values []string `json:"values,omitempty"`
	// Doc says what the parameter means.
	Doc string `json:"doc"`
}

// Required reports whether the parameter has no default.
func (p Param) Required() bool { return !p.HasDefault }

// parseParam parses "NAME TYPE [default=V] [min=N] [max=N] [values=a|b] -- doc".
func parseParam(s string) (Param, error) {
	spec, doc, _ := strings.Cut(s, " -- ")
	f := strings.Fields(spec)
	if len(f) < 2 {
		return Param{}, fmt.Errorf("param %q: want NAME TYPE [options] -- doc", s)
	}
	p := Param{Name: f[0], Type: Type(f[1]), Doc: strings.TrimSpace(doc), Min: 0, Max: 1<<63 - 1}
	if !nameRE.MatchString(p.Name) {
		return p, fmt.Errorf("param name %q: want lower-case letters, digits and _", p.Name)
	}
	switch p.Type {
	case TypeDate, TypeInt, TypeIP, TypeString, TypeEnum:
	default:
		return p, fmt.Errorf("param %s: unknown type %q (want date, int, ip, string or enum)", p.Name, p.Type)
	}
	for _, o := range f[2:] {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return p, fmt.Errorf("param %s: option %q: want key=value", p.Name, o)
		}
		var err error
		switch k {
		case "default":
			p.Default, p.HasDefault = v, true
		case "min":
			p.Min, err = strconv.ParseInt(v, 10, 64)
		case "max":
			p.Max, err = strconv.ParseInt(v, 10, 64)
		case "values":
			p.Values = strings.Split(v, "|")
		default:
			return p, fmt.Errorf("param %s: unknown option %q", p.Name, k)
		}
		if err != nil {
			return p, fmt.Errorf("param %s: %s: %w", p.Name, k, err)
		}
	}
	if p.Type == TypeEnum && len(p.Values) == 0 {
		return p, fmt.Errorf("param %s: an enum needs values=a|b", p.Name)
	}
	if p.Type != TypeInt && (p.Min != 0 || p.Max != 1<<63-1) {
		return p, fmt.Errorf("param %s: min and max apply to int parameters", p.Name)
	}
	if p.Type != TypeInt {
		p.Min, p.Max = 0, 0
	}
	if p.HasDefault {
		// A default must itself be valid; the date is only a sample.
		if _, err := p.Parse(p.Default, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			return p, fmt.Errorf("param %s: default: %w", p.Name, err)
		}
	}
	return p, nil
}

// Value is a parsed, typed parameter value.
type Value struct {
	typ  Type
	date time.Time
	n    int64
	s    string
}

// String is the value in its canonical text form (as accepted by Parse).
func (v Value) String() string {
	switch v.typ {
	case TypeDate:
		return v.date.Format(time.DateOnly)
	case TypeInt:
		return itoa(v.n)
	default:
		return v.s
	}
}

// literal renders the value as SQL. Dates render as toDate('YYYY-MM-DD'),
// or with mod "start"/"end" as the DateTime of the day's first second /
// the next day's first second (Unix seconds, so no time zone applies).
func (v Value) literal(mod string) string {
	switch v.typ {
	case TypeDate:
		switch mod {
		case "start":
			return "toDateTime(" + itoa(v.date.Unix()) + ")"
		case "end":
			return "toDateTime(" + itoa(v.date.AddDate(0, 0, 1).Unix()) + ")"
		}
		return "toDate('" + v.date.Format(time.DateOnly) + "')"
	case TypeInt:
		return itoa(v.n)
	default:
		return QuoteString(v.s)
	}
}

// Parse validates s as a value of the parameter's type. Relative dates
// (today, today-N) are resolved against now's UTC day.
func (p Param) Parse(s string, now time.Time) (Value, error) {
	v := Value{typ: p.Type}
	switch p.Type {
	case TypeDate:
		d, err := parseDate(s, now)
		if err != nil {
			return v, err
		}
		v.date = d
	case TypeInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return v, fmt.Errorf("want an integer, got %q", clip(s))
		}
		if n < p.Min || n > p.Max {
			return v, fmt.Errorf("%d is outside [%d, %d]", n, p.Min, p.Max)
		}
		v.n = n
	case TypeIP:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return v, fmt.Errorf("want an IPv4 or IPv6 address, got %q", clip(s))
		}
		v.s = a.Unmap().String()
	case TypeString:
		if len(s) > maxString {
			return v, fmt.Errorf("longer than %d bytes", maxString)
		}
		if !utf8.ValidString(s) {
			return v, fmt.Errorf("not valid UTF-8")
		}
		for _, r := range s {
			if !unicode.IsPrint(r) {
				return v, fmt.Errorf("contains the non-printable character %U", r)
			}
		}
		v.s = s
	case TypeEnum:
		for _, c := range p.Values {
			if s == c {
				v.s = s
				return v, nil
			}
		}
		return v, fmt.Errorf("want one of %s, got %q", strings.Join(p.Values, ", "), clip(s))
	default:
		return v, fmt.Errorf("unknown type %q", p.Type)
	}
	return v, nil
}

func parseDate(s string, now time.Time) (time.Time, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	switch {
	case s == "today":
		return today, nil
	case strings.HasPrefix(s, "today-"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "today-"))
		if err != nil || n < 0 || n > 36600 {
			return time.Time{}, fmt.Errorf("want YYYY-MM-DD, today or today-N, got %q", clip(s))
		}
		return today.AddDate(0, 0, -n), nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD, today or today-N, got %q", clip(s))
	}
	if d.Year() < 1970 || d.Year() > 2105 {
		return time.Time{}, fmt.Errorf("date %s is outside what ClickHouse's DateTime holds (1970-2105)", s)
	}
	return d, nil
}

// clip shortens echoed input in error messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
