package server

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/querytest"
)

// benchGet measures whole API requests (auth, binding, ClickHouse, JSON or
// CSV) against the 24,000-event fixture, one client at a time.
func benchGet(b *testing.B, path string) {
	fx := querytest.Load(b, chtest.Shared(b), querytest.Options{})
	if err := merge.Migrate(context.Background(), fx.DB); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Catalog: loadCatalog(b), DB: fx.DB, Token: token})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptestServer(b, s)
	from, to := fx.Days()
	url := ts + path + "from=" + from + "&to=" + to
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		bytes += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/resp")
}

func BenchmarkReportEventsPerDayJSON(b *testing.B) {
	benchGet(b, "/api/reports/events_per_day?")
}

func BenchmarkReportAuthFailuresCSV(b *testing.B) {
	benchGet(b, "/api/reports/auth_failures_by_ip?format=csv&limit=1000&")
}

func BenchmarkSeriesHourly(b *testing.B) {
	benchGet(b, "/api/series/ssh_failed_logins_per_source_1h?step=1h&")
}
