package gen

import (
	"math"
	"net/netip"
	"time"
)

// Generator produces the stream. It is not safe for concurrent use.
type Generator struct {
	o       Options
	total   int64 // events, -1 unbounded
	startNs int64
	endNs   int64 // event time of the slot after the last, MaxInt64 unbounded
	i       int64 // next slot

	bg, sk, at rng // background, skew and attack streams

	pools pools

	sessions uint64 // auth sessions started
	webReqs  uint64
	fwPkts   uint64 // firewall packets and ids flows (destination walk)
	noise    uint64 // scanner connection noise on auth
	flowIDs  uint64

	imm   fifo // follow-ups due at once
	retry fifo // a mistyping user's second, successful try

	kinds     []Attack
	nextStart []int64
	nextSeq   []int
	active    []*instance
	attackDue int64
	// pendingClose holds instances whose last line is being emitted.
	pendingClose []*instance
	nInst        int
	attackIPs    uint32

	truth Truth

	spec spec
	val  []byte
	key  []byte
	user []byte
	path []byte
	// offsets of the user and path in val, set while rendering
	userAt, pathAt int
	tc             civil // cached calendar second of the line being written
	tc2            civil // second cache for EVE flow start/end times
	line           Line
	done           bool
}

// pools holds the sizes (as bit counts) of the permuted address and user
// pools. They scale with the rate so per-key counts stay bounded.
type pools struct {
	userBits, webBits, dstBits, noiseBits uint
	closeLag                              uint64
}

// Shares of background slots (per mille) by kind of new background event.
const (
	shareSession = 45  // auth session: ~5 lines each
	shareNoise   = 10  // scanner connection closed preauth
	shareFW      = 460 // netfilter line
	shareWeb     = 420 // access line
	// the rest (65) are ids records
	perMille = 1000

	retryDelay = 4 * time.Second
	sessionLen = 30 * time.Second
)

// New returns a generator for the options, or an error naming the first
// invalid option.
func New(o Options) (*Generator, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	g := &Generator{
		o:       o,
		total:   o.total(),
		startNs: o.Start.UnixNano(),
		bg:      newRNG(o.Seed, 1),
		sk:      newRNG(o.Seed, 2),
		at:      newRNG(o.Seed, 3),
		kinds:   o.Attacks,
	}
	g.endNs = math.MaxInt64
	if g.total >= 0 {
		g.endNs = g.startNs + slotOffset(g.total, o.Rate)
	}
	lines := 1 + float64(shareSession)/perMille*4
	sessRate := o.Rate * shareSession / perMille / lines
	webRate := o.Rate * shareWeb / perMille / lines
	fwRate := o.Rate * (shareFW + 20) / perMille / lines
	noiseRate := o.Rate * shareNoise / perMille / lines
	g.pools = pools{
		// Each user (one home IP) starts at most one session a minute
		// below the cap, so at most one mistype per 5 minutes.
		userBits: poolBits(sessRate*60, 10, 21),
		// Each web client makes at most about one request a minute.
		webBits: poolBits(webRate*60, 10, 20),
		// Each destination receives at most ~200 packets per 10 s.
		dstBits:   poolBits(fwRate*10/200, 6, 23),
		noiseBits: poolBits(noiseRate*60, 8, 20),
		closeLag:  uint64(math.Max(1, math.Round(sessRate*sessionLen.Seconds()))),
	}
	g.nextStart = make([]int64, len(g.kinds))
	g.nextSeq = make([]int, len(g.kinds))
	for k := range g.kinds {
		g.nextStart[k] = g.startNs + int64(500*time.Millisecond) + int64(k)*int64(150*time.Millisecond)
		if g.nextStart[k] >= g.endNs {
			g.nextStart[k] = math.MaxInt64
		}
	}
	g.attackDue = math.MaxInt64
	g.truth.Total = g.total
	return g, nil
}

// poolBits returns log2 of the power of two at least n, clamped to [lo, hi].
func poolBits(n float64, lo, hi uint) uint {
	b := lo
	for b < hi && float64(uint64(1)<<b) < n {
		b++
	}
	return b
}

// perm is a bijection on [0, 2^bits): an odd multiply and an xorshift,
// keyed by the seed, so pools are walked in a scrambled but exhaustive order.
func perm(x uint64, bits uint, seed uint64) uint64 {
	mask := uint64(1)<<bits - 1
	x = (x*0x9e3779b97f4a7c15 + seed) & mask
	x ^= x >> (bits/2 + 1)
	x = (x * 0xd6e8feb86659fd93) & mask
	return x ^ x>>(bits/2+1)
}

// Total is the number of events the generator emits, -1 when unbounded.
func (g *Generator) Total() int64 { return g.total }

// Options returns the normalized options.
func (g *Generator) Options() Options { return g.o }

// Next generates the next line into l and reports whether there was one.
// The slices in l alias the generator's buffers until the next call.
func (g *Generator) Next(l *Line) bool {
	if g.done {
		return false
	}
	if g.total >= 0 && g.i >= g.total {
		g.finish()
		return false
	}
	t := g.startNs + slotOffset(g.i, g.o.Rate)
	g.activate(t)

	s := &g.spec
	*s = spec{}
	// Earliest due work first: follow-ups, retries, attack events; fresh
	// background traffic only when nothing is due.
	const (
		srcBG = iota
		srcImm
		srcRetry
		srcAttack
	)
	src, best := srcBG, int64(math.MaxInt64)
	if g.imm.n > 0 {
		src, best = srcImm, g.imm.peek().due
	}
	if g.retry.n > 0 && g.retry.peek().due <= t && g.retry.peek().due < best {
		src, best = srcRetry, g.retry.peek().due
	}
	if g.attackDue <= t && g.attackDue < best {
		src = srcAttack
	}
	switch src {
	case srcImm:
		g.followUp(g.imm.pop(), t)
	case srcRetry:
		g.followUp(g.retry.pop(), t)
	case srcAttack:
		g.attackEvent(t)
	default:
		g.background(t)
	}
	s.slot = t
	g.stamp(s)
	g.render(s, l)
	l.Seq = g.i
	g.i++
	g.truth.Events++
	g.truth.PerDataset[l.Dataset]++
	if s.inst != nil {
		g.truth.AttackEvents++
		g.recordAttack(s.inst, l)
	}
	return true
}

// stamp sets the event time: slot time, minus skew, minus LateBy for late
// background events, truncated to the precision the line's format keeps.
func (g *Generator) stamp(s *spec) {
	ts := s.slot
	if g.o.MaxSkew > 0 {
		ts -= int64(g.sk.float() * float64(g.o.MaxSkew))
	}
	if g.o.LateFraction > 0 && s.inst == nil && g.sk.float() < g.o.LateFraction {
		ts -= int64(g.o.LateBy)
		s.late = true
	}
	var unit int64
	switch s.kind.dataset() {
	case IDS:
		unit = int64(time.Microsecond)
	case Web:
		unit = int64(time.Second)
	default:
		unit = int64(time.Millisecond)
	}
	s.ts = floorDiv(ts, unit) * unit
}

// Truth returns the ground truth so far; after Next has returned false it
// is final.
func (g *Generator) Truth() *Truth { return &g.truth }

func (g *Generator) finish() {
	if g.done {
		return
	}
	g.done = true
	for _, in := range g.active {
		g.closeInstance(in, true)
	}
	g.active = nil
	g.truth.sort()
}

// fifo is a ring buffer of follow-ups. Everything pushed to one fifo has
// the same delay, so it stays sorted by due time.
type fifo struct {
	buf     []pending
	head, n int
}

type pending struct {
	due     int64
	kind    lineKind
	session uint64
}

func (f *fifo) push(p pending) {
	if f.n == len(f.buf) {
		nb := make([]pending, max(64, 2*len(f.buf)))
		for i := 0; i < f.n; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.n)%len(f.buf)] = p
	f.n++
}

func (f *fifo) peek() *pending { return &f.buf[f.head] }

func (f *fifo) pop() pending {
	p := f.buf[f.head]
	f.head = (f.head + 1) % len(f.buf)
	f.n--
	return p
}

// Address plan (all reserved ranges, so no real host is named):
// 100.64.0.0/11 users' home IPs, 100.96.0.0/12 web clients, 100.112.0.0/12
// internet scanners (ids alerts, preauth noise), 100.64.0.0/10 firewall
// sources, 10.0.0.0/9 internal destinations, 10.200.0.0/16 named servers,
// 10.201.0.0/16 ddos targets, 198.18.0.0/15 attackers.
const (
	netUsers    = 100<<24 | 64<<16
	netWeb      = 100<<24 | 96<<16
	netScanners = 100<<24 | 112<<16
	netFWSrc    = 100<<24 | 64<<16
	netDst      = 10 << 24
	netServers  = 10<<24 | 200<<16
	netTargets  = 10<<24 | 201<<16
	netAttack   = 198<<24 | 18<<16

	ipWebHost  = netServers | 80
	sshServer0 = netServers | 22 // bastions are .22 to .25
)

func addr(ip uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
}

// userOf returns the user index and round of auth session c.
func (g *Generator) userOf(c uint64) (k, round uint64) {
	b := g.pools.userBits
	return perm(c&(1<<b-1), b, g.o.Seed), c >> b
}

func (g *Generator) userIP(k uint64) uint32 { return netUsers | uint32(perm(k, 21, g.o.Seed^0x55)) }

func (g *Generator) userName(k uint64) []byte {
	g.user = appendUserName(g.user[:0], k)
	return g.user
}

// appendUserName writes background user k's login: an initial, a surname,
// and a number past the first 26*len(lastNames) users ("jsmith",
// "mgarcia12"). The mapping is one to one, and never an attack user's name.
func appendUserName(b []byte, k uint64) []byte {
	b = append(b, byte('a'+k%26))
	k /= 26
	b = append(b, lastNames[k%uint64(len(lastNames))]...)
	k /= uint64(len(lastNames))
	if k > 0 {
		b = appendInt(b, int(k))
	}
	return b
}

func usesKey(k uint64) bool { return mix(k^0x6b)&3 != 0 }

func sessionPort(c, seed uint64) uint16 { return uint16(32768 + mix(c^seed^0x7a11)%28232) }

func sessionPid(c, seed uint64) int { return int(1000 + mix(c^seed^0x91d)%64000) }
