package gen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// digest generates a whole run and hashes every line (with its key and
// topic) and the truth.
func digest(t *testing.T, o Options) (lines [32]byte, truth string, n int64) {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var l Line
	for g.Next(&l) {
		fmt.Fprintf(h, "%s|%s|%s\n", l.Topic, l.Key, l.Value)
		n++
	}
	var b bytes.Buffer
	if err := g.Truth().WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	copy(lines[:], h.Sum(nil))
	return lines, b.String(), n
}

func TestSameOptionsSameOutput(t *testing.T) {
	o := Options{Seed: 42, Rate: 20000, Duration: 15 * time.Second, MaxSkew: 2 * time.Second, LateFraction: 0.01}
	h1, t1, n1 := digest(t, o)
	h2, t2, n2 := digest(t, o)
	if h1 != h2 || t1 != t2 || n1 != n2 {
		t.Fatalf("two runs with the same options differ: %d vs %d lines", n1, n2)
	}
	if n1 != 300000 {
		t.Errorf("15s at 20000/s gave %d events, want 300000", n1)
	}
	if t1 == "" {
		t.Fatal("no truth at all")
	}
	o.Seed = 43
	h3, t3, _ := digest(t, o)
	if h3 == h1 || t3 == t1 {
		t.Error("a different seed gave the same output")
	}
}

func TestEventTimesFollowRateNotClock(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	g, err := New(Options{Seed: 1, Rate: 1000, Count: 5000, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	var l Line
	for g.Next(&l) {
		want := start.Add(time.Duration(l.Seq) * time.Millisecond)
		if l.Dataset == Web {
			want = want.Truncate(time.Second) // access logs keep seconds
		}
		if !l.EventTime.Equal(want) {
			t.Fatalf("event %d at %s, want start + i/rate = %s", l.Seq, l.EventTime.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	if g.Truth().Events != 5000 {
		t.Errorf("%d events, want 5000", g.Truth().Events)
	}
}

func TestSkewAndLateness(t *testing.T) {
	const rate = 10000
	start := DefaultStart
	g, err := New(Options{Seed: 5, Rate: rate, Duration: 20 * time.Second, MaxSkew: 2 * time.Second, LateFraction: 0.01, LateBy: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var l Line
	late, outOfOrder := 0, 0
	var prev time.Time
	for g.Next(&l) {
		slot := start.Add(time.Duration(l.Seq) * time.Second / rate)
		lag := slot.Sub(l.EventTime)
		switch {
		case l.Meaning.Late:
			late++
			if l.Meaning.Attack != NoAttack {
				t.Fatalf("attack line %d marked late", l.Seq)
			}
			if lag < 3*time.Minute || lag > 3*time.Minute+2*time.Second+time.Second {
				t.Fatalf("late line %d is %v behind its slot, want 3m..3m2s", l.Seq, lag)
			}
		case lag < 0 || lag > 2*time.Second+time.Second: // +1s: access logs keep seconds
			t.Fatalf("line %d is %v behind its slot, want 0..2s", l.Seq, lag)
		}
		if l.EventTime.Before(prev) {
			outOfOrder++
		}
		prev = l.EventTime
	}
	if n := 200000; late < n/100*8/10 || late > n/100*12/10 {
		t.Errorf("%d late lines of %d, want about 1%%", late, n)
	}
	if outOfOrder < 10000 {
		t.Errorf("only %d lines older than their predecessor: skew not applied", outOfOrder)
	}
}

func TestCountDurationAndValidation(t *testing.T) {
	g, err := New(Options{Rate: 3, Duration: 10 * time.Second})
	if err != nil || g.Total() != 30 {
		t.Errorf("10s at 3/s: total %d, %v; want 30", g.Total(), err)
	}
	g, err = New(Options{Rate: 7, Count: 11})
	if err != nil || g.Total() != 11 {
		t.Errorf("count 11: total %d, %v", g.Total(), err)
	}
	if g, _ := New(Options{Rate: 7}); g.Total() != -1 {
		t.Errorf("no count or duration: total %d, want -1 (unbounded)", g.Total())
	}
	for _, o := range []Options{
		{Rate: 0}, {Rate: -1}, {Rate: 10, Count: 5, Duration: time.Second}, {Rate: 10, AttackEvery: time.Second},
		{Rate: 10, Intensity: -1}, {Rate: 10, MaxSkew: time.Hour}, {Rate: 10, LateFraction: 0.9}, {Rate: 10, Attacks: []Attack{99}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func TestParseAttacks(t *testing.T) {
	got, err := ParseAttacks("port_scan, ssh_bruteforce,port_scan")
	if err != nil || len(got) != 2 || got[0] != SSHBruteforce || got[1] != PortScan {
		t.Errorf("ParseAttacks = %v, %v", got, err)
	}
	if got, _ := ParseAttacks("none"); got == nil || len(got) != 0 {
		t.Errorf("none = %#v, want empty non-nil", got)
	}
	if got, _ := ParseAttacks("all"); len(got) != 7 {
		t.Errorf("all = %v", got)
	}
	if _, err := ParseAttacks("ssh_bruteforce,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown name: %v", err)
	}
}

func TestOnlyChosenAttacksAndIntensity(t *testing.T) {
	g, err := New(Options{Seed: 1, Rate: 20000, Duration: 130 * time.Second, Attacks: []Attack{PortScan, WebScan}, Intensity: 2})
	if err != nil {
		t.Fatal(err)
	}
	var l Line
	for g.Next(&l) {
	}
	tr := g.Truth()
	if len(tr.Records) != 6 { // at 0.5s, 60.5s, 120.5s for each kind
		t.Fatalf("%d truth records, want 6: %+v", len(tr.Records), tr.Records)
	}
	for _, r := range tr.Records {
		switch r.Attack {
		case "port_scan":
			if r.Events != 2*30+3 { // 60 denied ports, an alert, 2 allowed
				t.Errorf("port scan at intensity 2 has %d events, want 63", r.Events)
			}
		case "web_scan":
			if r.Events != 2*70+1 {
				t.Errorf("web scan at intensity 2 has %d events, want 141", r.Events)
			}
		default:
			t.Errorf("unexpected attack %s", r.Attack)
		}
	}
}

func TestSkipsWhatCannotFit(t *testing.T) {
	// 300/s is too slow to carry a ddos's 2200+ lines within 8 s, and 10 s
	// too short for spraying: both are skipped, never half-generated.
	g, err := New(Options{Seed: 1, Rate: 300, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var l Line
	for g.Next(&l) {
	}
	skipped := map[Attack]string{}
	for _, s := range g.Truth().Skipped {
		skipped[s.Attack] = s.Reason
	}
	if _, ok := skipped[DDoS]; !ok {
		t.Errorf("ddos not skipped at 300/s: %v", skipped)
	}
	if _, ok := skipped[PasswordSpraying]; !ok {
		t.Errorf("spraying not skipped in 10s: %v", skipped)
	}
	for _, r := range g.Truth().Records {
		if r.Attack == "ddos" || r.Attack == "password_spraying" {
			t.Errorf("skipped attack in truth: %+v", r)
		}
	}
}

func TestTruthRoundTripAndOrder(t *testing.T) {
	g, _ := New(Options{Seed: 9, Rate: 5000, Duration: 200 * time.Second})
	var l Line
	for g.Next(&l) {
	}
	var b bytes.Buffer
	if err := g.Truth().WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(b.String(), "\n", 2)[0]
	for _, f := range []string{`"attack":`, `"rule":`, `"key":`, `"start":"2026-01-01T00:00:`, `"end":`, `"events":`, `"threshold_crossed_at":`} {
		if !strings.Contains(first, f) {
			t.Errorf("truth line lacks %s: %s", f, first)
		}
	}
	recs, err := ReadTruth(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(g.Truth().Records) {
		t.Fatalf("read %d records, wrote %d", len(recs), len(g.Truth().Records))
	}
	for i, r := range recs {
		w := g.Truth().Records[i]
		if r.Key != w.Key || r.Rule != w.Rule || !r.Start.Equal(w.Start) || r.Events != w.Events {
			t.Errorf("record %d: read %+v, wrote %+v", i, r, w)
		}
		if i > 0 && r.Start.Before(recs[i-1].Start) {
			t.Errorf("truth not sorted by start at %d", i)
		}
		if r.ThresholdCrossedAt.Before(r.Start) || r.ThresholdCrossedAt.After(r.End) {
			t.Errorf("%s %s crossed at %s outside [%s, %s]", r.Rule, r.Key, r.ThresholdCrossedAt, r.Start, r.End)
		}
	}
}

func TestTimeFormattingMatchesTimePackage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var c civil
	for i := 0; i < 20000; i++ {
		sec := r.Int64N(int64(200*365*24*3600)) - int64(50*365*24*3600) // 1920..2120
		tm := time.Unix(sec, 0).UTC()
		c.set(sec)
		if got, want := string(appendISO(nil, &c)), tm.Format("2006-01-02T15:04:05"); got != want {
			t.Fatalf("appendISO(%d) = %s, want %s", sec, got, want)
		}
		if got, want := string(appendCLF(nil, &c)), tm.Format("02/Jan/2006:15:04:05 -0700"); got != want {
			t.Fatalf("appendCLF(%d) = %s, want %s", sec, got, want)
		}
	}
}

func TestPermIsABijection(t *testing.T) {
	for _, bits := range []uint{1, 4, 10, 13} {
		seen := make([]bool, 1<<bits)
		for x := uint64(0); x < 1<<bits; x++ {
			y := perm(x, bits, 12345)
			if y >= 1<<bits || seen[y] {
				t.Fatalf("perm over %d bits maps %d to %d twice or out of range", bits, x, y)
			}
			seen[y] = true
		}
	}
}

func TestBackgroundUsersNeverAttackUsers(t *testing.T) {
	attack := map[string]bool{}
	for _, l := range [][]string{bruteUsers[:], sprayUsers[:], distTargets[:], loginUsers[:]} {
		for _, u := range l {
			attack[u] = true
		}
	}
	names := map[string]bool{}
	var b []byte
	for k := uint64(0); k < 1<<21; k++ {
		b = appendUserName(b[:0], k)
		if attack[string(b)] {
			t.Fatalf("background user %d is named %q, an attack user", k, b)
		}
		if k%7 == 0 {
			names[string(b)] = true
		}
	}
	if len(names) != (1<<21+6)/7 {
		t.Errorf("background user names collide: %d names for %d users", len(names), (1<<21+6)/7)
	}
}

func TestCrossing(t *testing.T) {
	s := int64(time.Second)
	// Five failures, 14 s apart: 56 s in all, but the aligned 60 s windows
	// starting at whole seconds include all five only from k=0.
	var hits []hit
	for i := int64(0); i < 5; i++ {
		hits = append(hits, hit{t: 100*s + i*14*s})
	}
	at, ok := crossing(RuleFor(SSHBruteforce), hits)
	if !ok || at != 156*s {
		t.Errorf("crossing = %v %v, want 156s", time.Duration(at), ok)
	}
	// 61 s apart at the ends: never five in one window.
	hits[4].t = 100*s + 61*s
	if _, ok := crossing(RuleFor(SSHBruteforce), hits); ok {
		t.Error("five failures over 61 s crossed a 60 s window")
	}
	// Sequence: login 601 s after the alert is too late; 600 s is in time.
	seq := []hit{{t: 0, v: 0}, {t: 601 * s, v: 1}}
	if _, ok := crossing(RuleFor(IDSThenLogin), seq); ok {
		t.Error("login 601 s after the alert matched")
	}
	seq[1].t = 600 * s
	if at, ok := crossing(RuleFor(IDSThenLogin), seq); !ok || at != 600*s {
		t.Errorf("login 600 s after: %v %v", at, ok)
	}
}

func TestMeaningMatchesLine(t *testing.T) {
	// Cheap self-consistency: every IP, port, user and status the meaning
	// claims is written in the line. The parser test checks the converse.
	g, _ := New(Options{Seed: 3, Rate: 50000, Duration: 5 * time.Second})
	var l Line
	for g.Next(&l) {
		v := string(l.Value)
		m := &l.Meaning
		for _, want := range []string{ipStr(m.SourceIP), ipStr(m.DestIP), string(m.User), string(m.Path)} {
			if want != "" && !strings.Contains(v, want) {
				t.Fatalf("line %d lacks %q: %s", l.Seq, want, v)
			}
		}
		if m.Status != 0 && !strings.Contains(v, fmt.Sprintf(`" %d `, m.Status)) {
			t.Fatalf("line %d lacks status %d: %s", l.Seq, m.Status, v)
		}
		if m.SourceIP.IsValid() && string(l.Key) != m.SourceIP.String() {
			t.Fatalf("line %d keyed %s, source %s", l.Seq, l.Key, m.SourceIP)
		}
	}
}

func ipStr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func TestPaceAndProgress(t *testing.T) {
	var reports []Progress
	g, err := New(Options{Seed: 1, Rate: 1000, Count: 700, Pace: true, ProgressEvery: 200 * time.Millisecond,
		Progress: func(p Progress) { reports = append(reports, p) }})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	n := 0
	tr, err := g.Run(context.Background(), SinkFunc(func(context.Context, *Line) error { n++; return nil }))
	took := time.Since(begin)
	if err != nil || n != 700 || tr.Events != 700 {
		t.Fatalf("run: %v, %d lines", err, n)
	}
	// 700 events at 1000/s: the last is due 0.699 s after the first.
	if took < 650*time.Millisecond || took > 5*time.Second {
		t.Errorf("paced run of 0.7 s of events took %v", took)
	}
	if len(reports) < 3 || !reports[len(reports)-1].Done || reports[len(reports)-1].Events != 700 {
		t.Fatalf("progress reports: %+v", reports)
	}
	mid := reports[1]
	if mid.Done || mid.Total != 700 || mid.Events <= 0 || mid.Events >= 700 || mid.Rate < 500 || mid.Rate > 2000 || mid.ETA <= 0 {
		t.Errorf("mid-run progress %+v: want events in (0,700), rate near 1000/s, an ETA", mid)
	}
}

func TestUnboundedRunEndsWithContext(t *testing.T) {
	g, _ := New(Options{Seed: 1, Rate: 100_000, Pace: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	tr, err := g.Run(ctx, SinkFunc(func(context.Context, *Line) error { return nil }))
	if err != nil {
		t.Fatalf("unbounded run ended with %v", err)
	}
	if tr.Events < 10000 || tr.Events > 60000 {
		t.Errorf("%d events in 0.3 s paced at 100000/s", tr.Events)
	}
	if tr.Total != -1 {
		t.Errorf("unbounded run reports total %d", tr.Total)
	}
}
