package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chserver"
)

var statusRE = regexp.MustCompile(`^broker up (\S+) \| clickhouse up (\S+) \| in (\d+) ev/s \((\d+) total\)`)

// runDevUntilFlowing starts `lambdalog dev` on dataDir, waits for a status
// line that shows the broker and ClickHouse up and events flowing, stops it
// with SIGINT and returns the last total of events seen.
func runDevUntilFlowing(t *testing.T, dataDir string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := lambdalog(ctx, t, "dev", "--data", dataDir, "--rate", "2000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sc := bufio.NewScanner(stdout)
	var total int64 = -1
	for sc.Scan() {
		m := statusRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		rate, _ := strconv.Atoi(m[3])
		total, _ = strconv.ParseInt(m[4], 10, 64)
		if rate > 0 {
			break
		}
	}
	if total < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no status line with events flowing; stderr:\n%s", stderr.String())
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("events flowed only after %v, want within 60s", d)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev did not exit cleanly on SIGINT: %v\n%s", err, stderr.String())
	}
	return total
}

func TestDevStartsStopsAndReusesData(t *testing.T) {
	if _, err := chserver.FindBinary(nil); err != nil && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	first := runDevUntilFlowing(t, dataDir)

	// No ClickHouse server may outlive dev.
	if pids := serversUsing(t, dataDir); len(pids) > 0 {
		t.Fatalf("clickhouse processes %v still running after dev stopped", pids)
	}
	for _, sub := range []string{"kafka", "clickhouse"} {
		if _, err := os.Stat(filepath.Join(dataDir, sub)); err != nil {
			t.Errorf("dev left no %s state: %v", sub, err)
		}
	}
	second := runDevUntilFlowing(t, dataDir)
	if second <= first {
		t.Errorf("second run's event total %d does not continue the first run's %d: the broker log was not reused", second, first)
	}
}

// serversUsing lists live processes whose command line mentions dir.
func serversUsing(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), dir) {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
