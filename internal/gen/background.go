package gen

// background writes one fresh benign event for slot time t into g.spec.
//
// Why it can never trip a default detection (docs/gen.md has the numbers):
//   - auth: a user always logs in from one home IP, users are walked by a
//     permutation of a pool sized so a user starts at most about one session
//     a minute, and only every 16th round of a password user is a mistype
//     (one failure, then success 4 s later): at most one failure per user
//     and IP per 5 minutes, one user per IP, one IP per user.
//   - preauth noise comes from scanner IPs walked the same way, never logs
//     in, and carries no outcome.
//   - firewall: denied packets only hit 8 ports, so no source reaches 20
//     distinct denied ports; destinations are walked by a permutation of a
//     pool sized for at most ~200 packets per destination per 10 s.
//   - web: clients are walked so each makes about one request a minute, and
//     only every 32nd round of a client is a 4xx.
//   - ids: alerts come only from scanner IPs, which never log in.
func (g *Generator) background(t int64) {
	u := g.bg.intn(perMille)
	switch {
	case u < shareSession:
		g.newSession(t)
	case u < shareSession+shareNoise:
		g.preauthNoise()
	case u < shareSession+shareNoise+shareFW:
		g.firewallPacket()
	case u < shareSession+shareNoise+shareFW+shareWeb:
		g.webRequest()
	default:
		g.idsRecord()
	}
}

func (g *Generator) sessionSpec(kind lineKind, c uint64) {
	s := &g.spec
	k, _ := g.userOf(c)
	s.kind = kind
	s.src = g.userIP(k)
	s.sport = sessionPort(c, g.o.Seed)
	s.pid = sessionPid(c, g.o.Seed)
	s.host = sshHosts[mix(k^0x5eed)%uint64(len(sshHosts))]
	s.user = g.userName(k)
	s.fp = mix(k ^ g.o.Seed)
}

// newSession starts auth session c: a login (after a mistype for a few
// password users), its PAM session line right after, and the close of the
// session that started closeLag sessions ago.
func (g *Generator) newSession(t int64) {
	c := g.sessions
	g.sessions++
	k, round := g.userOf(c)
	password := !usesKey(k)
	switch {
	case password && (round+k)&15 == 0:
		g.sessionSpec(lkFailed, c)
		g.retry.push(pending{due: t + int64(retryDelay), kind: lkAcceptedPassword, session: c})
	case password:
		g.sessionSpec(lkAcceptedPassword, c)
		g.imm.push(pending{due: t, kind: lkSessOpened, session: c})
	default:
		g.sessionSpec(lkAcceptedKey, c)
		g.imm.push(pending{due: t, kind: lkSessOpened, session: c})
	}
	if c >= g.pools.closeLag {
		old := c - g.pools.closeLag
		g.imm.push(pending{due: t, kind: lkRecvDisconnect, session: old})
		g.imm.push(pending{due: t, kind: lkDisconnected, session: old})
		g.imm.push(pending{due: t, kind: lkSessClosed, session: old})
	}
}

// followUp writes a queued line of an earlier session.
func (g *Generator) followUp(p pending, t int64) {
	g.sessionSpec(p.kind, p.session)
	if p.kind == lkAcceptedPassword {
		g.imm.push(pending{due: t, kind: lkSessOpened, session: p.session})
	}
}

func (g *Generator) preauthNoise() {
	s := &g.spec
	n := g.noise
	g.noise++
	b := g.pools.noiseBits
	s.kind = lkConnClosed
	s.src = netScanners | uint32(perm(n&(1<<b-1), b, g.o.Seed^0x3c))
	s.sport = uint16(1024 + g.bg.intn(64511))
	s.pid = 1000 + g.bg.intn(64000)
	s.host = sshHosts[g.bg.intn(len(sshHosts))]
}

func (g *Generator) nextDst() uint32 {
	c := g.fwPkts
	g.fwPkts++
	b := g.pools.dstBits
	return netDst | uint32(perm(c&(1<<b-1), b, g.o.Seed^0xd5))
}

func (g *Generator) firewallPacket() {
	s := &g.spec
	r := g.bg.next()
	s.src = netFWSrc | uint32(r>>40)&(1<<22-1)
	s.dst = g.nextDst()
	s.sport = uint16(32768 + (r>>8)%28232)
	s.host = fwHosts[r&3]
	s.ttl = 40 + int(r>>20)%24
	s.ipid = int(r>>24) & 0xffff
	s.length = 60
	if r>>4&3 == 0 { // a quarter is blocked, on 8 ports only
		s.kind = lkFwBlock
		s.dport = blockedPorts[(r>>32)&7]
		s.length = 40 + int(r>>16)%4*4
		return
	}
	s.kind = lkFwAllow
	svc := &services[(r>>32)%uint64(len(services))]
	s.dport, s.udp = svc.port, svc.udp
	if s.udp {
		s.length = 48 + int(r>>16)%64
	}
}

func (g *Generator) webRequest() {
	s := &g.spec
	c := g.webReqs
	g.webReqs++
	b := g.pools.webBits
	w := perm(c&(1<<b-1), b, g.o.Seed^0xeb)
	round := c >> b
	r := g.bg.next()
	s.kind = lkWeb
	s.src = netWeb | uint32(w)
	s.sport = 0
	s.ua = userAgents[mix(w)%uint64(len(userAgents))]
	s.flowID = r >> 20
	s.durMs = int(r>>8) % 180
	s.method = "GET"
	if (round+w)&31 == 0 {
		p := &missingPaths[(r>>40)%uint64(len(missingPaths))]
		s.path, s.status, s.bytes, s.ref = p.path, p.status, 150+int(r>>48)%300, "-"
		return
	}
	p := &sitePaths[(r>>40)%uint64(len(sitePaths))]
	s.path, s.query, s.method, s.status, s.bytes = p.path, p.query, p.method, p.status, p.bytes+int(r>>48)%512
	if p.status == 304 {
		s.bytes = 0
	}
	s.ref = "-"
	if p.asset {
		s.ref = "https://www.example.com/"
	}
}

func (g *Generator) idsRecord() {
	s := &g.spec
	r := g.bg.next()
	g.flowIDs++
	s.flowID = mix(g.flowIDs^g.o.Seed^0xf10) >> 13
	if r%20 < 12 { // alert, from internet scanners only
		s.kind = lkAlert
		s.sig = &bgSignatures[(r>>8)%uint64(len(bgSignatures))]
		s.src = netScanners | uint32(r>>40)&(1<<20-1)
		s.sport = uint16(1024 + (r>>16)%64511)
		s.dst = netDst | uint32(r>>20)&(1<<23-1)
		s.dport = s.sig.port
		if s.dport == 0 {
			s.dport = uint16(1 + (r>>28)%1024)
		}
		return
	}
	// A flow summary, counted against its destination like a packet.
	s.kind = lkFlow
	s.src = netFWSrc | uint32(r>>40)&(1<<22-1)
	s.sport = uint16(32768 + (r>>16)%28232)
	s.dst = g.nextDst()
	s.dport = 443
}
