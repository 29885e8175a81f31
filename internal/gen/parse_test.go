package gen

import (
	"fmt"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

func parsers(t *testing.T) [NumDatasets]parse.Parser {
	t.Helper()
	var ps [NumDatasets]parse.Parser
	for d := Dataset(0); d < NumDatasets; d++ {
		p, err := parse.New(d.Format(), parse.Options{Reference: DefaultStart})
		if err != nil {
			t.Fatal(err)
		}
		ps[d] = p
	}
	return ps
}

// checkParsed compares a parsed record with the generator's intent and
// returns the reference event built from the parsed record alone.
func checkParsed(l *Line, r schemas.Record) (refEvent, error) {
	m := &l.Meaning
	src := ipStr(m.SourceIP)
	if !r.EventTime().Equal(l.EventTime) {
		return refEvent{}, fmt.Errorf("time %s, want %s", r.EventTime().Format(time.RFC3339Nano), l.EventTime.Format(time.RFC3339Nano))
	}
	e := refEvent{dataset: r.Dataset(), t: r.EventTime().UnixNano()}
	mismatch := func(field string, got, want any) error {
		return fmt.Errorf("%s = %v, want %v", field, got, want)
	}
	switch rec := r.(type) {
	case *schemas.Auth:
		if l.Dataset != Auth {
			return e, mismatch("dataset", "auth", l.Dataset)
		}
		switch {
		case rec.SourceIP != src:
			return e, mismatch("source_ip", rec.SourceIP, src)
		case rec.SourcePort != m.SourcePort:
			return e, mismatch("source_port", rec.SourcePort, m.SourcePort)
		case rec.User != string(m.User):
			return e, mismatch("user_name", rec.User, string(m.User))
		case rec.Outcome != m.Outcome.String():
			return e, mismatch("event_outcome", rec.Outcome, m.Outcome)
		case rec.Action != m.Action:
			return e, mismatch("event_action", rec.Action, m.Action)
		case rec.Method != m.Method:
			return e, mismatch("auth_method", rec.Method, m.Method)
		case rec.Program != "sshd":
			return e, mismatch("process_name", rec.Program, "sshd")
		}
		e.srcIP, e.user, e.outcome = rec.SourceIP, rec.User, rec.Outcome
	case *schemas.Firewall:
		// Packets come from the netfilter lines, flows from EVE.
		want := "netfilter"
		if l.Dataset == IDS {
			want = "eve flow"
		}
		if (l.Dataset == Firewall) != (rec.Action != "flow") || (l.Dataset != Firewall && m.Action != "flow") {
			return e, mismatch("firewall record from", l.Dataset, want)
		}
		switch {
		case rec.SourceIP != src:
			return e, mismatch("source_ip", rec.SourceIP, src)
		case rec.SourcePort != m.SourcePort:
			return e, mismatch("source_port", rec.SourcePort, m.SourcePort)
		case rec.DestinationIP != ipStr(m.DestIP):
			return e, mismatch("destination_ip", rec.DestinationIP, m.DestIP)
		case rec.DestinationPort != m.DestPort:
			return e, mismatch("destination_port", rec.DestinationPort, m.DestPort)
		case rec.Action != m.Action:
			return e, mismatch("event_action", rec.Action, m.Action)
		case rec.Transport != map[string]string{"TCP": "tcp", "UDP": "udp"}[m.Proto]:
			return e, mismatch("network_transport", rec.Transport, m.Proto)
		}
		e.srcIP, e.dstIP, e.dport, e.action = rec.SourceIP, rec.DestinationIP, int(rec.DestinationPort), rec.Action
	case *schemas.IDS:
		switch {
		case l.Dataset != IDS || m.Action != "alert":
			return e, mismatch("ids record from", l.Dataset.String()+" "+m.Action, "an EVE alert")
		case rec.SourceIP != src:
			return e, mismatch("source_ip", rec.SourceIP, src)
		case rec.SourcePort != m.SourcePort:
			return e, mismatch("source_port", rec.SourcePort, m.SourcePort)
		case rec.DestinationIP != ipStr(m.DestIP):
			return e, mismatch("destination_ip", rec.DestinationIP, m.DestIP)
		case rec.DestinationPort != m.DestPort:
			return e, mismatch("destination_port", rec.DestinationPort, m.DestPort)
		case rec.SignatureID != int64(m.SignatureID):
			return e, mismatch("rule_id", rec.SignatureID, m.SignatureID)
		}
		e.srcIP, e.dstIP, e.dport = rec.SourceIP, rec.DestinationIP, int(rec.DestinationPort)
	case *schemas.Web:
		switch {
		case l.Dataset != Web:
			return e, mismatch("dataset", "web", l.Dataset)
		case rec.SourceIP != src:
			return e, mismatch("source_ip", rec.SourceIP, src)
		case int(rec.Status) != m.Status:
			return e, mismatch("http_response_status_code", rec.Status, m.Status)
		case rec.Path != string(m.Path):
			return e, mismatch("url_path", rec.Path, string(m.Path))
		case rec.Method != m.Method:
			return e, mismatch("http_request_method", rec.Method, m.Method)
		case rec.Duration != int64(m.Duration):
			return e, mismatch("event_duration", time.Duration(rec.Duration), m.Duration)
		}
		e.srcIP, e.status = rec.SourceIP, int(rec.Status)
	default:
		return e, fmt.Errorf("parsed as %s (%T)", r.Dataset(), r)
	}
	return e, nil
}

// TestParsersAgreeWithIntent parses every generated line with the real
// parsers (schemas/parse): none may be rejected, every field the generator
// meant must come back, and the detections run over the parsed records
// alone must find exactly the ground truth.
func TestParsersAgreeWithIntent(t *testing.T) {
	for _, c := range []struct {
		rate     float64
		duration time.Duration
		seed     uint64
	}{
		{5000, 330 * time.Second, 4},
		{200_000, 12 * time.Second, 5},
	} {
		t.Run(fmt.Sprintf("rate=%.0f/seed=%d", c.rate, c.seed), func(t *testing.T) {
			ps := parsers(t)
			g, err := New(Options{Seed: c.seed, Rate: c.rate, Duration: c.duration, MaxSkew: time.Second, LateFraction: 0.001})
			if err != nil {
				t.Fatal(err)
			}
			var l Line
			var events []refEvent
			kinds := map[string]int{}
			bad := 0
			for g.Next(&l) {
				r, err := ps[l.Dataset].Parse(l.Value)
				if err != nil {
					bad++
					if bad <= 5 {
						t.Errorf("line %d quarantined by %s parser: %v\n%s", l.Seq, l.Dataset.Format(), err, l.Value)
					}
					continue
				}
				e, err := checkParsed(&l, r)
				if err != nil {
					bad++
					if bad <= 5 {
						t.Errorf("line %d: %v\n%s", l.Seq, err, l.Value)
					}
					continue
				}
				kinds[r.Dataset()]++
				events = append(events, e)
			}
			if bad > 0 {
				t.Fatalf("%d of %d lines did not parse as meant", bad, g.Truth().Events)
			}
			for _, d := range []string{"auth", "firewall", "ids", "web"} {
				if kinds[d] == 0 {
					t.Errorf("no %s records parsed: %v", d, kinds)
				}
			}
			compareWithTruth(t, refDetect(events), g.Truth())
			t.Logf("%d lines parsed: %v; %d attack instances", len(events), kinds, len(g.Truth().Records))
		})
	}
}
