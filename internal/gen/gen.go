// Package gen generates deterministic, realistic security-log traffic with
// attacks mixed in at known times, and the ground truth of which detection
// each attack must trip.
//
// Lines are emitted in the real source formats (sshd syslog in RFC 5424,
// netfilter/ufw kernel lines, Suricata EVE JSON, combined access logs), keyed
// by source IP, exactly as a log shipper would send them, so every layer
// downstream (parsers included) is exercised. Event i is stamped
// start + i/rate (minus the configured skew): output depends only on the
// options, never on wall-clock speed, so the same options give byte-identical
// output.
//
// Background traffic is built so that it structurally cannot satisfy any of
// the default detections (see docs/gen.md): every pool of users, clients and
// destinations is walked by a permutation whose size scales with the rate, so
// per-key counts in any window are bounded by construction, not by luck.
package gen

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"
)

// Dataset is one of the four source datasets, each with its own topic and
// line format.
type Dataset uint8

// The datasets, in output order.
const (
	Auth     Dataset = iota // sshd syslog lines (format "sshd")
	Firewall                // netfilter/ufw kernel lines (format "netfilter")
	IDS                     // Suricata EVE JSON (format "eve")
	Web                     // combined access log with duration (format "access")
	// NumDatasets is the number of datasets.
	NumDatasets = 4
)

// String is the dataset's name, which is also its default topic.
func (d Dataset) String() string {
	switch d {
	case Auth:
		return "auth"
	case Firewall:
		return "firewall"
	case IDS:
		return "ids"
	case Web:
		return "web"
	}
	return fmt.Sprintf("dataset(%d)", uint8(d))
}

// Format is the parser format of the dataset's lines (schemas/parse).
func (d Dataset) Format() string {
	switch d {
	case Auth:
		return "sshd"
	case Firewall:
		return "netfilter"
	case IDS:
		return "eve"
	case Web:
		return "access"
	}
	return ""
}

// FileName is the file the dataset is written to with an output directory.
func (d Dataset) FileName() string {
	switch d {
	case Auth:
		return "auth.log"
	case Firewall:
		return "firewall.log"
	case IDS:
		return "ids.json"
	case Web:
		return "web.log"
	}
	return ""
}

// Outcome is the authentication outcome a line means (ECS event.outcome).
type Outcome uint8

// Outcomes.
const (
	OutcomeUnknown Outcome = iota
	OutcomeSuccess
	OutcomeFailure
)

// String is the ECS value: "unknown", "success" or "failure".
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeFailure:
		return "failure"
	}
	return "unknown"
}

// Line is one generated log line and what it means. Key, Value, User and
// Path alias the generator's buffers: they are valid only until the next
// line is generated; copy what you keep.
type Line struct {
	Dataset Dataset
	// Topic is the Kafka topic of the dataset (Options.Topics).
	Topic string
	// Key is the Kafka record key: the line's source IP.
	Key []byte
	// Value is the raw log line, without a trailing newline.
	Value []byte
	// EventTime is the time written in the line, at the line's precision
	// (milliseconds for syslog, microseconds for EVE, seconds for access).
	EventTime time.Time
	// Seq is the line's position in the stream, from 0.
	Seq int64
	// Meaning says what the generator intended the line to mean.
	Meaning Meaning
}

// Meaning is the generator's intent for one line: the fields a correct
// parser must recover, and whether the line belongs to an attack.
type Meaning struct {
	// Attack is the attack the line belongs to, NoAttack for background.
	Attack Attack
	// Instance numbers attack instances in the run from 1 (0: background).
	Instance int
	// Late marks background lines stamped LateBy before their slot.
	Late bool
	// Action is the event action: for auth one of the Action* constants,
	// for firewall "allow" or "deny", for ids the EVE event_type, for web "".
	Action string
	// Outcome of an auth line.
	Outcome Outcome
	// Method is the auth method ("password", "publickey") or HTTP method.
	Method string
	// User is the user name ("" when the line has none).
	User []byte
	// SourceIP, SourcePort, DestIP and DestPort; ports are 0 when absent
	// from the line, DestIP invalid when absent.
	SourceIP   netip.Addr
	SourcePort uint16
	DestIP     netip.Addr
	DestPort   uint16
	// Proto is the transport protocol of firewall and ids lines.
	Proto string
	// Status is the HTTP status of web lines.
	Status int
	// Path is the URL path of web lines (query excluded).
	Path []byte
	// Duration is the request duration written at the end of web lines.
	Duration time.Duration
	// SignatureID is the rule id of an ids alert.
	SignatureID int
}

// Auth actions written by the generator (ECS-style event.action values the
// parsers are expected to produce).
const (
	ActionLogin            = "ssh_login"         // Failed/Accepted password|publickey
	ActionInvalidUser      = "invalid_user"      // Invalid user U from IP
	ActionConnectionClosed = "connection_closed" // Connection closed by IP port P [preauth]
	ActionSessionOpened    = "session_opened"    // pam_unix session opened
	ActionSessionClosed    = "session_closed"    // pam_unix session closed
	ActionDisconnect       = "disconnect"        // Received disconnect from IP
	ActionDisconnected     = "disconnected"      // Disconnected from user U IP
)

// DefaultStart is the first event time when Options.Start is zero.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure a Generator. The zero value of every field but Rate has
// a documented default.
type Options struct {
	// Seed selects the run; the same options and seed give identical output.
	Seed uint64
	// Rate is events per second of event time (required, > 0). With Pace it
	// is also the wall-clock pace of Run.
	Rate float64
	// Count is the number of events; when 0, Duration decides; when both
	// are 0 the run is unbounded (until the context ends).
	Count int64
	// Duration is the event-time span: Count = Duration*Rate.
	Duration time.Duration
	// Start is the event time of the first event (default DefaultStart).
	Start time.Time
	// Attacks are the attack kinds to mix in; nil means all, an empty
	// non-nil slice none.
	Attacks []Attack
	// AttackEvery is the event-time gap between two instances of one attack
	// kind (default 60s, minimum 20s so keys never collide, see docs/gen.md).
	AttackEvery time.Duration
	// Intensity scales the events of every attack instance (default 1);
	// instances never drop below a clear margin over their rule's threshold.
	Intensity float64
	// MaxSkew makes the stream out of order: every event is stamped up to
	// MaxSkew before its slot (uniformly, seeded).
	MaxSkew time.Duration
	// LateFraction of background events are stamped LateBy before their
	// slot (late, ordinary traffic).
	LateFraction float64
	// LateBy is how late the late events are (default 2m when LateFraction
	// is set).
	LateBy time.Duration
	// Topics names the topic of each dataset (default: the dataset name).
	Topics [NumDatasets]string
	// Pace makes Run follow Rate on the wall clock instead of going as fast
	// as possible.
	Pace bool
	// Progress, when set, is called by Run about every ProgressEvery
	// (default 1s) and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Logger receives notes about skipped attack instances (default: discard).
	Logger *slog.Logger
}

// Progress is a snapshot of a running generation.
type Progress struct {
	Events  int64         // events emitted so far
	Total   int64         // events planned, -1 when unbounded
	Elapsed time.Duration // wall-clock time since Run started
	Rate    float64       // events per wall-clock second over the last interval
	// ETA is the estimated remaining wall-clock time (0 when unbounded).
	ETA  time.Duration
	Done bool
}

const (
	minAttackEvery = 20 * time.Second
	defaultLateBy  = 2 * time.Minute
)

func (o *Options) normalize() error {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		return fmt.Errorf("gen: rate must be a positive number of events per second, got %v", o.Rate)
	}
	if o.Count < 0 {
		return fmt.Errorf("gen: count must not be negative, got %d", o.Count)
	}
	if o.Duration < 0 {
		return fmt.Errorf("gen: duration must not be negative, got %v", o.Duration)
	}
	if o.Count > 0 && o.Duration > 0 {
		return errors.New("gen: give a count or a duration, not both")
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC()
	if o.Attacks == nil {
		o.Attacks = AllAttacks()
	}
	for _, a := range o.Attacks {
		if a <= NoAttack || a >= numAttacks {
			return fmt.Errorf("gen: unknown attack kind %d", a)
		}
	}
	if o.AttackEvery == 0 {
		o.AttackEvery = 60 * time.Second
	}
	if o.AttackEvery < minAttackEvery {
		return fmt.Errorf("gen: attack interval %v is below the minimum %v (keys of consecutive instances would share windows)", o.AttackEvery, minAttackEvery)
	}
	if o.Intensity == 0 {
		o.Intensity = 1
	}
	if !(o.Intensity > 0) || o.Intensity > 100 {
		return fmt.Errorf("gen: intensity must be in (0, 100], got %v", o.Intensity)
	}
	if o.MaxSkew < 0 || o.MaxSkew > 30*time.Second {
		return fmt.Errorf("gen: max skew must be between 0 and 30s, got %v", o.MaxSkew)
	}
	if o.LateFraction < 0 || o.LateFraction > 0.5 {
		return fmt.Errorf("gen: late fraction must be between 0 and 0.5, got %v", o.LateFraction)
	}
	if o.LateBy < 0 {
		return fmt.Errorf("gen: late-by must not be negative, got %v", o.LateBy)
	}
	if o.LateFraction > 0 && o.LateBy == 0 {
		o.LateBy = defaultLateBy
	}
	for d := Dataset(0); d < NumDatasets; d++ {
		if o.Topics[d] == "" {
			o.Topics[d] = d.String()
		}
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Total is the number of events the options produce, -1 when unbounded.
func (o Options) total() int64 {
	switch {
	case o.Count > 0:
		return o.Count
	case o.Duration > 0:
		n := int64(math.Ceil(o.Duration.Seconds() * o.Rate))
		// Keep exactly the slots whose time is before start+Duration.
		for n > 0 && slotOffset(n-1, o.Rate) >= int64(o.Duration) {
			n--
		}
		return n
	}
	return -1
}

// slotOffset is the nanoseconds from start of slot i.
func slotOffset(i int64, rate float64) int64 {
	return int64(float64(i) * 1e9 / rate)
}
