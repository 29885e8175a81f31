package reports

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/batchtest"
	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// fixture writes deterministic events around one day and returns the
// records (the independent computation's input) and the source.
func fixture(t testing.TB, fsys storage.FS, loc *time.Location, n int) ([]schemas.Record, source.Source) {
	t.Helper()
	g := batchtest.NewGen(42, 300)
	from := time.Date(2026, 3, 28, 20, 0, 0, 0, time.UTC)
	recs := g.Events(n, from, from.Add(30*time.Hour), [4]int{4, 3, 1, 3})
	if _, err := batchtest.WriteLayout(context.Background(), fsys, recs, batchtest.WriteOptions{Location: loc, FilesPerHour: 1, RowGroupRows: 700}); err != nil {
		t.Fatal(err)
	}
	return recs, &source.Layout{FS: fsys, Location: loc, Datasets: ReportDatasets()}
}

func localFS(t testing.TB) storage.FS {
	t.Helper()
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func key(period time.Time, keys ...string) string {
	return period.UTC().Format("01-02T15:04") + "|" + strings.Join(keys, "|")
}

func resultMap(r Result) map[string][]int64 {
	out := map[string][]int64{}
	for _, row := range r.Rows {
		out[key(row.Period, row.Keys...)] = row.Values
	}
	return out
}

func compare(t *testing.T, name string, got map[string][]int64, want map[string][]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d groups, want %d", name, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%s] = %v, want %v", name, k, got[k], w)
			}
		}
	}
}

// reference computes the expected reports row by row with plain maps.
type reference struct {
	from, to time.Time
	recs     []schemas.Record
}

func (r reference) each(fn func(schemas.Record)) {
	for _, x := range r.recs {
		if t := x.EventTime(); !t.Before(r.from) && t.Before(r.to) {
			fn(x)
		}
	}
}

func hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func (r reference) authIP(window bool) map[string][]int64 {
	type agg struct {
		v     [3]int64
		users map[string]bool
	}
	m := map[string]*agg{}
	r.each(func(x schemas.Record) {
		a, ok := x.(*schemas.Auth)
		if !ok || a.SourceIP == "" {
			return
		}
		p := r.from
		if window {
			p = hour(a.Base.Timestamp)
		}
		k := key(p, a.SourceIP)
		g := m[k]
		if g == nil {
			g = &agg{users: map[string]bool{}}
			m[k] = g
		}
		if a.Outcome == "failure" {
			g.v[0]++
		}
		if a.Outcome == "success" {
			g.v[1]++
		}
		if a.Action == "invalid_user" || a.Action == "invalid_user_request" || a.Action == "user_unknown" {
			g.v[2]++
		}
		if (a.Outcome == "failure" || a.Outcome == "success") && a.User != "" {
			g.users[a.User] = true
		}
	})
	out := map[string][]int64{}
	for k, g := range m {
		out[k] = []int64{g.v[0], g.v[1], g.v[2], int64(len(g.users))}
	}
	return out
}

func (r reference) firewall() (ipPort, scan map[string][]int64) {
	ipPort, scan = map[string][]int64{}, map[string][]int64{}
	ports := map[string]map[uint16]bool{}
	r.each(func(x schemas.Record) {
		f, ok := x.(*schemas.Firewall)
		if !ok || (f.Action != "deny" && f.Action != "drop") {
			return
		}
		k := key(hour(f.Base.Timestamp), f.SourceIP, strconv.Itoa(int(f.DestinationPort)))
		if ipPort[k] == nil {
			ipPort[k] = []int64{0, 0}
		}
		if f.Action == "deny" {
			ipPort[k][0]++
		} else {
			ipPort[k][1]++
		}
		sk := key(r.from, f.SourceIP)
		if scan[sk] == nil {
			scan[sk] = []int64{0, 0}
			ports[sk] = map[uint16]bool{}
		}
		scan[sk][0]++
		ports[sk][f.DestinationPort] = true
		scan[sk][1] = int64(len(ports[sk]))
	})
	return
}

func (r reference) ids() map[string][]int64 {
	out := map[string][]int64{}
	r.each(func(x schemas.Record) {
		a, ok := x.(*schemas.IDS)
		if !ok {
			return
		}
		k := key(hour(a.Base.Timestamp), strconv.FormatInt(a.SignatureID, 10), a.Signature, a.Category, strconv.FormatInt(a.Severity, 10), a.SourceIP)
		if out[k] == nil {
			out[k] = []int64{0}
		}
		out[k][0]++
	})
	return out
}

func (r reference) webStatus() map[string][]int64 {
	out := map[string][]int64{}
	r.each(func(x schemas.Record) {
		w, ok := x.(*schemas.Web)
		if !ok {
			return
		}
		k := key(hour(w.Base.Timestamp))
		if out[k] == nil {
			out[k] = make([]int64, 7)
		}
		out[k][0]++
		if c := int(w.Status) / 100; c >= 1 && c <= 5 {
			out[k][c]++
		}
		out[k][6] += w.Bytes
	})
	return out
}

func testReports(t *testing.T, fsys storage.FS, loc *time.Location, dayLoc *time.Location) {
	recs, src := fixture(t, fsys, loc, 20000)
	day := time.Date(2026, 3, 29, 0, 0, 0, 0, dayLoc)
	from, to := day, time.Date(2026, 3, 30, 0, 0, 0, 0, dayLoc)
	out, err := Compute(context.Background(), src, fsys, from, to, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ref := reference{from: from, to: to, recs: recs}
	var inside int64
	ref.each(func(schemas.Record) { inside++ })
	if out.RowsRead != inside {
		t.Errorf("rows read %d, want %d events inside the interval", out.RowsRead, inside)
	}
	compare(t, "auth_ip_hour", resultMap(out.Results["auth_ip_hour"]), ref.authIP(true))
	compare(t, "auth_ip_day", resultMap(out.Results["auth_ip_day"]), ref.authIP(false))
	ipPort, scan := ref.firewall()
	compare(t, "firewall_ip_port_hour", resultMap(out.Results["firewall_ip_port_hour"]), ipPort)
	compare(t, "firewall_scan_day", resultMap(out.Results["firewall_scan_day"]), scan)
	compare(t, "ids_alerts_hour", resultMap(out.Results["ids_alerts_hour"]), ref.ids())
	compare(t, "web_status_hour", resultMap(out.Results["web_status_hour"]), ref.webStatus())

	// Top sources: the reference's day aggregates ranked by failures.
	type kv struct {
		ip string
		n  int64
	}
	var ranked []kv
	for k, v := range ref.authIP(false) {
		ranked = append(ranked, kv{strings.SplitN(k, "|", 2)[1], v[0]})
	}
	sort.Slice(ranked, func(i, j int) bool {
		if ranked[i].n != ranked[j].n {
			return ranked[i].n > ranked[j].n
		}
		return ranked[i].ip < ranked[j].ip
	})
	tt, _ := out.Table("report_auth_top_sources")
	if len(tt.Rows) != TopN {
		t.Fatalf("top sources: %d rows", len(tt.Rows))
	}
	for i, row := range tt.Rows {
		if row.Keys[0] != strconv.Itoa(i+1) || row.Keys[1] != ranked[i].ip || row.Values[0] != ranked[i].n {
			t.Errorf("top source %d: %v %v, want %s %d", i+1, row.Keys, row.Values, ranked[i].ip, ranked[i].n)
		}
	}
	// The summary's top entry has the highest documented score.
	sum := out.Summary()
	if len(sum) < TopN {
		t.Fatalf("summary has %d sources", len(sum))
	}
	for i := 1; i < len(sum); i++ {
		if sum[i].Risk > sum[i-1].Risk {
			t.Fatalf("summary not sorted at %d", i)
		}
	}
	s0 := sum[0]
	authDay := ref.authIP(false)[key(from, s0.SourceIP)]
	if s0.AuthFailures != authDay[0] || s0.AuthDistinctUsers != authDay[3] || s0.FirewallPorts != scan[key(from, s0.SourceIP)][1] {
		t.Errorf("summary row %+v disagrees with the reference (auth %v, scan %v)", s0, authDay, scan[key(from, s0.SourceIP)])
	}

	// One definition per metric: the batch values equal the definition
	// applied row by row over the same records.
	var inRecs []schemas.Record
	ref.each(func(r schemas.Record) { inRecs = append(inRecs, r) })
	for _, m := range metrics.All() {
		want := map[string][]int64{}
		for c, v := range m.Reference(inRecs) {
			want[key(c.Window, c.Key)] = []int64{v}
		}
		if len(want) == 0 {
			t.Fatalf("metric %s: no reference values; the fixture does not exercise it", m.Name)
		}
		compare(t, "metric "+m.Name, resultMap(out.Results["metric:"+m.Name]), want)
	}
}

func TestReportsEqualReference(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("local/utc-partitions/berlin-day", func(t *testing.T) { testReports(t, localFS(t), time.UTC, berlin) })
	// Half-hour partitions straddle the interval's ends: rows are filtered
	// one by one there.
	t.Run("local/kolkata-partitions/utc-day", func(t *testing.T) { testReports(t, localFS(t), kolkata, time.UTC) })
	t.Run("hdfs/utc", func(t *testing.T) {
		srv := hdfstest.Start(t)
		fsys, err := storage.Open(context.Background(), srv.URL()+"/lambdalog", storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		testReports(t, fsys, time.UTC, time.UTC)
	})
}

func TestTableSchemas(t *testing.T) {
	ts := TableSchemas()
	if len(ts) != 16 {
		t.Fatalf("%d tables", len(ts))
	}
	seen := map[string]bool{}
	for _, tb := range ts {
		if seen[tb.Name] || !strings.HasPrefix(tb.Name, "report_") || len(tb.Values) == 0 {
			t.Errorf("table %+v", tb)
		}
		seen[tb.Name] = true
	}
}
