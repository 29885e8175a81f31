package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
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
	if def.GCPercent == 100 || def.GCPercent == 137 || def.MemoryLimitMiB == 0 || def.MemoryLimitMiB == 1000 {
		t.Fatalf("defaults gc_percent %d, memory_limit_mib %d: the test cannot tell them from Go's or its own settings", def.GCPercent, def.MemoryLimitMiB)
	}
	mib := func(n int) string { return strconv.FormatFloat(float64(int64(n)<<20), 'g', -1, 64) }
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 1})
	for _, c := range []struct {
		name           string
		env            []string
		gogc, memlimit string
	}{
		{"settings", []string{"LAMBDALOG_REALTIME_GC_PERCENT=137", "LAMBDALOG_REALTIME_MEMORY_LIMIT_MIB=1000"}, "137", mib(1000)},
		{"defaults", nil, strconv.Itoa(def.GCPercent), mib(def.MemoryLimitMiB)},
		{"environment wins", []string{"LAMBDALOG_REALTIME_GC_PERCENT=137", "GOGC=90", "LAMBDALOG_REALTIME_MEMORY_LIMIT_MIB=1000", "GOMEMLIMIT=900MiB"}, "90", mib(900)},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := gcMetrics(t, c.env, "realtime", "--brokers", b.Addr(), "--set", "realtime.minutes=false",
				"--set", "realtime.transactional_id=gc-test-"+t.Name())
			if m["go_gc_gogc_percent"] != c.gogc || m["go_gc_gomemlimit_bytes"] != c.memlimit {
				t.Errorf("GC metrics %v, want gogc %s, memory limit %s", m, c.gogc, c.memlimit)
			}
		})
	}
}

// TestConsumeAppliesGCSettings is TestRealtimeAppliesGCSettings for
// `lambdalog consume`: consumer.gc_percent and consumer.memory_limit_mib,
// their defaults, and the environment over both.
func TestConsumeAppliesGCSettings(t *testing.T) {
	def := config.Default().Consumer
	if def.GCPercent == 100 || def.GCPercent == 137 || def.MemoryLimitMiB == 0 || def.MemoryLimitMiB == 1000 {
		t.Fatalf("defaults gc_percent %d, memory_limit_mib %d: the test cannot tell them from Go's or its own settings", def.GCPercent, def.MemoryLimitMiB)
	}
	mib := func(n int) string { return strconv.FormatFloat(float64(int64(n)<<20), 'g', -1, 64) }
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 1})
	for _, c := range []struct {
		name           string
		env            []string
		gogc, memlimit string
	}{
		{"settings", []string{"LAMBDALOG_CONSUMER_GC_PERCENT=137", "LAMBDALOG_CONSUMER_MEMORY_LIMIT_MIB=1000"}, "137", mib(1000)},
		{"defaults", nil, strconv.Itoa(def.GCPercent), mib(def.MemoryLimitMiB)},
		{"environment wins", []string{"LAMBDALOG_CONSUMER_GC_PERCENT=137", "GOGC=90", "LAMBDALOG_CONSUMER_MEMORY_LIMIT_MIB=1000", "GOMEMLIMIT=900MiB"}, "90", mib(900)},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := gcMetrics(t, c.env, "consume", "--brokers", b.Addr(), "--dataset", "file://"+t.TempDir())
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
