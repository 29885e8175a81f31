package parse

import (
	"strings"

	"github.com/lambdalog/lambdalog/schemas"
)

// Auth event actions (event_action) produced by the sshd and PAM
// classifiers.
const (
	ActionSSHLogin            = "ssh_login"              // Failed/Accepted/Postponed <method> for U from IP
	ActionInvalidUser         = "invalid_user"           // Invalid user U from IP
	ActionInvalidUserRequest  = "invalid_user_request"   // input_userauth_request: invalid user U
	ActionAuthFailure         = "authentication_failure" // PAM authentication failure (also "PAM N more ...")
	ActionUserUnknown         = "user_unknown"           // PAM check pass; user unknown
	ActionSessionOpened       = "session_opened"         // PAM session opened for user U
	ActionSessionClosed       = "session_closed"         // PAM session closed for user U
	ActionConnectionClosed    = "connection_closed"      // Connection closed by [... user U] IP
	ActionConnectionReset     = "connection_reset"       // Connection reset by [... user U] IP
	ActionConnectionOpened    = "connection_opened"      // Connection from IP port P on ...
	ActionDisconnect          = "disconnect"             // Received disconnect from IP: code: reason
	ActionDisconnected        = "disconnected"           // Disconnected from [... user U] IP
	ActionNoIdentification    = "no_identification"      // Did not receive identification string from IP
	ActionReverseMapping      = "reverse_mapping_failed" // POSSIBLE BREAK-IN ATTEMPT
	ActionMaxAuthAttempts     = "max_auth_attempts"      // maximum authentication attempts exceeded
	ActionTooManyAuthFailures = "too_many_auth_failures" // Disconnecting: Too many authentication failures
	ActionMaxRetriesIgnored   = "max_retries_ignored"    // PAM service(sshd) ignoring max retries
	ActionUserNotAllowed      = "user_not_allowed"       // User U from IP not allowed because ...
	ActionNegotiationFailed   = "negotiation_failed"     // Unable to negotiate with IP
	ActionBadProtocol         = "bad_protocol_version"   // Bad protocol version identification
	ActionAuthTimeout         = "auth_timeout"           // Timeout before authentication for IP
)

// classifyAuth returns the auth record for sshd and PAM messages, or nil
// when the line is not an authentication event.
func classifyAuth(h *header, dst *schemas.Auth) *schemas.Auth {
	var a *schemas.Auth
	switch {
	case h.module != "":
		// Old PAM tag: "sshd(pam_unix)[19939]: authentication failure; ..."
		if strings.HasPrefix(h.module, "pam") {
			a = classifyPAM(dst, h.msg)
		}
	case strings.HasPrefix(h.msg, "pam_"):
		// "pam_unix(sshd:auth): authentication failure; ..."
		if _, rest, ok := strings.Cut(h.msg, "): "); ok {
			a = classifyPAM(dst, rest)
		}
	case h.program == "sshd" || h.program == "sshd-session" || h.program == "sshd-auth":
		a = classifySSHD(dst, h.msg, 0)
	}
	if a == nil {
		return nil
	}
	a.Program = h.program
	a.PID = h.pid
	if a.Count == 0 {
		a.Count = 1
	}
	return a
}

// classifySSHD recognises sshd's own messages; depth guards the
// "message repeated" recursion.
func classifySSHD(dst *schemas.Auth, msg string, depth int) *schemas.Auth {
	msg = strings.TrimPrefix(msg, "error: ")
	word, rest := cutWord(msg)
	switch word {
	case "Failed", "Accepted", "Postponed":
		return loginAttempt(dst, word, rest)
	case "Invalid", "Illegal":
		// Invalid user U from IP [port P]
		if r, ok := strings.CutPrefix(rest, "user "); ok {
			a := newAuth(dst, ActionInvalidUser, schemas.OutcomeFailure)
			if !userFromAddr(a, r) {
				return nil
			}
			return a
		}
	case "input_userauth_request:":
		if r, ok := strings.CutPrefix(rest, "invalid user "); ok {
			a := newAuth(dst, ActionInvalidUserRequest, schemas.OutcomeFailure)
			a.User = trimPreauth(r)
			return a
		}
	case "Connection":
		switch {
		case strings.HasPrefix(rest, "closed by "):
			return byUserAddr(dst, ActionConnectionClosed, rest[len("closed by "):])
		case strings.HasPrefix(rest, "reset by "):
			return byUserAddr(dst, ActionConnectionReset, rest[len("reset by "):])
		case strings.HasPrefix(rest, "from "):
			a := newAuth(dst, ActionConnectionOpened, schemas.OutcomeUnknown)
			if !addrPort(a, rest[len("from "):]) {
				return nil
			}
			return a
		}
	case "Disconnected":
		if r, ok := strings.CutPrefix(rest, "from "); ok {
			return byUserAddr(dst, ActionDisconnected, r)
		}
	case "Received":
		// Received disconnect from IP[ port P]: 11: Bye Bye [preauth]
		if r, ok := strings.CutPrefix(rest, "disconnect from "); ok {
			addr, reason, _ := strings.Cut(r, ": ")
			a := newAuth(dst, ActionDisconnect, schemas.OutcomeUnknown)
			if !addrPort(a, addr) {
				return nil
			}
			if _, text, ok := strings.Cut(reason, ": "); ok {
				reason = text
			}
			a.Reason = trimPreauth(reason)
			return a
		}
	case "Did":
		if r, ok := strings.CutPrefix(rest, "not receive identification string from "); ok {
			a := newAuth(dst, ActionNoIdentification, schemas.OutcomeFailure)
			if !addrPort(a, trimPreauth(r)) {
				return nil
			}
			return a
		}
	case "reverse":
		// reverse mapping checking getaddrinfo for HOST [IP] failed - POSSIBLE BREAK-IN ATTEMPT!
		if r, ok := strings.CutPrefix(rest, "mapping checking getaddrinfo for "); ok {
			host, r, _ := strings.Cut(r, " [")
			ip, _, ok := strings.Cut(r, "]")
			if !ok || !isIP(ip) {
				return nil
			}
			a := newAuth(dst, ActionReverseMapping, schemas.OutcomeUnknown)
			a.SourceIP = ip
			a.SourceDomain = host
			a.Reason = "POSSIBLE BREAK-IN ATTEMPT"
			return a
		}
	case "Address":
		// Address IP maps to HOST, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!
		ip, r := cutWord(rest)
		if host, ok := strings.CutPrefix(r, "maps to "); ok && isIP(ip) && strings.HasSuffix(r, "POSSIBLE BREAK-IN ATTEMPT!") {
			host, _, _ = strings.Cut(host, ",")
			a := newAuth(dst, ActionReverseMapping, schemas.OutcomeUnknown)
			a.SourceIP = ip
			a.SourceDomain = host
			a.Reason = "POSSIBLE BREAK-IN ATTEMPT"
			return a
		}
	case "maximum":
		// maximum authentication attempts exceeded for [invalid user ]U from IP port P ssh2 [preauth]
		if r, ok := strings.CutPrefix(rest, "authentication attempts exceeded for "); ok {
			a := newAuth(dst, ActionMaxAuthAttempts, schemas.OutcomeFailure)
			if r2, ok := strings.CutPrefix(r, "invalid user "); ok {
				r, a.Reason = r2, "invalid user"
			}
			if !userFromAddr(a, r) {
				return nil
			}
			return a
		}
	case "Disconnecting:":
		// Disconnecting: Too many authentication failures for U [preauth]
		if r, ok := strings.CutPrefix(rest, "Too many authentication failures"); ok {
			a := newAuth(dst, ActionTooManyAuthFailures, schemas.OutcomeFailure)
			if u, ok := strings.CutPrefix(r, " for "); ok {
				u = trimPreauth(u)
				u = strings.TrimPrefix(u, "invalid user ")
				a.User = u
			}
			return a
		}
	case "Disconnecting":
		// Disconnecting authenticating user U IP port P: Too many authentication failures [preauth]
		head, reason, ok := strings.Cut(rest, ": ")
		if ok && strings.HasPrefix(reason, "Too many authentication failures") {
			a := byUserAddr(dst, ActionTooManyAuthFailures, head)
			if a != nil {
				a.Outcome = schemas.OutcomeFailure
			}
			return a
		}
	case "PAM":
		// PAM 4 more authentication failures; logname= uid=0 ... rhost=H user=U
		n, r := cutWord(rest)
		if cnt, ok := atoiPos(n); ok && strings.HasPrefix(r, "more authentication failure") {
			a := newAuth(dst, ActionAuthFailure, schemas.OutcomeFailure)
			a.Count = cnt
			pamKV(a, r)
			return a
		}
		if strings.HasPrefix(rest, "service(") && strings.Contains(rest, "ignoring max retries") {
			_, reason, _ := strings.Cut(rest, "; ")
			a := newAuth(dst, ActionMaxRetriesIgnored, schemas.OutcomeUnknown)
			a.Reason = reason
			return a
		}
	case "PAM:":
		if r, ok := strings.CutPrefix(rest, "Authentication failure for "); ok {
			a := newAuth(dst, ActionAuthFailure, schemas.OutcomeFailure)
			if r2, ok := strings.CutPrefix(r, "illegal user "); ok {
				r, a.Reason = r2, "invalid user"
			} else if r2, ok := strings.CutPrefix(r, "invalid user "); ok {
				r, a.Reason = r2, "invalid user"
			}
			if !userFromAddr(a, r) {
				return nil
			}
			return a
		}
	case "User":
		// User U from IP not allowed because not listed in AllowUsers
		head, because, ok := strings.Cut(rest, " not allowed because ")
		if ok {
			a := newAuth(dst, ActionUserNotAllowed, schemas.OutcomeFailure)
			a.Reason = trimPreauth(because)
			if !userFromAddr(a, head) {
				return nil
			}
			return a
		}
	case "Unable":
		if r, ok := strings.CutPrefix(rest, "to negotiate with "); ok {
			addr, reason, _ := strings.Cut(r, ": ")
			a := newAuth(dst, ActionNegotiationFailed, schemas.OutcomeFailure)
			a.Reason = trimPreauth(reason)
			if !addrPort(a, addr) {
				return nil
			}
			return a
		}
	case "Bad":
		if r, ok := strings.CutPrefix(rest, "protocol version identification "); ok {
			i := strings.LastIndex(r, " from ")
			if i < 0 {
				return nil
			}
			a := newAuth(dst, ActionBadProtocol, schemas.OutcomeFailure)
			if !addrPort(a, r[i+len(" from "):]) {
				return nil
			}
			return a
		}
	case "Timeout":
		if r, ok := strings.CutPrefix(rest, "before authentication for "); ok {
			a := newAuth(dst, ActionAuthTimeout, schemas.OutcomeFailure)
			if !addrPort(a, r) {
				return nil
			}
			return a
		}
	case "message":
		// message repeated N times: [ inner]
		if depth > 0 {
			return nil
		}
		r, ok := strings.CutPrefix(rest, "repeated ")
		if !ok {
			return nil
		}
		n, r := cutWord(r)
		cnt, ok := atoiPos(n)
		if !ok {
			return nil
		}
		r, ok = strings.CutPrefix(r, "times: [")
		if !ok {
			return nil
		}
		inner := strings.TrimSuffix(strings.TrimLeft(r, " "), "]")
		a := classifySSHD(dst, inner, depth+1)
		if a == nil {
			if a = classifyPAMPrefixed(dst, inner); a == nil {
				return nil
			}
		}
		if a.Count <= 1 {
			a.Count = cnt
		} else {
			a.Count *= cnt
		}
		return a
	case "pam_unix(sshd:auth):", "pam_unix(sshd:session):":
		return classifyPAM(dst, rest)
	}
	return nil
}

func classifyPAMPrefixed(dst *schemas.Auth, msg string) *schemas.Auth {
	if !strings.HasPrefix(msg, "pam_") {
		return nil
	}
	if _, rest, ok := strings.Cut(msg, "): "); ok {
		return classifyPAM(dst, rest)
	}
	return nil
}

// loginAttempt parses "METHOD for [invalid user ]U from ADDR port P ssh2..."
// after Failed/Accepted/Postponed.
func loginAttempt(dst *schemas.Auth, verb, rest string) *schemas.Auth {
	method, rest := cutWord(rest)
	rest, ok := strings.CutPrefix(rest, "for ")
	if !ok || method == "" {
		return nil
	}
	a := newAuth(dst, ActionSSHLogin, "")
	switch verb {
	case "Failed":
		a.Outcome = schemas.OutcomeFailure
	case "Accepted":
		a.Outcome = schemas.OutcomeSuccess
	default:
		a.Outcome = schemas.OutcomeUnknown
	}
	if m, _, ok := strings.Cut(method, "/"); ok {
		method = m // keyboard-interactive/pam
	}
	a.Method = method
	if r, ok := strings.CutPrefix(rest, "invalid user "); ok {
		rest, a.Reason = r, "invalid user"
	} else if r, ok := strings.CutPrefix(rest, "illegal user "); ok {
		rest, a.Reason = r, "invalid user"
	}
	if !userFromAddr(a, rest) {
		return nil
	}
	return a
}

// userFromAddr parses "U from ADDR[ port P][ ...]" into a. The last " from "
// is the separator, so a user name containing " from " still parses.
func userFromAddr(a *schemas.Auth, s string) bool {
	i := strings.LastIndex(s, " from ")
	if i < 0 {
		if r, ok := strings.CutPrefix(s, "from "); ok { // empty user name
			return addrPort(a, r)
		}
		return false
	}
	a.User = s[:i]
	return addrPort(a, s[i+len(" from "):])
}

// addrPort parses "ADDR[ port P][ rest]" (or "ADDR:" endings) into the
// source address; a host name goes to source_domain.
func addrPort(a *schemas.Auth, s string) bool {
	addr, rest := cutWord(strings.TrimRight(s, " "))
	addr = strings.TrimSuffix(addr, ":")
	if addr == "" {
		return false
	}
	setSource(a, addr)
	if r, ok := strings.CutPrefix(rest, "port "); ok {
		pw, _ := cutWord(r)
		if i := strings.IndexByte(pw, ':'); i >= 0 {
			pw = pw[:i] // "port 4006:11: reason"
		}
		pw = strings.TrimRight(pw, ".,")
		if p, ok := port(pw); ok {
			a.SourcePort = p
		}
	}
	return true
}

// byUserAddr parses "[authenticating user U |invalid user U |user U ]ADDR
// [port P] [preauth]" for connection closed/reset/disconnected.
func byUserAddr(dst *schemas.Auth, action, s string) *schemas.Auth {
	a := newAuth(dst, action, schemas.OutcomeUnknown)
	for _, p := range [...]string{"authenticating user ", "invalid user ", "user "} {
		if r, ok := strings.CutPrefix(s, p); ok {
			u, r2 := cutWord(r)
			a.User, s = u, r2
			if p == "invalid user " {
				a.Reason = "invalid user"
			}
			break
		}
	}
	if !addrPort(a, trimPreauth(s)) {
		return nil
	}
	return a
}

func setSource(a *schemas.Auth, host string) {
	if isIP(host) {
		a.SourceIP = host
	} else {
		a.SourceDomain = host
	}
}

// classifyPAM recognises pam_unix messages (after the module prefix).
func classifyPAM(dst *schemas.Auth, msg string) *schemas.Auth {
	switch {
	case strings.HasPrefix(msg, "authentication failure;"):
		a := newAuth(dst, ActionAuthFailure, schemas.OutcomeFailure)
		pamKV(a, msg)
		return a
	case strings.HasPrefix(msg, "check pass; user unknown"):
		a := newAuth(dst, ActionUserUnknown, schemas.OutcomeFailure)
		a.Reason = "user unknown"
		return a
	case strings.HasPrefix(msg, "session opened for user "):
		u, _ := cutWord(msg[len("session opened for user "):])
		u, _, _ = strings.Cut(u, "(") // newer PAM: "user(uid=0)"
		a := newAuth(dst, ActionSessionOpened, schemas.OutcomeSuccess)
		a.User = u
		return a
	case strings.HasPrefix(msg, "session closed for user "):
		u, _ := cutWord(msg[len("session closed for user "):])
		a := newAuth(dst, ActionSessionClosed, schemas.OutcomeSuccess)
		a.User = strings.TrimSpace(u)
		return a
	}
	return nil
}

// pamKV reads rhost= and user= from "... ruser= rhost=H  user=U".
func pamKV(a *schemas.Auth, s string) {
	if v, ok := kvValue(s, "rhost="); ok && v != "" {
		setSource(a, v)
	}
	if v, ok := kvValue(s, "user="); ok {
		a.User = v
	}
}

// kvValue returns the value of key (which ends in '=') when key starts a
// space-separated token of s.
func kvValue(s, key string) (string, bool) {
	for i := 0; ; {
		j := strings.Index(s[i:], key)
		if j < 0 {
			return "", false
		}
		j += i
		if j == 0 || s[j-1] == ' ' || s[j-1] == ';' {
			v, _ := cutWord(s[j+len(key):])
			return v, true
		}
		i = j + len(key)
	}
}

// newAuth returns dst cleared (ParseInto's reused record) or, when dst is
// nil, a new record, with its action and outcome set.
func newAuth(dst *schemas.Auth, action, outcome string) *schemas.Auth {
	if dst == nil {
		dst = new(schemas.Auth)
	} else {
		*dst = schemas.Auth{}
	}
	dst.Action, dst.Outcome = action, outcome
	return dst
}
