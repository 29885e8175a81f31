package realtime

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func authEv(d time.Duration, ip, user, outcome string) schemas.Record {
	return &schemas.Auth{Base: schemas.Common{Timestamp: at(d)}, SourceIP: ip, User: user, Outcome: outcome}
}

func fwEv(d time.Duration, src, dst string, port uint16, action string) schemas.Record {
	return &schemas.Firewall{Base: schemas.Common{Timestamp: at(d)}, SourceIP: src, DestinationIP: dst, DestinationPort: port, Action: action}
}

func webEv(d time.Duration, src string, status uint16) schemas.Record {
	return &schemas.Web{Base: schemas.Common{Timestamp: at(d)}, SourceIP: src, Status: status}
}

func idsEv(d time.Duration, src string) schemas.Record {
	return &schemas.IDS{Base: schemas.Common{Timestamp: at(d)}, SourceIP: src, Signature: "ET SCAN"}
}

// feeder drives an engine the way the Kafka loop will: one partition,
// processing time = event time, Advance after every event.
type feeder struct {
	t      *testing.T
	e      *Engine
	alerts []alert.Alert
	at     []int // index of the event after which each alert was emitted
	late   []int
	n      int
}

func newFeeder(t *testing.T, rs *rules.RuleSet, opts Options) *feeder {
	t.Helper()
	if rs == nil {
		var err error
		if rs, err = rules.Default(); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &feeder{t: t, e: e}
}

func (f *feeder) feed(recs ...schemas.Record) {
	for _, r := range recs {
		before := len(f.alerts)
		var late bool
		f.alerts, late = f.e.Process(r, Source{Topic: "logs", Partition: 0, Offset: int64(f.n)}, r.EventTime(), f.alerts)
		if late {
			f.late = append(f.late, f.n)
		}
		f.alerts = f.e.Advance(r.EventTime(), f.alerts)
		for i := before; i < len(f.alerts); i++ {
			f.at = append(f.at, f.n)
		}
		f.n++
	}
}

func (f *feeder) fired() []string {
	var out []string
	for _, a := range f.alerts {
		if a.Type == alert.TypeStart {
			out = append(out, a.RuleID+" "+strings.Join(a.KeyValues, ","))
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s ...string) []string {
	sort.Strings(s)
	if len(s) == 0 {
		return nil
	}
	return s
}

// benign is background traffic that must not trip anything: a user who
// mistypes once then logs in, allowed firewall flows to many destinations,
// a few 404s, IDS alerts from hosts that never log in.
func benign(from, to time.Duration) []schemas.Record {
	var out []schemas.Record
	i := 0
	for d := from; d < to; d += 500 * time.Millisecond {
		ip := fmt.Sprintf("192.168.1.%d", i%200)
		switch i % 5 {
		case 0:
			out = append(out, authEv(d, ip, fmt.Sprintf("user%d", i%50), "failure"), authEv(d+time.Second, ip, fmt.Sprintf("user%d", i%50), "success"))
		case 1:
			out = append(out, fwEv(d, ip, fmt.Sprintf("10.1.0.%d", i%100), uint16(1000+i%3), "deny"))
		case 2:
			out = append(out, webEv(d, ip, 404), webEv(d, ip, 200))
		case 3:
			out = append(out, idsEv(d, fmt.Sprintf("172.16.0.%d", i%30)))
		case 4:
			out = append(out, fwEv(d, ip, fmt.Sprintf("10.2.0.%d", i%100), 443, "allow"))
		}
		i++
	}
	return out
}

func TestDefaultRulesFireOnAttacksOnly(t *testing.T) {
	type tc struct {
		name   string
		events func() []schemas.Record
		want   []string
	}
	var cases []tc
	// ssh_bruteforce: 5 failures within 60 s (few users).
	cases = append(cases, tc{"ssh_bruteforce", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 5; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*12*time.Second, "203.0.113.5", []string{"root", "admin"}[i%2], "failure"))
		}
		return r
	}, sorted("ssh_bruteforce 203.0.113.5")})
	cases = append(cases, tc{"ssh_bruteforce near miss: 4 in 60 s, then 5 spread over 5 min", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 4; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*10*time.Second, "203.0.113.5", "root", "failure"))
		}
		for i := 0; i < 5; i++ {
			r = append(r, authEv(200*time.Second+time.Duration(i)*61*time.Second, "203.0.113.6", "root", "failure"))
		}
		return r
	}, nil})
	cases = append(cases, tc{"password_spraying", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 8; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*35*time.Second, "198.51.100.7", fmt.Sprintf("u%d", i), "failure"))
		}
		return r
	}, sorted("password_spraying 198.51.100.7")})
	cases = append(cases, tc{"password_spraying near miss: 7 users twice each", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 14; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*20*time.Second, "198.51.100.7", fmt.Sprintf("u%d", i%7), "failure"))
		}
		return r
	}, nil})
	cases = append(cases, tc{"distributed_bruteforce", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 10; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*25*time.Second, fmt.Sprintf("100.64.0.%d", i), "oracle", "failure"))
		}
		return r
	}, sorted("distributed_bruteforce oracle")})
	cases = append(cases, tc{"distributed_bruteforce near miss: 9 sources", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 18; i++ {
			r = append(r, authEv(100*time.Second+time.Duration(i)*15*time.Second, fmt.Sprintf("100.64.0.%d", i%9), "oracle", "failure"))
		}
		return r
	}, nil})
	cases = append(cases, tc{"port_scan", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 20; i++ {
			r = append(r, fwEv(100*time.Second+time.Duration(i)*400*time.Millisecond, "45.33.32.156", "10.0.0.1", uint16(20+i), []string{"deny", "drop"}[i%2]))
		}
		return r
	}, sorted("port_scan 45.33.32.156")})
	cases = append(cases, tc{"port_scan near miss: 19 ports denied, more allowed", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 40; i++ {
			r = append(r, fwEv(100*time.Second+time.Duration(i)*200*time.Millisecond, "45.33.32.156", "10.0.0.1", uint16(20+i%19), "deny"))
			r = append(r, fwEv(100*time.Second+time.Duration(i)*200*time.Millisecond, "45.33.32.156", "10.0.0.1", uint16(100+i), "allow"))
		}
		return r
	}, nil})
	cases = append(cases, tc{"web_scan", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 50; i++ {
			r = append(r, webEv(100*time.Second+time.Duration(i)*time.Second, "93.184.216.34", []uint16{404, 403, 400, 499}[i%4]))
		}
		return r
	}, sorted("web_scan 93.184.216.34")})
	cases = append(cases, tc{"web_scan near miss: 49 4xx and many 5xx and 3xx", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 49; i++ {
			r = append(r, webEv(100*time.Second+time.Duration(i)*time.Second, "93.184.216.34", 404))
			r = append(r, webEv(100*time.Second+time.Duration(i)*time.Second, "93.184.216.34", 500), webEv(100*time.Second+time.Duration(i)*time.Second, "93.184.216.34", 399))
		}
		return r
	}, nil})
	cases = append(cases, tc{"traffic_spike", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 2000; i++ {
			r = append(r, fwEv(100*time.Second+time.Duration(i)*4*time.Millisecond, fmt.Sprintf("100.%d.%d.1", i/250, i%250), "10.9.9.9", 80, "allow"))
		}
		return r
	}, sorted("traffic_spike 10.9.9.9")})
	cases = append(cases, tc{"traffic_spike near miss: 1999 in 10 s", func() []schemas.Record {
		var r []schemas.Record
		for i := 0; i < 1999; i++ {
			r = append(r, fwEv(100*time.Second+time.Duration(i)*5*time.Millisecond, fmt.Sprintf("100.%d.%d.1", i/250, i%250), "10.9.9.9", 80, "allow"))
		}
		return r
	}, nil})
	cases = append(cases, tc{"ids_then_login within 10 min", func() []schemas.Record {
		return []schemas.Record{idsEv(100*time.Second, "185.220.101.1"), authEv(699*time.Second, "185.220.101.1", "deploy", "success")}
	}, sorted("ids_then_login 185.220.101.1")})
	cases = append(cases, tc{"ids_then_login: exactly 600 s still matches", func() []schemas.Record {
		return []schemas.Record{idsEv(100*time.Second, "185.220.101.1"), authEv(700*time.Second, "185.220.101.1", "deploy", "success")}
	}, sorted("ids_then_login 185.220.101.1")})
	cases = append(cases, tc{"ids_then_login near miss: 601 s, other IP, failed login, login before the alert", func() []schemas.Record {
		return []schemas.Record{
			authEv(50*time.Second, "185.220.101.4", "deploy", "success"),
			idsEv(100*time.Second, "185.220.101.1"), idsEv(100*time.Second, "185.220.101.2"), idsEv(100*time.Second, "185.220.101.3"), idsEv(100*time.Second, "185.220.101.4"),
			authEv(300*time.Second, "185.220.101.9", "deploy", "success"),
			authEv(300*time.Second, "185.220.101.2", "deploy", "failure"),
			authEv(701*time.Second, "185.220.101.1", "deploy", "success"),
		}
	}, nil})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Attack events interleaved in time order with background.
			evs := append(benign(0, 900*time.Second), c.events()...)
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].EventTime().Before(evs[j].EventTime()) })
			f := newFeeder(t, nil, Options{})
			f.feed(evs...)
			if got := f.fired(); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("fired %v, want %v", got, c.want)
			}
			if len(f.late) != 0 {
				t.Fatalf("%d late events in an ordered stream", len(f.late))
			}
		})
	}
}

func TestAlertFields(t *testing.T) {
	f := newFeeder(t, nil, Options{Samples: 3})
	for i := 0; i < 5; i++ {
		f.feed(authEv(100*time.Second+time.Duration(i)*12*time.Second+250*time.Millisecond, "203.0.113.5", "root", "failure"))
	}
	if len(f.alerts) != 1 {
		t.Fatalf("%d alerts", len(f.alerts))
	}
	a := f.alerts[0]
	trig := at(148*time.Second + 250*time.Millisecond)
	want := alert.Alert{
		ID:   alert.NewID("ssh_bruteforce", "203.0.113.5", alert.TypeStart, trig.UnixNano()/int64(10*time.Minute)),
		Kind: "alert", Type: alert.TypeStart, Timestamp: trig, RuleID: "ssh_bruteforce", RuleName: "SSH brute force",
		RuleKind: "threshold", Description: "one source fails to log in 5 or more times within 60 seconds",
		Severity: "high", SeverityID: 4, Datasets: []string{"auth"}, KeyFields: []string{"source_ip"}, KeyValues: []string{"203.0.113.5"},
		// The frontier window: the earliest 60 s window holding the 148 s event.
		WindowStart: at(89 * time.Second), WindowEnd: at(149 * time.Second),
		Aggregate: "count", Value: 5, Threshold: 5, Precision: alert.Exact, EventCount: 5,
		FirstEvent: at(100*time.Second + 250*time.Millisecond), LastEvent: trig,
		Samples:     []alert.Ref{{Topic: "logs", Offset: 2, Timestamp: at(124*time.Second + 250*time.Millisecond)}, {Topic: "logs", Offset: 3, Timestamp: at(136*time.Second + 250*time.Millisecond)}, {Topic: "logs", Offset: 4, Timestamp: trig}},
		GeneratedAt: trig,
	}
	if !reflect.DeepEqual(a, want) {
		ga, _ := json.MarshalIndent(a, "", " ")
		wa, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("alert\n%s\nwant\n%s", ga, wa)
	}
}

func TestSuppressionCountsRetriggers(t *testing.T) {
	f := newFeeder(t, nil, Options{})
	// One failure per second for 15 minutes from one source, starting on
	// a suppression-period boundary (t0 is 12:00:00).
	for s := 0; s < 900; s++ {
		f.feed(authEv(time.Duration(s)*time.Second, "203.0.113.5", "root", "failure"))
	}
	if len(f.alerts) != 2 {
		t.Fatalf("%d alerts, want one per 10-minute period: %v", len(f.alerts), f.fired())
	}
	// First alert at the 5th failure (4 s). Every later second opens a new
	// crossing window: 5 s..599 s are suppressed (595) and reported with
	// the next alert, at 600 s.
	if a := f.alerts[0]; !a.Timestamp.Equal(at(4*time.Second)) || a.Suppressed != 0 {
		t.Errorf("first alert at %v suppressed %d", a.Timestamp, a.Suppressed)
	}
	if a := f.alerts[1]; !a.Timestamp.Equal(at(600*time.Second)) || a.Suppressed != 595 || a.Value != 60 {
		t.Errorf("second alert at %v suppressed %d value %v, want 600 s, 595, 60", a.Timestamp.Sub(t0), a.Suppressed, a.Value)
	}
	if f.alerts[0].ID == f.alerts[1].ID {
		t.Error("two periods share an id")
	}
	if st := f.e.Stats(); st.Suppressed != 595+299 || st.Alerts != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestResolveAfterSpike(t *testing.T) {
	f := newFeeder(t, nil, Options{})
	for i := 0; i < 2500; i++ {
		f.feed(fwEv(100*time.Second+time.Duration(i)*2*time.Millisecond, "1.1.1.1", "10.9.9.9", 80, "allow"))
	}
	// Quiet traffic elsewhere moves the watermark on.
	for s := 106; s < 140; s++ {
		f.feed(fwEv(time.Duration(s)*time.Second, "1.1.1.1", "10.0.0.1", 80, "allow"))
	}
	if len(f.alerts) != 2 {
		t.Fatalf("%d alerts, want alert + resolve", len(f.alerts))
	}
	open, res := f.alerts[0], f.alerts[1]
	if open.Type != alert.TypeStart || res.Type != alert.TypeEnd || res.Resolves != open.ID || res.ID == open.ID {
		t.Fatalf("open %+v\nresolve %+v", open, res)
	}
	// Events span [100 s, 105 s), one per 2 ms. Window [101 s, 111 s)
	// still holds 2000; [102 s, 112 s) holds 1500: the first closed window
	// under the threshold, evaluated once when the watermark passes 112 s.
	if res.Value != 1500 || !res.WindowStart.Equal(at(102*time.Second)) || !res.WindowEnd.Equal(at(112*time.Second)) {
		t.Errorf("resolve window %v..%v value %v, want 102 s..112 s and 1500", res.WindowStart.Sub(t0), res.WindowEnd.Sub(t0), res.Value)
	}
}

func TestLateEventsAreReturned(t *testing.T) {
	f := newFeeder(t, nil, Options{OutOfOrderness: 5 * time.Second, AllowedLateness: 10 * time.Second})
	f.feed(authEv(100*time.Second, "1.1.1.1", "root", "failure"))
	// Watermark is 95 s: 85 s is within the lateness, 84.9 s is not.
	f.feed(authEv(85*time.Second, "2.2.2.2", "root", "failure"), authEv(84900*time.Millisecond, "3.3.3.3", "root", "failure"))
	if !reflect.DeepEqual(f.late, []int{2}) || f.e.Stats().Late != 1 || f.e.Stats().Events != 2 {
		t.Fatalf("late %v stats %+v", f.late, f.e.Stats())
	}
	// The within-lateness event updates its windows and can fire.
	for i := 0; i < 4; i++ {
		f.feed(authEv(86*time.Second+time.Duration(i)*time.Second, "2.2.2.2", "root", "failure"))
	}
	if got := f.fired(); !reflect.DeepEqual(got, []string{"ssh_bruteforce 2.2.2.2"}) {
		t.Fatalf("fired %v", got)
	}
}

func TestOutOfOrderEventsStillFire(t *testing.T) {
	f := newFeeder(t, nil, Options{OutOfOrderness: 30 * time.Second, AllowedLateness: time.Second})
	// Five failures from one source, delivered newest first, with other
	// traffic pushing the key's frontier ahead.
	f.feed(authEv(200*time.Second, "9.9.9.9", "root", "failure"))
	for i := 4; i >= 0; i-- {
		f.feed(authEv(175*time.Second+time.Duration(i)*time.Second, "1.1.1.1", "root", "failure"))
	}
	f.feed(authEv(199*time.Second, "1.1.1.1", "root", "failure"))
	if got := f.fired(); !reflect.DeepEqual(got, []string{"ssh_bruteforce 1.1.1.1"}) {
		t.Fatalf("fired %v", got)
	}
}

func TestSetRulesKeepsUnchangedState(t *testing.T) {
	f := newFeeder(t, nil, Options{})
	for i := 0; i < 4; i++ {
		f.feed(authEv(100*time.Second+time.Duration(i)*time.Second, "1.1.1.1", "root", "failure"))
		f.feed(webEv(100*time.Second+time.Duration(i)*time.Second, "2.2.2.2", 404))
	}
	def := string(rules.DefaultYAML())
	// Same ssh rule (only its severity changed); web_scan's window changed.
	changed := strings.Replace(def, "    severity: high\n    dataset: auth\n    where:\n      - {field: event_outcome, eq: failure}\n    key: source_ip\n    aggregate: count", "    severity: critical\n    dataset: auth\n    where:\n      - {field: event_outcome, eq: failure}\n    key: source_ip\n    aggregate: count", 1)
	changed = strings.Replace(changed, "    threshold: 50\n", "    threshold: 5\n", 1)
	changed = strings.Replace(changed, "dataset: web\n    where:\n      - {field: http_response_status_code, gte: 400, lte: 499}\n    key: source_ip\n    aggregate: count\n    window: 60s", "dataset: web\n    where:\n      - {field: http_response_status_code, gte: 400, lte: 499}\n    key: source_ip\n    aggregate: count\n    window: 30s", 1)
	rs, err := rules.Parse([]byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.e.SetRules(rs); err != nil {
		t.Fatal(err)
	}
	// A bad file leaves the rules in force.
	if _, err := rules.Parse([]byte("version: 1\nrules:\n  - id: x\n")); err == nil {
		t.Fatal("bad file parsed")
	}
	f.feed(authEv(104*time.Second, "1.1.1.1", "root", "failure"))
	for i := 0; i < 4; i++ {
		f.feed(webEv(104*time.Second+time.Duration(i)*time.Second, "2.2.2.2", 404))
	}
	// ssh kept its 4 failures: the 5th fires, with the new severity.
	// web_scan restarted empty: 4 new 404s are under its new threshold 5.
	if got := f.fired(); !reflect.DeepEqual(got, []string{"ssh_bruteforce 1.1.1.1"}) || f.alerts[0].Severity != "critical" {
		t.Fatalf("fired %v (%+v)", got, f.alerts)
	}
	f.feed(webEv(108*time.Second, "2.2.2.2", 404))
	if got := f.fired(); len(got) != 2 || got[1] != "web_scan 2.2.2.2" {
		t.Fatalf("fired %v", got)
	}
}

// mixedStream is background plus every attack kind, several times, with
// bounded disorder, from a seed.
func mixedStream(seed uint64, dur time.Duration) []schemas.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	evs := benign(0, dur)
	for start := 30 * time.Second; start < dur-700*time.Second; start += 400 * time.Second {
		k := int(start / time.Second)
		ip := fmt.Sprintf("203.0.%d.%d", k%250, rng.IntN(250))
		for i := 0; i < 30; i++ {
			evs = append(evs, authEv(start+time.Duration(i)*3*time.Second, ip, "root", "failure"))
			evs = append(evs, authEv(start+time.Duration(i)*9*time.Second, "198.51.100.1", fmt.Sprintf("s%d", i), "failure"))
			evs = append(evs, authEv(start+time.Duration(i)*9*time.Second, fmt.Sprintf("100.64.%d.%d", k%200, i), "oracle", "failure"))
			evs = append(evs, fwEv(start+time.Duration(i)*300*time.Millisecond, ip, "10.0.0.1", uint16(i), "deny"))
		}
		for i := 0; i < 120; i++ {
			evs = append(evs, webEv(start+time.Duration(i)*400*time.Millisecond, ip, 404))
		}
		for i := 0; i < 2100; i++ {
			evs = append(evs, fwEv(start+time.Duration(i)*4*time.Millisecond, "7.7.7.7", fmt.Sprintf("10.99.%d.1", k%250), 80, "allow"))
		}
		evs = append(evs, idsEv(start, ip), authEv(start+time.Duration(rng.IntN(590))*time.Second, ip, "deploy", "success"))
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].EventTime().Before(evs[j].EventTime()) })
	// Bounded disorder: swap neighbours within 2 s.
	for i := 1; i < len(evs); i++ {
		if rng.IntN(4) == 0 && evs[i].EventTime().Sub(evs[i-1].EventTime()) < 2*time.Second {
			evs[i], evs[i-1] = evs[i-1], evs[i]
		}
	}
	return evs
}

func TestDeterministicIDsAcrossRunsAndReplay(t *testing.T) {
	evs := mixedStream(42, 3000*time.Second)
	run := func(from int) *feeder {
		f := newFeeder(t, nil, Options{})
		f.n = from
		f.feed(evs[from:]...)
		return f
	}
	a, b := run(0), run(0)
	ja, _ := json.Marshal(a.alerts)
	jb, _ := json.Marshal(b.alerts)
	if string(ja) != string(jb) {
		t.Fatal("two runs over the same input differ")
	}
	if len(a.alerts) < 30 {
		t.Fatalf("only %d alerts: %v", len(a.alerts), a.fired())
	}
	all := map[string]bool{}
	for _, al := range a.alerts {
		if all[al.ID] {
			t.Fatalf("id %s minted twice in one run", al.ID)
		}
		all[al.ID] = true
	}
	// Crash at several points; the replay rebuilds state from the events
	// of the last (longest window or sequence horizon) + lateness +
	// out-of-orderness before the crash point, with no snapshot.
	for _, crash := range []int{len(evs) / 5, len(evs) / 2, 2 * len(evs) / 3} {
		horizon := evs[crash].EventTime().Add(-(600*time.Second + DefaultAllowedLateness + DefaultOutOfOrderness))
		from := sort.Search(len(evs), func(i int) bool { return !evs[i].EventTime().Before(horizon) })
		r := run(from)
		after := map[string]bool{}
		for i, al := range r.alerts {
			if !all[al.ID] {
				t.Errorf("crash at %d: replay minted a new id %s (%s %v at %v)", crash, al.ID, al.RuleID, al.KeyValues, al.Timestamp.Sub(t0))
			}
			if r.at[i] >= crash {
				after[al.ID] = true
			}
		}
		for i, al := range a.alerts {
			if a.at[i] >= crash && !after[al.ID] {
				t.Errorf("crash at %d: alert %s (%s %v at %v) missing after replay", crash, al.ID, al.RuleID, al.KeyValues, al.Timestamp.Sub(t0))
			}
		}
	}
}

// TestSequenceStepOneArrivingLast: the IDS alert (step 1) of a source
// arrives after its logins (step 2), as when the IDS topic lags. It
// matches the earliest login at or after it, however many logins came in
// between (13 here); a source with logins but no IDS alert, and one with
// an IDS alert but no login, raise nothing. Once the watermark passes the
// logins by the allowed lateness, they are dropped.
func TestSequenceStepOneArrivingLast(t *testing.T) {
	f := newFeeder(t, nil, Options{OutOfOrderness: 30 * time.Second, AllowedLateness: 10 * time.Second})
	for i := 0; i < 13; i++ {
		f.feed(authEv(100*time.Second+time.Duration(i)*time.Second, "185.220.101.1", "deploy", "success"))
	}
	f.feed(authEv(105*time.Second, "185.220.101.2", "deploy", "success"))
	f.feed(idsEv(99*time.Second, "185.220.101.1"), idsEv(99*time.Second, "185.220.101.3"))
	if len(f.late) != 0 {
		t.Fatalf("%d events late", len(f.late))
	}
	if got := f.fired(); !reflect.DeepEqual(got, []string{"ids_then_login 185.220.101.1"}) {
		t.Fatalf("fired %v", got)
	}
	a := f.alerts[0]
	if !a.FirstEvent.Equal(at(99*time.Second)) || !a.LastEvent.Equal(at(100*time.Second)) {
		t.Errorf("alert spans %s..%s, want the IDS alert at 99 s and the first login at 100 s", a.FirstEvent, a.LastEvent)
	}
	if len(a.Samples) != 2 || a.Samples[1].Offset != 0 {
		t.Errorf("samples %+v, want the IDS alert and the login at offset 0", a.Samples)
	}
	held := func() int {
		for _, r := range f.e.Stats().Rules {
			if r.ID == "ids_then_login" {
				return r.Keys
			}
		}
		t.Fatal("no ids_then_login rule")
		return 0
	}
	if n := held(); n != 14+2 { // 14 logins, 2 sources with an IDS alert
		t.Errorf("sequence state %d, want 16", n)
	}
	// Push the watermark past every login and the IDS alerts' horizon.
	f.feed(authEv(2000*time.Second, "192.0.2.1", "x", "failure"))
	if n := held(); n != 0 {
		t.Errorf("sequence state %d after the watermark passed it, want 0", n)
	}
}

// TestSequenceCapsCountDrops: past MaxKeysPerRule step-1 keys, and past
// MaxKeysPerRule x 8 step-2 events held, a sequence rule keeps nothing
// more and counts what it dropped.
func TestSequenceCapsCountDrops(t *testing.T) {
	f := newFeeder(t, nil, Options{MaxKeysPerRule: 1})
	f.feed(idsEv(100*time.Second, "185.220.101.1"), idsEv(100*time.Second, "185.220.101.2")) // the second key: dropped
	for i := 0; i < 9; i++ {                                                                 // 8 held, the ninth dropped
		f.feed(authEv(101*time.Second, fmt.Sprintf("198.51.100.%d", i), "deploy", "success"))
	}
	for _, r := range f.e.Stats().Rules {
		if r.ID == "ids_then_login" {
			if r.Dropped != 2 || r.Keys != 1+8 {
				t.Fatalf("dropped %d, state %d; want 2 dropped, 1 key and 8 step-2 events held", r.Dropped, r.Keys)
			}
			return
		}
	}
	t.Fatal("no ids_then_login rule")
}
