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

// TestDevSeriesShowRealtimeData runs `lambdalog dev` and asks its serving
// API for a shared metric's series over the last hours: with no batch run
// yet, points of the current traffic come from the speed layer's
// per-minute aggregates (source "realtime") and are not all zero.
func TestDevSeriesShowRealtimeData(t *testing.T) {
	if _, err := chserver.FindBinary(nil); err != nil && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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
	metric := metrics.Web4xxPerClientHour
	deadline := time.Now().Add(60 * time.Second)
	for {
		var s merge.Series
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, du.Scheme+"://"+du.Host+"/api/series/"+metric+"?step=1h", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
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
			t.Fatalf("no real-time data in /api/series/%s after 60 s (last error %v, series %+v)", metric, err, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
