package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/querytest"
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

// TestServeDashboardInChromium runs `lambdalog serve` on a loopback port
// against ClickHouse loaded with generated traffic, a broker and a real
// speed layer (`lambdalog realtime`, default rules), and drives the
// dashboard in headless Chromium: no console errors, the live top-N panel
// shows a key the speed layer is counting, an alert raised by SSH failures
// produced during the test appears in the live panel within 2 s, the
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	broker := startBroker(t, ctx)
	speed := startRealtime(t, ctx, broker)
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// failures produces n failed SSH logins from ip, stamped now: the
	// speed layer's windows run on event time.
	failures := func(ip string, n int) {
		t.Helper()
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			line := fmt.Sprintf("<38>1 %s e2e sshd 100 - - Failed password for e2e%d from %s port %d ssh2",
				time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), i, ip, 50000+i)
			recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(ip), Value: []byte(line)})
		}
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Three failures (under the brute-force threshold of 5) give the live
	// top-N panel a key to show before the page loads.
	failures("198.18.7.7", 3)
	waitHTTP(t, speed+"/api/windows/top?rule=ssh_bruteforce", "198.18.7.7", 30*time.Second)

	const token = "e2e-token-0123456789"
	cmd := lambdalog(ctx, t, "serve", "--listen", "127.0.0.1:0", "--clickhouse", fx.DSN, "--brokers", broker, "--realtime-url", speed)
	cmd.Env = append(cmd.Env, "LAMBDALOG_SERVE_TOKEN="+token)
	base, stderr := runServeBinary(t, cmd)

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
	if top, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#top table`))); err != nil || !strings.Contains(top, "198.18.7.7") {
		t.Errorf("live top-N panel %q (%v), want the speed layer's key 198.18.7.7", top, err)
	}
	// Five failures from one source cross ssh_bruteforce's threshold.
	failures("198.19.66.6", 5)
	sent := time.Now()
	wctx, wcancel := context.WithTimeout(bctx, 2*time.Second)
	err = chromedp.Do(wctx, chromedp.WaitVisible(`//*[@id="alerts"]//li[contains(., "source_ip=198.19.66.6")]`))
	wcancel()
	if err != nil {
		t.Fatalf("alert not shown within 2s: %v", err)
	}
	latency := time.Since(sent)
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#alerts li`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "SSH brute force") || !strings.Contains(text, "source_ip=198.19.66.6") {
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

// startRealtime runs `lambdalog realtime` with the default rules on broker
// and returns its HTTP base URL once it is ready.
func startRealtime(t *testing.T, ctx context.Context, broker string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := lambdalog(ctx, t, "realtime", "--brokers", broker, "--http", addr)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("realtime stderr:\n%s", stderr.String())
		}
	})
	base := "http://" + addr
	waitHTTP(t, base+"/readyz", "", 60*time.Second)
	return base
}

// waitHTTP polls url until it answers 200 with a body containing want.
func waitHTTP(t *testing.T, url, want string, timeout time.Duration) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
			return
		}
	}
	t.Fatalf("%s: no 200 with %q within %v; last: %s", url, want, timeout, last)
}

// runServeBinary starts a `lambdalog serve` command, stops it (SIGINT) when
// the test ends, and returns the base URL from its first line ("serving
// on URL") and its stderr.
func runServeBinary(t *testing.T, cmd *exec.Cmd) (base string, stderr *syncBuffer) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
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
	base = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "serving on ")), "/")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("unexpected first line %q", line)
	}
	return base, stderr
}
