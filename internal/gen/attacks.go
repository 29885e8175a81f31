package gen

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"
)

// instance is one attack in progress: its planned lines (sorted by due
// time) and what has been emitted of it so far.
type instance struct {
	kind   Attack
	seq    int // instance number within its kind
	id     int // instance number within the run, from 1
	events []attackEvent
	next   int
	key    string
	users  []string

	hits        []hit
	first, last int64
	count       int
}

// attackEvent is one planned line of an attack.
type attackEvent struct {
	due          int64
	kind         lineKind
	src, dst     uint32
	sport, dport uint16
	user         uint8 // index into instance.users
	x            uint16
	sig          *signature
}

func (in *instance) due() int64 {
	if in.next < len(in.events) {
		return in.events[in.next].due
	}
	return math.MaxInt64
}

// Skip is an attack instance that was planned but not generated, or
// generated without reaching its rule's threshold.
type Skip struct {
	Attack Attack
	At     time.Time
	Reason string
}

// activate starts every attack instance whose start time has come.
func (g *Generator) activate(t int64) {
	for k, kind := range g.kinds {
		for g.nextStart[k] <= t {
			at := g.nextStart[k]
			seq := g.nextSeq[k]
			g.nextSeq[k]++
			g.nextStart[k] += int64(g.o.AttackEvery)
			if g.nextStart[k] >= g.endNs || g.nextStart[k] < at {
				g.nextStart[k] = math.MaxInt64
			}
			in, reason := g.plan(kind, seq, at)
			if in == nil {
				g.skip(kind, at, reason)
				continue
			}
			g.nInst++
			in.id = g.nInst
			g.active = append(g.active, in)
			g.attackDue = min(g.attackDue, in.due())
		}
	}
}

func (g *Generator) skip(kind Attack, at int64, reason string) {
	g.skipAt(slog.LevelWarn, kind, at, reason)
}

// skipAt records a skipped instance and logs it at level: an instance the
// end of the run cuts short is expected (every stopped run has some) and
// is only information; one that could not be planned or never reached its
// threshold points at a rate or intensity too low for the rules.
func (g *Generator) skipAt(level slog.Level, kind Attack, at int64, reason string) {
	when := time.Unix(0, at).UTC()
	g.truth.Skipped = append(g.truth.Skipped, Skip{Attack: kind, At: when, Reason: reason})
	g.o.Logger.Log(context.Background(), level, "attack instance skipped", "attack", kind.String(), "at", when, "reason", reason)
}

func (g *Generator) allocAttackIP() uint32 {
	n := g.attackIPs
	g.attackIPs++
	return netAttack | uint32(perm(uint64(n)&(1<<17-1), 17, g.o.Seed^0xa7))
}

// scaled returns nominal*Intensity, never below floor.
func (g *Generator) scaled(nominal, floor int) int {
	return max(floor, int(math.Round(float64(nominal)*g.o.Intensity)))
}

// plan builds attack instance seq of a kind starting at event time at, or
// says why it cannot fit in the run (too little event time left, or a rate
// too low to carry the attack's lines without smearing them past the
// rule's window).
func (g *Generator) plan(kind Attack, seq int, at int64) (*instance, string) {
	in := &instance{kind: kind, seq: seq}
	avail := g.endNs - at // event time left in the run
	skew := int64(g.o.MaxSkew)
	rate := g.o.Rate
	const sec = int64(time.Second)
	ms := int64(time.Millisecond)
	r := &g.at
	add := func(e attackEvent) { in.events = append(in.events, e) }
	dense := func(n int, span int64) bool { return float64(n) <= 0.5*rate*float64(max(span, sec))/float64(sec) }

	switch kind {
	case SSHBruteforce:
		n := g.scaled(16, 7)
		span := min(12*sec, avail-sec)
		if span < 500*ms {
			return nil, "needs at least 1.5s of event time"
		}
		if !dense(n*2+3, span) {
			return nil, fmt.Sprintf("rate %.0f/s is too low for %d lines in %v", rate, n*2+3, time.Duration(span))
		}
		a := g.allocAttackIP()
		in.key = addrString(a)
		m := 1 + seq%3
		for i := 0; i < m; i++ {
			// Rotating by 3 a list of 12 reuses a user every 4th
			// instance: far from 10 IPs per user in 5 minutes.
			in.users = append(in.users, bruteUsers[(3*seq+i)%len(bruteUsers)])
		}
		srv := uint32(sshServer0 + r.intn(4))
		port := uint16(40000 + r.intn(20000))
		add(attackEvent{due: at, kind: lkAlert, src: a, sport: port, dst: srv, dport: 22, sig: &sigSSHScan})
		step := span / int64(n)
		for i := 0; i < n; i++ {
			if i%3 == 0 {
				port = uint16(40000 + r.intn(20000))
			}
			due := at + 100*ms + int64(i)*step
			u := uint8(i % m)
			if in.users[u] == "root" {
				add(attackEvent{due: due, kind: lkFailed, src: a, sport: port, dst: srv, user: u})
			} else {
				add(attackEvent{due: due, kind: lkInvalidUser, src: a, sport: port, dst: srv, user: u})
				add(attackEvent{due: due + ms, kind: lkFailedInvalid, src: a, sport: port, dst: srv, user: u})
			}
			if i%3 == 2 || i == n-1 {
				add(attackEvent{due: due + 2*ms, kind: lkConnClosed, src: a, sport: port, dst: srv})
			}
		}

	case PasswordSpraying:
		// One try per user, spaced so no 60 s window holds 5 failures
		// even after skew: this trips password_spraying only.
		spacing := 15*sec + skew + 500*ms
		maxUsers := int((285*sec-skew-10*sec)/spacing) + 1
		n := min(g.scaled(10, 9), maxUsers)
		if n < 9 {
			return nil, "max skew too large to spread 9 tries over 5 minutes"
		}
		span := int64(n-1) * spacing
		if avail < span+sec {
			return nil, fmt.Sprintf("needs %v of event time, %v left", time.Duration(span+sec), time.Duration(avail))
		}
		a := g.allocAttackIP()
		in.key = addrString(a)
		srv := uint32(sshServer0 + r.intn(4))
		for i := 0; i < n; i++ {
			in.users = append(in.users, sprayUsers[(seq*n+i)%len(sprayUsers)])
			add(attackEvent{due: at + int64(i)*spacing, kind: lkFailed, src: a, sport: uint16(40000 + r.intn(20000)), dst: srv, user: uint8(i)})
		}

	case DistributedBruteforce:
		ips := g.scaled(12, 11)
		span := min(8*sec, avail-sec)
		if span < 500*ms {
			return nil, "needs at least 1.5s of event time"
		}
		if !dense(ips*2, span) {
			return nil, fmt.Sprintf("rate %.0f/s is too low for %d lines in %v", rate, ips*2, time.Duration(span))
		}
		target := distTargets[seq%len(distTargets)]
		if c := seq / len(distTargets); c > 0 {
			target += strconv.Itoa(c + 1)
		}
		in.users = []string{target}
		in.key = target
		srv := uint32(sshServer0 + r.intn(4))
		type try struct {
			ip   uint32
			port uint16
		}
		var tries []try
		for i := 0; i < ips; i++ {
			ip := g.allocAttackIP()
			for k := 0; k < 1+r.intn(2); k++ {
				tries = append(tries, try{ip, uint16(40000 + r.intn(20000))})
			}
		}
		// Interleave the IPs' tries as a botnet would.
		for i := len(tries) - 1; i > 0; i-- {
			j := r.intn(i + 1)
			tries[i], tries[j] = tries[j], tries[i]
		}
		step := span / int64(len(tries))
		for i, t := range tries {
			add(attackEvent{due: at + int64(i)*step, kind: lkFailed, src: t.ip, sport: t.port, dst: srv})
		}

	case PortScan:
		n := g.scaled(30, 22)
		span := min(4*sec, 8*sec-skew, avail-500*ms)
		if span < 200*ms {
			return nil, "needs at least 0.7s of event time and a max skew under 7.8s"
		}
		if !dense(n+3, span) {
			return nil, fmt.Sprintf("rate %.0f/s is too low for %d lines in %v", rate, n+3, time.Duration(span))
		}
		a := g.allocAttackIP()
		in.key = addrString(a)
		dst := g.nextDst()
		ports := make([]uint16, 0, n)
		seen := map[uint16]bool{}
		for _, p := range scanPorts {
			if len(ports) == n {
				break
			}
			ports = append(ports, p)
			seen[p] = true
		}
		for len(ports) < n {
			p := uint16(1 + r.intn(65535))
			if !seen[p] && p != 80 && p != 443 {
				seen[p] = true
				ports = append(ports, p)
			}
		}
		for i := len(ports) - 1; i > 0; i-- {
			j := r.intn(i + 1)
			ports[i], ports[j] = ports[j], ports[i]
		}
		sport := uint16(40000 + r.intn(20000))
		add(attackEvent{due: at, kind: lkAlert, src: a, sport: sport, dst: dst, dport: ports[0], sig: &sigNmapSYN})
		step := span / int64(n+2)
		for i, p := range ports {
			add(attackEvent{due: at + int64(i+1)*step, kind: lkFwBlock, src: a, sport: sport, dst: dst, dport: p})
		}
		// The open web ports answer: allowed, so they do not count.
		add(attackEvent{due: at + int64(n+1)*step, kind: lkFwAllow, src: a, sport: sport, dst: dst, dport: 80})
		add(attackEvent{due: at + int64(n+1)*step + ms, kind: lkFwAllow, src: a, sport: sport, dst: dst, dport: 443})

	case WebScan:
		n := g.scaled(70, 55)
		span := min(20*sec, avail-sec, 50*sec-skew)
		if span < 500*ms {
			return nil, "needs at least 1.5s of event time"
		}
		if !dense(n+1, span) {
			return nil, fmt.Sprintf("rate %.0f/s is too low for %d lines in %v", rate, n+1, time.Duration(span))
		}
		a := g.allocAttackIP()
		in.key = addrString(a)
		ua := uint16(seq % len(scanUAs))
		add(attackEvent{due: at, kind: lkAlert, src: a, sport: uint16(40000 + r.intn(20000)), dst: ipWebHost, dport: 80, sig: &sigNikto})
		step := span / int64(n)
		off := r.intn(len(scanPaths))
		for i := 0; i < n; i++ {
			// x: path index (+1; 0 means "/"), status packed in user.
			e := attackEvent{due: at + 10*ms + int64(i)*step, kind: lkWeb, src: a, x: ua, dst: ipWebHost}
			switch i {
			case 0:
				e.dport = 0 // "/" exists: 200
			default:
				e.dport = uint16(1 + (off+i)%len(scanPaths))
			}
			add(e)
		}

	case DDoS:
		n := g.scaled(2600, 2200)
		span := min(5*sec, 8*sec-skew, avail-500*ms)
		if span < 200*ms {
			return nil, "needs at least 0.7s of event time and a max skew under 7.8s"
		}
		if !dense(n, span) {
			return nil, fmt.Sprintf("rate %.0f/s is too low for %d lines in %v", rate, n, time.Duration(span))
		}
		target := uint32(netTargets | uint32(seq/250)<<8 | uint32(seq%250+2))
		in.key = addrString(target)
		srcs := make([]uint32, n/6+1)
		for i := range srcs {
			srcs[i] = netFWSrc | uint32(r.next()>>40)&(1<<22-1)
		}
		step := span / int64(n)
		for i := 0; i < n; i++ {
			src := srcs[i%len(srcs)]
			add(attackEvent{due: at + int64(i)*step, kind: lkFwAllow, src: src, sport: uint16(1024 + mix(uint64(src))%60000 + uint64(i/len(srcs))), dst: target, dport: 443})
		}

	case IDSThenLogin:
		gap := max(2*skew+sec, min(20*sec, avail-1500*ms-10*ms))
		if sec+gap+10*ms+500*ms > avail {
			return nil, "needs 2 x max skew + 2.5s of event time"
		}
		a := g.allocAttackIP()
		in.key = addrString(a)
		in.users = []string{loginUsers[seq%len(loginUsers)]}
		srv := uint32(sshServer0 + r.intn(4))
		add(attackEvent{due: at, kind: lkAlert, src: a, sport: uint16(40000 + r.intn(20000)), dst: srv, dport: 22, sig: &sigSSHScan})
		add(attackEvent{due: at + sec, kind: lkAlert, src: a, sport: uint16(40000 + r.intn(20000)), dst: srv, dport: 22, sig: &sigSSHLibssh})
		port := uint16(40000 + r.intn(20000))
		add(attackEvent{due: at + sec + gap, kind: lkAcceptedPassword, src: a, sport: port, dst: srv})
		add(attackEvent{due: at + sec + gap + 10*ms, kind: lkSessOpened, src: a, sport: port, dst: srv})
	}
	slices.SortStableFunc(in.events, func(x, y attackEvent) int {
		switch {
		case x.due < y.due:
			return -1
		case x.due > y.due:
			return 1
		}
		return 0
	})
	return in, ""
}

// attackEvent writes the most overdue attack line into g.spec.
func (g *Generator) attackEvent(t int64) {
	var in *instance
	for _, c := range g.active {
		if in == nil || c.due() < in.due() {
			in = c
		}
	}
	e := &in.events[in.next]
	in.next++
	s := &g.spec
	s.inst = in
	s.kind = e.kind
	s.src, s.dst, s.sport, s.dport = e.src, e.dst, e.sport, e.dport
	s.sig = e.sig
	r := &g.at
	switch e.kind.dataset() {
	case Auth:
		if len(in.users) > 0 {
			s.user = append(g.user[:0], in.users[e.user]...)
			g.user = s.user
		}
		s.host = sshHosts[(e.dst-sshServer0)%uint32(len(sshHosts))]
		s.pid = 1000 + int(mix(uint64(e.src)^uint64(e.sport))%64000)
		s.fp = mix(uint64(e.src))
		s.dst, s.dport = 0, 0
	case Firewall:
		s.host = fwHosts[e.dst&3]
		s.ttl = 44 + r.intn(20)
		s.ipid = r.intn(65536)
		s.length = 44
	case IDS:
		g.flowIDs++
		s.flowID = mix(g.flowIDs^g.o.Seed^0xf10) >> 13
	case Web:
		s.method, s.ref, s.ua = "GET", "-", scanUAs[e.x]
		s.durMs = r.intn(30)
		if e.dport == 0 {
			s.path, s.status, s.bytes = "/", 200, 5320
		} else {
			s.path = scanPaths[e.dport-1]
			s.status, s.bytes = 404, 153+r.intn(40)
			if s.path == "/.htaccess" || s.path == "/server-status" {
				s.status, s.bytes = 403, 199
			}
		}
		s.dst, s.dport = 0, 0
	}
	if in.next == len(in.events) {
		g.active = slices.DeleteFunc(g.active, func(c *instance) bool { return c == in })
		g.pendingClose = append(g.pendingClose, in)
	}
	g.attackDue = math.MaxInt64
	for _, c := range g.active {
		g.attackDue = min(g.attackDue, c.due())
	}
}

// recordAttack notes an emitted attack line for the instance's truth, and
// closes instances whose last line has been emitted.
func (g *Generator) recordAttack(in *instance, l *Line) {
	ts := l.EventTime.UnixNano()
	if in.count == 0 || ts < in.first {
		in.first = ts
	}
	if in.count == 0 || ts > in.last {
		in.last = ts
	}
	in.count++
	if ok, v := ruleHit(in.kind, l.Dataset, &l.Meaning); ok {
		in.hits = append(in.hits, hit{t: ts, v: v})
	}
	for _, c := range g.pendingClose {
		g.closeInstance(c, false)
	}
	g.pendingClose = g.pendingClose[:0]
}

// closeInstance turns a finished instance, or one the end of the run cut
// short (cut), into its truth record, if it reached its rule's threshold.
func (g *Generator) closeInstance(in *instance, cut bool) {
	if in.count == 0 {
		return
	}
	slices.SortFunc(in.hits, func(a, b hit) int {
		switch {
		case a.t != b.t:
			if a.t < b.t {
				return -1
			}
			return 1
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	rule := RuleFor(in.kind)
	at, ok := crossing(rule, in.hits)
	if !ok {
		if cut {
			g.skipAt(slog.LevelInfo, in.kind, in.first, fmt.Sprintf("instance %d was cut short by the end of the run before it reached the %s threshold", in.id, rule.ID))
		} else {
			g.skip(in.kind, in.first, fmt.Sprintf("instance %d ended without reaching the %s threshold (rate or intensity too low)", in.id, rule.ID))
		}
		return
	}
	ms := int64(time.Millisecond)
	g.truth.Records = append(g.truth.Records, TruthRecord{
		Attack:             in.kind.String(),
		Rule:               rule.ID,
		Key:                in.key,
		Start:              time.Unix(0, floorDiv(in.first, ms)*ms).UTC(),
		End:                time.Unix(0, floorDiv(in.last, ms)*ms).UTC(),
		Events:             in.count,
		Dataset:            rule.Dataset.String(),
		ThresholdCrossedAt: time.Unix(0, floorDiv(at, ms)*ms).UTC(),
		Instance:           in.id,
	})
	in.events, in.hits = nil, nil
}

func addrString(ip uint32) string { return addr(ip).String() }
