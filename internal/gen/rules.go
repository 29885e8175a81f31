package gen

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Attack is a kind of attack the generator mixes in. Each kind trips exactly
// one default detection (Rule).
type Attack uint8

// The attack kinds, in the order of the shared detection table.
const (
	NoAttack Attack = iota
	SSHBruteforce
	PasswordSpraying
	DistributedBruteforce
	PortScan
	WebScan
	DDoS
	IDSThenLogin
	numAttacks
)

// AllAttacks returns every attack kind.
func AllAttacks() []Attack {
	out := make([]Attack, 0, numAttacks-1)
	for a := NoAttack + 1; a < numAttacks; a++ {
		out = append(out, a)
	}
	return out
}

// String is the attack's name in the ground truth ("ssh_bruteforce", ...).
func (a Attack) String() string {
	switch a {
	case NoAttack:
		return ""
	case SSHBruteforce:
		return "ssh_bruteforce"
	case PasswordSpraying:
		return "password_spraying"
	case DistributedBruteforce:
		return "distributed_bruteforce"
	case PortScan:
		return "port_scan"
	case WebScan:
		return "web_scan"
	case DDoS:
		return "ddos"
	case IDSThenLogin:
		return "ids_then_login"
	}
	return fmt.Sprintf("attack(%d)", uint8(a))
}

// ParseAttacks reads a comma-separated list of attack names, "all" or "none".
func ParseAttacks(s string) ([]Attack, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "all", "":
		return AllAttacks(), nil
	case "none":
		return []Attack{}, nil
	}
	var out []Attack
	seen := map[Attack]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		found := NoAttack
		for a := NoAttack + 1; a < numAttacks; a++ {
			if a.String() == name {
				found = a
			}
		}
		if found == NoAttack {
			return nil, fmt.Errorf("gen: unknown attack %q (want all, none or a list of %s)", name, attackNames())
		}
		if !seen[found] {
			seen[found] = true
			out = append(out, found)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func attackNames() string {
	var names []string
	for _, a := range AllAttacks() {
		names = append(names, a.String())
	}
	return strings.Join(names, ", ")
}

// Rule is one row of the shared detection table: the contract between the
// generator's ground truth and the speed layer's default rules.
type Rule struct {
	ID      string
	Dataset Dataset
	// Window and Slide define aligned sliding windows [k*Slide, k*Slide+Window)
	// in event time; Window is also the sequence horizon of ids_then_login.
	Window, Slide time.Duration
	// Threshold is the count or distinct count at which the rule fires.
	Threshold int
	// Distinct is true when the aggregate is a distinct count.
	Distinct bool
	// Sequence is true for ids_then_login.
	Sequence bool
}

// RuleFor returns the detection an attack kind must trip.
func RuleFor(a Attack) Rule {
	switch a {
	case SSHBruteforce:
		return Rule{ID: "ssh_bruteforce", Dataset: Auth, Window: 60 * time.Second, Slide: time.Second, Threshold: 5}
	case PasswordSpraying:
		return Rule{ID: "password_spraying", Dataset: Auth, Window: 300 * time.Second, Slide: 10 * time.Second, Threshold: 8, Distinct: true}
	case DistributedBruteforce:
		return Rule{ID: "distributed_bruteforce", Dataset: Auth, Window: 300 * time.Second, Slide: 10 * time.Second, Threshold: 10, Distinct: true}
	case PortScan:
		return Rule{ID: "port_scan", Dataset: Firewall, Window: 10 * time.Second, Slide: time.Second, Threshold: 20, Distinct: true}
	case WebScan:
		return Rule{ID: "web_scan", Dataset: Web, Window: 60 * time.Second, Slide: time.Second, Threshold: 50}
	case DDoS:
		return Rule{ID: "traffic_spike", Dataset: Firewall, Window: 10 * time.Second, Slide: time.Second, Threshold: 2000}
	case IDSThenLogin:
		return Rule{ID: "ids_then_login", Dataset: Auth, Window: 600 * time.Second, Sequence: true}
	}
	return Rule{}
}

// hit is one line that passes an attack's rule filter: its event time, and
// for distinct counts the value counted (for sequences: 0 alert, 1 login).
type hit struct {
	t int64
	v uint64
}

// ruleHit reports whether a line passes the filter of attack a's rule and
// the value it contributes. It is the generator's own reading of the shared
// table, used to stamp threshold_crossed_at; tests check it against an
// independent implementation over parsed lines.
func ruleHit(a Attack, d Dataset, m *Meaning) (hit bool, v uint64) {
	switch a {
	case SSHBruteforce:
		return d == Auth && m.Outcome == OutcomeFailure, 0
	case PasswordSpraying:
		return d == Auth && m.Outcome == OutcomeFailure, hashBytes(m.User)
	case DistributedBruteforce:
		return d == Auth && m.Outcome == OutcomeFailure, uint64(ipv4(m.SourceIP))
	case PortScan:
		return d == Firewall && m.Action == "deny", uint64(m.DestPort)
	case WebScan:
		return d == Web && m.Status >= 400 && m.Status <= 499, 0
	case DDoS:
		return d == Firewall, 0
	case IDSThenLogin:
		if d == IDS && m.Action == "alert" {
			return true, 0
		}
		// PAM session lines are successes too, but carry no source IP:
		// they cannot match an alert's key.
		if d == Auth && m.Outcome == OutcomeSuccess && m.SourceIP.IsValid() {
			return true, 1
		}
	}
	return false, 0
}

// crossing returns the earliest event time at which rule r holds over hits
// (sorted by time), and whether it ever does. Windows are aligned:
// [k*Slide, k*Slide+Window) in Unix time.
func crossing(r Rule, hits []hit) (int64, bool) {
	if len(hits) == 0 {
		return 0, false
	}
	if r.Sequence {
		lastAlert := int64(0)
		seen := false
		for _, h := range hits {
			if h.v == 0 {
				lastAlert, seen = h.t, true
				continue
			}
			if seen && h.t-lastAlert <= int64(r.Window) {
				return h.t, true
			}
		}
		return 0, false
	}
	w, s := int64(r.Window), int64(r.Slide)
	best, found := int64(0), false
	// Every window containing at least one hit starts in (first-w, last].
	for k := floorDiv(hits[0].t-w, s) + 1; k*s <= hits[len(hits)-1].t; k++ {
		lo, hi := k*s, k*s+w
		n := 0
		var distinct map[uint64]bool
		if r.Distinct {
			distinct = map[uint64]bool{}
		}
		for _, h := range hits {
			if h.t < lo || h.t >= hi {
				continue
			}
			if r.Distinct {
				if distinct[h.v] {
					continue
				}
				distinct[h.v] = true
			}
			n++
			if n == r.Threshold {
				if !found || h.t < best {
					best, found = h.t, true
				}
				break
			}
		}
	}
	return best, found
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func ipv4(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
