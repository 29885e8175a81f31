package catalog_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/querytest"
	"github.com/lambdalog/lambdalog/schemas"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// TestEveryReportOnGeneratedTraffic loads two days of generated traffic
// through the real batch jobs and runs every report of the catalog: the
// core reports must equal an independent count over the same records, the
// others must find what the generator's ground truth says happened.
func TestEveryReportOnGeneratedTraffic(t *testing.T) {
	fx := querytest.Load(t, chtest.Shared(t), querytest.Options{})
	c, err := catalog.Load(queries.Reports, "reports")
	if err != nil {
		t.Fatal(err)
	}
	from, to := fx.Days()
	if from == to {
		t.Fatalf("fixture spans one day only (%s)", from)
	}
	ctx := context.Background()
	run := func(name string, extra map[string]string) *catalog.Result {
		t.Helper()
		p := map[string]string{"from": from, "to": to}
		for k, v := range extra {
			p[k] = v
		}
		res, err := c.Run(ctx, fx.DB, name, p, catalog.RunOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res
	}
	truthKeys := map[string][]string{}
	for _, r := range fx.Truth.Records {
		truthKeys[r.Attack] = append(truthKeys[r.Attack], r.Key)
	}
	for _, a := range []string{"ssh_bruteforce", "password_spraying", "distributed_bruteforce", "port_scan", "web_scan", "ids_then_login"} {
		if len(truthKeys[a]) == 0 {
			t.Fatalf("the fixture has no %s instance; truth %+v", a, fx.Truth.Records)
		}
	}
	ran := map[string]bool{}
	check := func(name string, extra map[string]string, f func(*catalog.Result)) {
		t.Run(name, func(t *testing.T) {
			ran[name] = true
			res := run(name, extra)
			if len(res.Rows) == 0 {
				t.Fatalf("%s returned no rows", name)
			}
			f(res)
		})
	}

	check("events_per_day", nil, func(res *catalog.Result) {
		want := map[string]uint64{}
		for _, r := range fx.Records {
			if r.Dataset() == schemas.DatasetQuarantine {
				continue
			}
			want[r.EventTime().UTC().Format(time.DateOnly)+" "+r.Dataset()]++
		}
		got := map[string]uint64{}
		for _, row := range res.Rows {
			got[row[0].(string)+" "+row[1].(string)] = row[2].(uint64)
		}
		assertEqualCounts(t, got, want)
		if !sort.SliceIsSorted(res.Rows, func(i, j int) bool {
			return fmt.Sprint(res.Rows[i][:2]) < fmt.Sprint(res.Rows[j][:2])
		}) {
			t.Errorf("rows not ordered by day, dataset: %v", res.Rows)
		}
	})
	check("auth_failures_by_ip", map[string]string{"limit": "100000"}, func(res *catalog.Result) {
		type agg struct {
			n           uint64
			first, last time.Time
		}
		want := map[string]*agg{}
		for _, r := range fx.Records {
			a, ok := r.(*schemas.Auth)
			if !ok || a.Outcome != schemas.OutcomeFailure {
				continue
			}
			ts := a.Base.Timestamp.UTC().Truncate(time.Second)
			g := want[a.SourceIP]
			if g == nil {
				g = &agg{first: ts, last: ts}
				want[a.SourceIP] = g
			}
			g.n++
			if ts.Before(g.first) {
				g.first = ts
			}
			if ts.After(g.last) {
				g.last = ts
			}
		}
		if len(res.Rows) != len(want) {
			t.Errorf("%d rows, want %d sources", len(res.Rows), len(want))
		}
		var prev uint64 = 1 << 63
		for _, row := range res.Rows {
			ip, n := row[0].(string), row[1].(uint64)
			w := want[ip]
			if w == nil {
				t.Errorf("unexpected source %s", ip)
				continue
			}
			if n != w.n || row[2] != w.first.Format(time.DateTime) || row[3] != w.last.Format(time.DateTime) {
				t.Errorf("%s: got %v, want %d %s %s", ip, row[1:], w.n, w.first.Format(time.DateTime), w.last.Format(time.DateTime))
			}
			if n > prev {
				t.Errorf("not ordered by failures: %d after %d", n, prev)
			}
			prev = n
		}
		// limit cuts the list to the top sources.
		if top := run("auth_failures_by_ip", map[string]string{"limit": "3"}); len(top.Rows) != 3 || top.Rows[0][0] != res.Rows[0][0] {
			t.Errorf("limit=3 gave %v", top.Rows)
		}
	})
	check("top_attackers", map[string]string{"limit": "10000"}, func(res *catalog.Result) {
		assertKeys(t, res, 0, truthKeys["ssh_bruteforce"])
		// Batch view and event table agree on every source's failures.
		ev := run("auth_failures_by_ip", map[string]string{"limit": "100000"})
		failures := map[any]any{}
		for _, row := range ev.Rows {
			failures[row[0]] = row[1]
		}
		for _, row := range res.Rows {
			if failures[row[0]] != row[1] {
				t.Errorf("%s: %v failures in report_auth_ip_day, %v in events_auth", row[0], row[1], failures[row[0]])
			}
		}
	})
	check("bruteforce_timeline", map[string]string{"min_failures": "10"}, func(res *catalog.Result) {
		assertKeys(t, res, 1, truthKeys["ssh_bruteforce"])
	})
	check("password_spraying", nil, func(res *catalog.Result) {
		assertKeys(t, res, 0, truthKeys["password_spraying"])
	})
	check("distributed_bruteforce", nil, func(res *catalog.Result) {
		assertKeys(t, res, 0, truthKeys["distributed_bruteforce"])
	})
	check("port_scans", nil, func(res *catalog.Result) {
		assertKeys(t, res, 0, truthKeys["port_scan"])
	})
	check("blocked_ports", map[string]string{"limit": "65536"}, func(res *catalog.Result) {
		var blocked, want uint64
		for _, row := range res.Rows {
			blocked += row[1].(uint64)
		}
		for _, r := range fx.Records {
			if f, ok := r.(*schemas.Firewall); ok && (f.Action == "deny" || f.Action == "drop") {
				want++
			}
		}
		if blocked != want {
			t.Errorf("blocked %d, want %d firewall deny/drop records", blocked, want)
		}
	})
	check("ids_by_signature", map[string]string{"limit": "100000"}, func(res *catalog.Result) {
		var alerts, want uint64
		for _, row := range res.Rows {
			alerts += row[4].(uint64)
		}
		for _, r := range fx.Records {
			if r.Dataset() == schemas.DatasetIDS {
				want++
			}
		}
		if alerts != want {
			t.Errorf("alerts %d, want %d IDS records", alerts, want)
		}
	})
	check("web_errors_by_client", map[string]string{"limit": "100000"}, func(res *catalog.Result) {
		assertKeys(t, res, 0, truthKeys["web_scan"])
	})
	check("web_status_per_hour", nil, func(res *catalog.Result) {
		var req, want uint64
		for _, row := range res.Rows {
			req += row[1].(uint64)
		}
		for _, r := range fx.Records {
			if r.Dataset() == schemas.DatasetWeb {
				want++
			}
		}
		if req != want {
			t.Errorf("requests %d, want %d web records", req, want)
		}
	})
	check("daily_security_summary", nil, func(res *catalog.Result) {
		// The day's riskiest source is an attacker of the ground truth.
		attackers := map[string]bool{}
		for _, r := range fx.Truth.Records {
			attackers[r.Key] = true
		}
		for _, row := range res.Rows {
			if row[1].(uint64) == 1 && !attackers[row[2].(string)] {
				t.Errorf("rank 1 of %s is %s, not an attacker", row[0], row[2])
			}
		}
	})
	check("batch_runs", map[string]string{"status": "succeeded"}, func(res *catalog.Result) {
		jobs := map[string]int{}
		for _, row := range res.Rows {
			jobs[row[0].(string)]++
		}
		if jobs["reports"] != 2 || jobs["load-events"] != 2 {
			t.Errorf("succeeded runs per job %v, want 2 days of load-events and reports", jobs)
		}
	})
	check("quarantine_per_day", nil, func(res *catalog.Result) {
		var lines, want uint64
		for _, row := range res.Rows {
			lines += row[3].(uint64)
		}
		for _, r := range fx.Records {
			if r.Dataset() == schemas.DatasetQuarantine {
				want++
			}
		}
		if lines != want || want == 0 {
			t.Errorf("quarantined %d, want %d", lines, want)
		}
	})
	bf := truthKeys["ssh_bruteforce"][0]
	check("ip_activity", map[string]string{"ip": bf}, func(res *catalog.Result) {
		var want uint64
		for _, r := range fx.Records {
			if a, ok := r.(*schemas.Auth); ok && a.SourceIP == bf {
				want++
			}
		}
		if res.Rows[0][0] != "auth" || res.Rows[0][1] != "source" || res.Rows[0][2] != want {
			t.Errorf("ip_activity %s: %v, want auth source %d first", bf, res.Rows, want)
		}
	})
	user := truthKeys["distributed_bruteforce"][0]
	check("user_activity", map[string]string{"user": user}, func(res *catalog.Result) {
		var want uint64
		ips := map[string]bool{}
		for _, r := range fx.Records {
			if a, ok := r.(*schemas.Auth); ok && a.User == user && a.Outcome == schemas.OutcomeFailure {
				want++
				ips[a.SourceIP] = true
			}
		}
		var got uint64
		for _, row := range res.Rows {
			got += row[1].(uint64)
		}
		if got != want || len(res.Rows) != len(ips) {
			t.Errorf("user %s: %d failures from %d IPs, want %d from %d", user, got, len(res.Rows), want, len(ips))
		}
	})
	for _, r := range c.Reports() {
		if !ran[r.Name] {
			t.Errorf("report %s is not exercised by this test", r.Name)
		}
	}
}

func assertEqualCounts(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %d, want %d", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %d, want no row", k, g)
		}
	}
}

// assertKeys checks that every key appears in column col of the result.
func assertKeys(t *testing.T, res *catalog.Result, col int, keys []string) {
	t.Helper()
	have := map[string]bool{}
	for _, row := range res.Rows {
		have[row[col].(string)] = true
	}
	for _, k := range keys {
		if !have[k] {
			t.Errorf("%s: attacker %s of the ground truth is missing (%d rows)", res.Report, k, len(res.Rows))
		}
	}
}
