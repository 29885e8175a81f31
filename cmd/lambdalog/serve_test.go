package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/querytest"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/schemas"
)

const chromiumPath = "/usr/bin/chromium"

func TestServeRefusesToStartWithoutToken(t *testing.T) {
	code, _, errOut := runInProcess(t, "serve", "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "no bearer token") {
		t.Fatalf("exit %d %q, want 2 and the reason", code, errOut)
	}
}

func TestQueryCommand(t *testing.T) {
	fx := querytest.Load(t, chtest.Start(t), querytest.Options{})
	from, to := fx.Days()
	code, out, errOut := runInProcess(t, "query", "events_per_day", "--from", from, "--to", to, "--format", "csv", "--clickhouse", fx.DSN)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := map[string]int{}
	for _, r := range fx.Records {
		if r.Dataset() != schemas.DatasetQuarantine {
			want[r.EventTime().UTC().Format(time.DateOnly)+","+r.Dataset()]++
		}
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "day,dataset,events" || len(recs)-1 != len(want) {
		t.Fatalf("csv:\n%s\nwant %d rows", out, len(want))
	}
	for _, r := range recs[1:] {
		if fmt.Sprint(want[r[0]+","+r[1]]) != r[2] {
			t.Errorf("%v: want %d", r, want[r[0]+","+r[1]])
		}
	}
	code, out, _ = runInProcess(t, "query", "auth_failures_by_ip", "--from", from, "--to", to, "--param", "limit=2", "--format", "table", "--clickhouse", fx.DSN)
	if code != 0 || !strings.HasPrefix(out, "source_ip") || !strings.HasSuffix(out, "(2 rows)\n") {
		t.Errorf("table: %d\n%s", code, out)
	}
	code, out, _ = runInProcess(t, "query", "list", "--format", "json")
	var list []catalog.Report
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) < 12 {
		t.Errorf("list: %d %d reports", code, len(list))
	}
	for args, want := range map[string]string{
		"query nope": "unknown report",
		"query auth_failures_by_ip --param limit=0":     "parameter limit: 0 is outside",
		"query ip_activity":                             "parameter ip: required",
		"query auth_failures_by_ip --param evil=1;DROP": "unknown parameter",
		"query auth_failures_by_ip --from 2026-3-1":     "want YYYY-MM-DD",
		"query events_per_day --format xml":             "--format",
	} {
		code, _, errOut := runInProcess(t, append(strings.Fields(args), "--clickhouse", fx.DSN)...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d %q, want 2 and %q", args, code, errOut, want)
		}
	}
}

// sseServer is a stand-in for the speed layer's HTTP API (the realtime
// service, not landed yet): /api/alerts/stream sends every alert given to
// send (realtime/alert.Alert JSON) as an SSE event, /api/windows/top
// answers live windows.
type sseServer struct {
	*httptest.Server
	mu      sync.Mutex
	clients []chan string
}

func newSSEServer(t *testing.T) *sseServer {
	s := &sseServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts/stream", func(w http.ResponseWriter, r *http.Request) {
		ch := make(chan string, 8)
		s.mu.Lock()
		s.clients = append(s.clients, ch)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case a := <-ch:
				fmt.Fprintf(w, "event: alert\ndata: %s\n\n", a)
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.HandleFunc("GET /api/windows/top", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"windows":[{"rule_id":"ssh_bruteforce","key":"198.18.7.7","value":9},{"rule_id":"port_scan","key":"198.19.1.2","value":24}]}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *sseServer) send(alert string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		c <- alert
	}
	return len(s.clients)
}

// TestServeDashboardInChromium runs `lambdalog serve` on a loopback port
// against ClickHouse loaded with generated traffic, a broker and a
// stand-in speed layer, and drives the dashboard in headless Chromium: no
// console errors, an alert appears in the live panel within 2 s, the
// historical charts render with data, and the CSV export downloads the
// report's rows.
func TestServeDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required under CI=true: %v (apt-get install chromium)", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	fx := querytest.Load(t, chtest.Start(t), querytest.Options{})
	from, to := fx.Days()
	speed := newSSEServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	broker := startBroker(t, ctx)

	const token = "e2e-token-0123456789"
	cmd := lambdalog(ctx, t, "serve", "--listen", "127.0.0.1:0", "--clickhouse", fx.DSN, "--brokers", broker, "--realtime-url", speed.URL)
	cmd.Env = append(cmd.Env, "LAMBDALOG_SERVE_TOKEN="+token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("serve did not start: %v\n%s", err, stderr.String())
	}
	base := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "serving on ")), "/")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("unexpected first line %q", line)
	}

	downloads := t.TempDir()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1800),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	var mu sync.Mutex
	var consoleErrors []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				consoleErrors = append(consoleErrors, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+ev.ExceptionDetails.Text+" "+ev.ExceptionDetails.URL)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				consoleErrors = append(consoleErrors, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	events := true
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: &events}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/?token="+token+"&from="+from+"&to="+to),
		chromedp.WaitVisible(chromedp.CSS(`#chart-events svg circle.point`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-failures svg rect.bar`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-series svg polyline`)),
		chromedp.WaitVisible(chromedp.CSS(`#top table`)),
		chromedp.WaitVisible(chromedp.CSS(`#health table`)),
	); err != nil {
		t.Fatalf("page did not render: %v\nserve stderr:\n%s", err, stderr.String())
	}
	eval := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}

	// The token left the address bar.
	if search := fmt.Sprint(eval(`location.search`)); strings.Contains(search, token) {
		t.Errorf("token still in the URL: %s", search)
	}

	// The events chart has a point per dataset and day, the failures chart
	// a bar per top source.
	points := eval(`document.querySelectorAll('#chart-events svg circle.point').length`)
	bars := eval(`document.querySelectorAll('#chart-failures svg rect.bar').length`)
	series := fmt.Sprint(eval(`Array.from(document.querySelectorAll('#chart-events polyline')).map(p => p.dataset.series).join(',')`))
	datasets := map[string]bool{}
	for _, r := range fx.Records {
		if r.Dataset() != schemas.DatasetQuarantine {
			datasets[r.Dataset()] = true
		}
	}
	if len(strings.Split(series, ",")) != len(datasets) || points != float64(2*len(datasets)) {
		t.Errorf("events chart: series %v, %v points; want %d datasets x 2 days", series, points, len(datasets))
	}
	if bars != float64(15) {
		t.Errorf("failures chart: %v bars, want 15", bars)
	}

	// A live alert reaches the panel within 2 s.
	if err := chromedp.Do(bctx, chromedp.WaitVisible(`//span[@id="alerts-state" and text()="live"]`)); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	a := alert.Alert{ID: "e2e0000000000000000000000000001", Kind: "alert", Type: "start", Timestamp: time.Date(2026, 3, 2, 0, 5, 0, 0, time.UTC),
		RuleID: "port_scan", RuleName: "Port scan", RuleKind: "value_count", Severity: "high", SeverityID: 4, Datasets: []string{"firewall"},
		KeyFields: []string{"source_ip"}, KeyValues: []string{"198.19.66.6"}, Aggregate: "distinct", AggregateField: "destination_port",
		Value: 30, Threshold: 20, Precision: "exact", EventCount: 31}
	ab, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	alertJSON := string(ab)
	if n := speed.send(alertJSON); n == 0 {
		t.Fatal("no stream client connected to the speed layer")
	}
	wctx, wcancel := context.WithTimeout(bctx, 2*time.Second)
	err = chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(`#alerts li[data-id="e2e0000000000000000000000000001"]`)))
	wcancel()
	if err != nil {
		t.Fatalf("alert not shown within 2s: %v", err)
	}
	latency := time.Since(sent)
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#alerts li`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Port scan") || !strings.Contains(text, "source_ip=198.19.66.6") {
		t.Errorf("alert text %q", text)
	}
	t.Logf("alert shown %v after it was sent", latency)

	// CSV export downloads the report's rows.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`button.csv[data-report="auth_failures_by_ip"]`))); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(downloads, "auth_failures_by_ip_"+from+"_"+to+".csv")
	var data []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if data, err = os.ReadFile(file); err == nil && len(data) > 0 {
			break
		}
	}
	if len(data) == 0 {
		entries, _ := os.ReadDir(downloads)
		t.Fatalf("no download %s (dir has %v)", file, entries)
	}
	c, err := catalog.Load(queries.Reports, "reports")
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Run(ctx, fx.DB, "auth_failures_by_ip", map[string]string{"from": from, "to": to}, catalog.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wantCSV strings.Builder
	if err := want.WriteCSV(&wantCSV); err != nil {
		t.Fatal(err)
	}
	if string(data) != wantCSV.String() || len(want.Rows) == 0 {
		t.Errorf("downloaded CSV differs from the report:\n%s\nwant\n%s", data, wantCSV.String())
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100 gives PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shotFile := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shotFile, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shotFile)

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(consoleErrors, "\n"))
	}
}
