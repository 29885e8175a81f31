package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// TestDevDashboardDataWithinTwoMinutes runs `lambdalog dev` on a fresh
// data directory, as `make run` does, and checks through its serving API
// what the dashboard shows within two minutes of the start:
//   - live alerts: the alert stream (proxied from the speed layer) delivers
//     an alert;
//   - history: yesterday's events_per_day report counts every event of the
//     seeded day, loaded by the batch scheduler's catch-up;
//   - the merged series: points of the current traffic come from the speed
//     layer's per-minute aggregates (source "realtime") and are not all
//     zero.
func TestDevDashboardDataWithinTwoMinutes(t *testing.T) {
	if _, err := chserver.FindBinary(nil); err != nil && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := lambdalog(ctx, t, "dev", "--data", filepath.Join(t.TempDir(), "data"), "--rate", "2000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dev stderr:\n%s", stderr.String())
		}
	}()
	sc := bufio.NewScanner(stdout)
	var dashboard string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "dashboard: "); ok {
			dashboard = u
			break
		}
	}
	if dashboard == "" {
		t.Fatal("dev printed no dashboard URL")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	du, err := url.Parse(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	token := du.Query().Get("token")
	base := du.Scheme + "://" + du.Host
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultClient.Do(req)
	}
	deadline := start.Add(120 * time.Second)

	// Live alerts, read from the dashboard's stream while the rest runs.
	alerted := make(chan string, 1)
	go func() {
		resp, err := get("/api/alerts/stream")
		if err != nil {
			alerted <- "stream: " + err.Error()
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, `"rule_id"`) {
				alerted <- data
				return
			}
		}
		alerted <- "stream ended"
	}()

	// History: the seeded day, complete.
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour).Format(time.DateOnly)
	for {
		var rep struct {
			Rows [][]any `json:"rows"`
		}
		var loaded int64
		resp, err := get("/api/reports/events_per_day?from=" + yesterday + "&to=" + yesterday + "&format=json")
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(resp.Body).Decode(&rep)
			}
			resp.Body.Close()
		}
		for _, r := range rep.Rows {
			if len(r) == 3 {
				if n, ok := r[2].(float64); ok {
					loaded += int64(n)
				}
			}
		}
		if loaded == devHistoryEvents {
			t.Logf("history: %d events of %s in events_per_day after %v", loaded, yesterday, time.Since(start).Round(time.Second))
			break
		}
		if loaded > devHistoryEvents {
			t.Fatalf("events_per_day for %s counts %d events, more than the %d seeded", yesterday, loaded, devHistoryEvents)
		}
		if time.Now().After(deadline) {
			t.Fatalf("events_per_day for %s shows %d of %d seeded events after 2 minutes (last error %v)", yesterday, loaded, devHistoryEvents, err)
		}
		time.Sleep(time.Second)
	}
	select {
	case a := <-alerted:
		if !strings.Contains(a, `"rule_id"`) {
			t.Fatalf("live alerts: %s", a)
		}
		t.Logf("live alert after %v: %.120s", time.Since(start).Round(time.Second), a)
	case <-time.After(time.Until(deadline)):
		t.Fatal("no live alert on the dashboard's stream within 2 minutes")
	}

	metric := metrics.Web4xxPerClientHour
	for {
		var s merge.Series
		resp, err := get("/api/series/" + metric + "?step=1h")
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(resp.Body).Decode(&s)
			}
			resp.Body.Close()
		}
		var realtime int64
		for _, p := range s.Points {
			if p.Source == "realtime" {
				realtime += p.Value
			}
		}
		if err == nil && realtime > 0 {
			t.Logf("%s: %d web 4xx responses in the real-time points", metric, realtime)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no real-time data in /api/series/%s within 2 minutes (last error %v, series %+v)", metric, err, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
