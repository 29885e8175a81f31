// Package parse turns raw log lines into lambdalog records: sshd/PAM and
// generic syslog, Apache/Nginx access logs, Linux netfilter kernel lines,
// Suricata EVE JSON, and JSON already in the normalized shape.
//
// The hot paths are hand-written scanners over the line: the line is
// converted to a string once (event_original) and every string field of the
// record is a substring of it, so a parsed text line costs two allocations
// (the string and the record). Lines that cannot be parsed return a
// *parse.Error with a stable Reason; Quarantine turns it into a
// *schemas.Quarantine record.
package parse

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/lambdalog/lambdalog/schemas"
)

// Parser parses one log line at a time. Implementations are safe for
// concurrent use and keep no per-line state.
type Parser interface {
	// Format is the name the parser was created with.
	Format() string
	// Parse parses one line (without its trailing newline; a trailing
	// "\n" or "\r\n" is tolerated). The record does not alias line.
	Parse(line []byte) (schemas.Record, error)
}

// Format names accepted by New.
const (
	FormatSSHD      = "sshd"
	FormatSyslog    = "syslog"
	FormatAccess    = "access"
	FormatNetfilter = "netfilter"
	FormatEVE       = "eve"
	FormatJSON      = "json"
	FormatAuto      = "auto"
)

// Formats lists the formats New accepts.
func Formats() []string {
	return []string{FormatSSHD, FormatSyslog, FormatAccess, FormatNetfilter, FormatEVE, FormatJSON, FormatAuto}
}

// DefaultMaxLineBytes is the longest line accepted when Options.MaxLineBytes
// is zero.
const DefaultMaxLineBytes = 64 << 10

// Options configures a parser.
type Options struct {
	// Reference is "now" for syslog timestamps without a year: the year is
	// chosen so that the timestamp is not more than two days after
	// Reference (a Dec 31 line read on Jan 1 belongs to the previous year).
	// Zero means the wall clock at each Parse.
	Reference time.Time
	// Location is the time zone of timestamps that carry none (BSD syslog).
	// Nil means UTC.
	Location *time.Location
	// MaxLineBytes rejects longer lines with ReasonLineTooLong. Zero means
	// DefaultMaxLineBytes.
	MaxLineBytes int
}

// Reasons a line is rejected; stable, machine-readable, used as the
// quarantine's error_reason.
const (
	ReasonEmpty            = "empty"
	ReasonLineTooLong      = "line_too_long"
	ReasonInvalidUTF8      = "invalid_utf8"
	ReasonNotSyslog        = "not_syslog"
	ReasonBadTimestamp     = "bad_timestamp"
	ReasonNotAccess        = "not_access"
	ReasonNotNetfilter     = "not_netfilter"
	ReasonBadJSON          = "bad_json"
	ReasonNotEVE           = "not_eve"
	ReasonUnsupportedEvent = "unsupported_event"
	ReasonUnknownFormat    = "unknown_format"
)

// Error is why a line was not parsed.
type Error struct {
	// Format is the parser's format.
	Format string
	// Reason is one of the Reason constants.
	Reason string
	// Detail says more, for humans.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "parse " + e.Format + ": " + e.Reason
	}
	return "parse " + e.Format + ": " + e.Reason + ": " + e.Detail
}

func newError(format, reason, detail string) *Error {
	return &Error{Format: format, Reason: reason, Detail: detail}
}

// Quarantine builds the quarantine record for a rejected line. The raw
// bytes are copied exactly (also when not valid UTF-8); the timestamp is
// when it was quarantined, since the line's own time is unknown; err's
// Reason is used when err is a *Error, "unknown" otherwise.
func Quarantine(line []byte, format string, err error) *schemas.Quarantine {
	q := &schemas.Quarantine{
		Raw:          append([]byte{}, line...),
		SourceFormat: format,
		Reason:       "unknown",
	}
	q.Base.Timestamp = time.Now().UTC()
	q.Base.ParseVersion = schemas.Version
	var pe *Error
	if errors.As(err, &pe) {
		q.Reason = pe.Reason
	}
	if err != nil {
		q.Message = err.Error()
	}
	return q
}

// Scratch is the memory ParseInto reuses from one line to the next.
type Scratch struct {
	auth   schemas.Auth
	syslog schemas.Syslog
}

// ParseInto parses line as p.Parse does, minus the allocations: for the
// syslog formats (sshd, syslog) the auth and syslog records it returns are
// s's own, overwritten by the next ParseInto with s, and their strings
// alias line instead of copying it. So the caller must be done with the
// record before its next ParseInto with s, and must not modify line while
// it uses the record; a consumer that copies each record into columnar
// buffers at once (lambdalog consume) parses an auth line with no
// allocation at all. The syslog formats' firewall records are allocated
// but alias line too; other formats, and a nil s, get p.Parse's result.
func ParseInto(p Parser, line []byte, s *Scratch) (schemas.Record, error) {
	if sp, ok := p.(*syslogParser); ok && s != nil {
		return sp.parseInto(line, s)
	}
	return p.Parse(line)
}

// New returns the parser for format.
func New(format string, opts Options) (Parser, error) {
	c := newConfig(format, opts)
	switch format {
	case FormatSSHD, FormatSyslog:
		return &syslogParser{c: c}, nil
	case FormatAccess:
		return &accessParser{c: c}, nil
	case FormatNetfilter:
		return &netfilterParser{c: c}, nil
	case FormatEVE:
		return &eveParser{c: c}, nil
	case FormatJSON:
		return &jsonParser{c: c}, nil
	case FormatAuto:
		return newAuto(c), nil
	}
	return nil, &Error{Format: format, Reason: ReasonUnknownFormat, Detail: fmt.Sprintf("want one of %v", Formats())}
}

// config is what every parser shares.
type config struct {
	format  string
	ref     time.Time
	loc     *time.Location
	maxLine int
}

func newConfig(format string, opts Options) *config {
	c := &config{format: format, ref: opts.Reference, loc: opts.Location, maxLine: opts.MaxLineBytes}
	if c.loc == nil {
		c.loc = time.UTC
	}
	if c.maxLine <= 0 {
		c.maxLine = DefaultMaxLineBytes
	}
	return c
}

func (c *config) now() time.Time {
	if c.ref.IsZero() {
		return time.Now()
	}
	return c.ref
}

func (c *config) err(reason, detail string) *Error { return newError(c.format, reason, detail) }

// prepare trims the line ending, enforces the limits every format shares
// and returns the line as the string all fields will be cut from.
func (c *config) prepare(line []byte) (string, error) {
	line, err := c.check(line)
	if err != nil {
		return "", err
	}
	return string(line), nil
}

// prepareAlias is prepare without the copy: the string aliases line
// (ParseInto's contract).
func (c *config) prepareAlias(line []byte) (string, error) {
	line, err := c.check(line)
	if err != nil || len(line) == 0 {
		return "", err
	}
	return unsafe.String(&line[0], len(line)), nil
}

// check trims the line ending and enforces the limits every format shares.
func (c *config) check(line []byte) ([]byte, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	if len(line) > c.maxLine {
		return nil, c.err(ReasonLineTooLong, fmt.Sprintf("%d bytes > %d", len(line), c.maxLine))
	}
	if isBlank(line) {
		return nil, c.err(ReasonEmpty, "")
	}
	if !utf8.Valid(line) {
		return nil, c.err(ReasonInvalidUTF8, "")
	}
	return line, nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// setCommon fills the fields every parsed record carries.
func setCommon(c *schemas.Common, ts time.Time, host, raw string) {
	c.Timestamp = ts
	c.Host = host
	c.EventOriginal = raw
	c.ParseVersion = schemas.Version
}
