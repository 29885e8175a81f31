package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/config"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// TestRealtimeAppliesGCSettings runs `lambdalog realtime` and reads the
// GOGC and soft memory limit the process runs with from its /metrics (the
// Go collector's go_gc_gogc_percent and go_gc_gomemlimit_bytes):
// realtime.gc_percent and realtime.memory_limit_mib when set, their
// defaults when not (both unlike Go's own), and the GOGC and GOMEMLIMIT
// environment variables over both.
func TestRealtimeAppliesGCSettings(t *testing.T) {
	def := config.Default().Realtime
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 1})
	testGCSettings(t, "LAMBDALOG_REALTIME_", def.GCPercent, def.MemoryLimitMiB, func(t *testing.T) []string {
		return []string{"realtime", "--brokers", b.Addr(), "--set", "realtime.minutes=false",
			"--set", "realtime.transactional_id=gc-test-" + t.Name()}
	})
}

// TestConsumeAppliesGCSettings is the same for `lambdalog consume`:
// consumer.gc_percent and consumer.memory_limit_mib.
func TestConsumeAppliesGCSettings(t *testing.T) {
	def := config.Default().Consumer
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 1})
	testGCSettings(t, "LAMBDALOG_CONSUMER_", def.GCPercent, def.MemoryLimitMiB, func(t *testing.T) []string {
		return []string{"consume", "--brokers", b.Addr(), "--dataset", "file://" + t.TempDir()}
	})
}

// testGCSettings checks the command args(t) runs with the settings under
// envPrefix (GC_PERCENT, MEMORY_LIMIT_MIB), with their defaults
// (defGC, defMiB) when unset, and under GOGC and GOMEMLIMIT when those are.
func testGCSettings(t *testing.T, envPrefix string, defGC, defMiB int, args func(*testing.T) []string) {
	if defGC == 100 || defGC == 137 || defMiB == 0 || defMiB == 1000 {
		t.Fatalf("defaults gc_percent %d, memory_limit_mib %d: the test cannot tell them from Go's or its own settings", defGC, defMiB)
	}
	mib := func(n int) string { return strconv.FormatFloat(float64(int64(n)<<20), 'g', -1, 64) }
	gc, limit := envPrefix+"GC_PERCENT=137", envPrefix+"MEMORY_LIMIT_MIB=1000"
	for _, c := range []struct {
		name           string
		env            []string
		gogc, memlimit string
	}{
		{"settings", []string{gc, limit}, "137", mib(1000)},
		{"defaults", nil, strconv.Itoa(defGC), mib(defMiB)},
		{"environment wins", []string{gc, "GOGC=90", limit, "GOMEMLIMIT=900MiB"}, "90", mib(900)},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := gcMetrics(t, c.env, args(t)...)
			if m["go_gc_gogc_percent"] != c.gogc || m["go_gc_gomemlimit_bytes"] != c.memlimit {
				t.Errorf("GC metrics %v, want gogc %s, memory limit %s", m, c.gogc, c.memlimit)
			}
		})
	}
}

// gcMetrics starts lambdalog with args and --http on a free port, env
// added (GOGC and GOMEMLIMIT unset unless env sets them), and returns
// go_gc_gogc_percent and go_gc_gomemlimit_bytes from its /metrics.
func gcMetrics(t *testing.T, env []string, args ...string) map[string]string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := lambdalog(ctx, t, append(args, "--http", addr)...)
	cmd.Env = append(withoutEnv(withoutEnv(cmd.Env, "GOGC"), "GOMEMLIMIT"), env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], stderr.String())
		}
	}()
	re := regexp.MustCompile(`(?m)^(go_gc_gogc_percent|go_gc_gomemlimit_bytes) (\S+)$`)
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out := map[string]string{}
		for _, m := range re.FindAllSubmatch(body, -1) {
			out[string(m[1])] = string(m[2])
		}
		if len(out) == 2 {
			return out
		}
		last = resp.Status
	}
	t.Fatalf("no go_gc_gogc_percent and go_gc_gomemlimit_bytes on /metrics within 60 s; last: %s", last)
	return nil
}

// withoutEnv drops name from an environment.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestBatchAppliesGCSettings checks setBatchGC, which every batch command
// runs before its work: batch.gc_percent and batch.memory_limit_mib when
// set, their defaults when not, and GOGC and GOMEMLIMIT over both. It runs
// in this process (batch commands serve no /metrics outside schedule) and
// puts the runtime's settings back afterwards.
func TestBatchAppliesGCSettings(t *testing.T) {
	gc0 := debug.SetGCPercent(100)
	lim0 := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(gc0); debug.SetMemoryLimit(lim0) })
	def := config.Default().Batch
	if def.GCPercent == 100 || def.MemoryLimitMiB == 0 {
		t.Fatalf("defaults gc_percent %d, memory_limit_mib %d: the test cannot tell them from Go's", def.GCPercent, def.MemoryLimitMiB)
	}
	for _, c := range []struct {
		name         string
		gc, mib      int
		gogc, memlim string
		wantGC       int
		wantLimitMiB int64
	}{
		{"settings", 137, 1000, "", "", 137, 1000},
		{"defaults", def.GCPercent, def.MemoryLimitMiB, "", "", def.GCPercent, int64(def.MemoryLimitMiB)},
		{"zero keeps Go's", 0, 0, "", "", 100, -1},
		{"environment wins", 137, 1000, "90", "900MiB", 100, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			// The runtime read GOGC and GOMEMLIMIT at start; setting them
			// now only tells setBatchGC to leave the runtime alone.
			t.Setenv("GOGC", c.gogc)
			t.Setenv("GOMEMLIMIT", c.memlim)
			cfg := config.Default()
			cfg.Batch.GCPercent, cfg.Batch.MemoryLimitMiB = c.gc, c.mib
			setBatchGC(&env{cfg: cfg})
			gc := debug.SetGCPercent(100)
			lim := debug.SetMemoryLimit(-1)
			wantLim := int64(math.MaxInt64)
			if c.wantLimitMiB > 0 {
				wantLim = c.wantLimitMiB << 20
			}
			if gc != c.wantGC || lim != wantLim {
				t.Errorf("GOGC %d, memory limit %d; want %d and %d", gc, lim, c.wantGC, wantLim)
			}
		})
	}
}
