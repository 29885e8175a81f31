package metrics

import (
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

func at(min int) time.Time { return time.Date(2026, 3, 1, 10, min, 0, 0, time.UTC) }

func TestSharedMetrics(t *testing.T) {
	ssh, ok := Lookup(SSHFailedLoginsPerSourceHour)
	if !ok {
		t.Fatal("ssh metric missing")
	}
	recs := []schemas.Record{
		&schemas.Auth{Base: schemas.Common{Timestamp: at(1)}, SourceIP: "10.0.0.1", Outcome: "failure", User: "root"},
		&schemas.Auth{Base: schemas.Common{Timestamp: at(59)}, SourceIP: "10.0.0.1", Outcome: "failure", User: "admin"},
		&schemas.Auth{Base: schemas.Common{Timestamp: at(61)}, SourceIP: "10.0.0.1", Outcome: "failure"},
		&schemas.Auth{Base: schemas.Common{Timestamp: at(2)}, SourceIP: "10.0.0.1", Outcome: "success"},
		&schemas.Web{Base: schemas.Common{Timestamp: at(3)}, SourceIP: "10.0.0.1", Status: 404},
	}
	got := ssh.Reference(recs)
	want := map[Cell]int64{{Window: at(0), Key: "10.0.0.1"}: 2, {Window: at(60), Key: "10.0.0.1"}: 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for c, n := range want {
		if got[c] != n {
			t.Fatalf("%v: got %d, want %d", c, got[c], n)
		}
	}

	web, _ := Lookup(Web4xxPerClientHour)
	for status, match := range map[uint16]bool{399: false, 400: true, 404: true, 499: true, 500: false} {
		r := &schemas.Web{SourceIP: "c", Status: status}
		if web.Match(r) != match {
			t.Errorf("web 4xx Match(status %d) = %v", status, !match)
		}
	}
	if web.Match(recs[0]) {
		t.Error("web metric matched an auth record")
	}

	ports, _ := Lookup(DistinctPortsPerSource10m)
	fw := []schemas.Record{
		&schemas.Firewall{Base: schemas.Common{Timestamp: at(0)}, SourceIP: "s", Action: "deny", DestinationPort: 22},
		&schemas.Firewall{Base: schemas.Common{Timestamp: at(1)}, SourceIP: "s", Action: "drop", DestinationPort: 22},
		&schemas.Firewall{Base: schemas.Common{Timestamp: at(2)}, SourceIP: "s", Action: "deny", DestinationPort: 23},
		&schemas.Firewall{Base: schemas.Common{Timestamp: at(3)}, SourceIP: "s", Action: "allow", DestinationPort: 80},
		&schemas.Firewall{Base: schemas.Common{Timestamp: at(10)}, SourceIP: "s", Action: "deny", DestinationPort: 25},
	}
	pg := ports.Reference(fw)
	if pg[Cell{at(0), "s"}] != 2 || pg[Cell{at(10), "s"}] != 1 || len(pg) != 2 {
		t.Fatalf("distinct ports %v", pg)
	}
	if got := ports.Columns(); len(got) != 4 || got[0] != "timestamp" || got[1] != "event_action" || got[2] != "source_ip" || got[3] != "destination_port" {
		t.Fatalf("columns %v", got)
	}
}

func TestAllFresh(t *testing.T) {
	a := All()
	if len(a) != 3 {
		t.Fatalf("%d metrics", len(a))
	}
	a[0].Filter[0].Strings[0] = "mutated"
	a[0].Name = "x"
	m, ok := Lookup(SSHFailedLoginsPerSourceHour)
	if !ok || m.Filter[0].Strings[0] != "failure" {
		t.Fatal("mutating one All() result changed another")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, def := range []Metric{
		{Name: "a", Dataset: "nope", KeyColumn: "source_ip", Agg: Count, Window: time.Hour},
		{Name: "b", Dataset: "auth", KeyColumn: "nope", Agg: Count, Window: time.Hour},
		{Name: "c", Dataset: "auth", KeyColumn: "source_ip", Agg: Sum, Of: "user_name", Window: time.Hour},
		{Name: "d", Dataset: "auth", KeyColumn: "source_ip", Agg: Count, Window: 0},
		{Name: "e", Dataset: "auth", KeyColumn: "source_ip", Agg: Count, Window: time.Hour, Filter: []Predicate{{Column: "user_name", Op: OpGte, Int: 1}}},
		{Name: "f", Dataset: "auth", KeyColumn: "source_ip", Agg: "avg", Window: time.Hour},
	} {
		if _, err := Compile(def); err == nil {
			t.Errorf("%s compiled", def.Name)
		}
	}
}
