package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// ingestLines returns n distinct generated sshd lines and the key each
// must get: its source IP, or the syslog host when the line has none.
func ingestLines(t *testing.T, seed uint64, n int) (lines, keys []string) {
	t.Helper()
	g, err := gen.New(gen.Options{Seed: seed, Rate: 20000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var l gen.Line
	for len(lines) < n && g.Next(&l) {
		v := string(l.Value)
		if l.Dataset != gen.Auth || seen[v] {
			continue
		}
		seen[v] = true
		k := string(l.Key)
		if !strings.Contains(v, k) {
			k = strings.Fields(v)[2]
		}
		lines, keys = append(lines, v), append(keys, k)
	}
	return lines, keys
}

func writeLines(t *testing.T, name string, lines []string, flag int) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		f.WriteString(l + "\n")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// readTopic reads topic from the start until want records arrived, then
// for settle more to catch extras; it returns value -> count and
// value -> key.
func readTopic(t *testing.T, addr, topic string, want int, settle time.Duration) (map[string]int, map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	count, keys := map[string]int{}, map[string]string{}
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var deadline time.Time
	for {
		if total >= want && deadline.IsZero() {
			deadline = time.Now().Add(settle)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return count, keys
		}
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", total, want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			count[string(r.Value)]++
			keys[string(r.Value)] = string(r.Key)
			total++
		})
	}
}

// TestIngestFileAndStdin runs `lambdalog ingest --format sshd --topic auth
// FILE` and then the same lines on stdin against an in-process broker.
func TestIngestFileAndStdin(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	lines, keys := ingestLines(t, 21, 3000)
	name := filepath.Join(t.TempDir(), "auth.log")
	writeLines(t, name, lines, os.O_TRUNC)
	code, out, errOut := runInProcess(t, "ingest", "--brokers", b.Addr(), "--format", "sshd", "--topic", "auth", name)
	if code != 0 || !strings.Contains(out, "ingested 3000 lines") || !strings.Contains(out, "acked 3000 of 3000 records") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	count, got := readTopic(t, b.Addr(), "auth", 3000, 200*time.Millisecond)
	for i, l := range lines {
		if count[l] != 1 || got[l] != keys[i] {
			t.Fatalf("line %d: delivered %d times with key %q, want once with %q", i, count[l], got[l], keys[i])
		}
	}
	if len(count) != 3000 {
		t.Errorf("%d distinct records, want 3000", len(count))
	}

	// stdin, with the topic taken from topics.sources by format.
	var so, se bytes.Buffer
	stdin := strings.NewReader(strings.Join(lines[:100], "\n") + "\n")
	if code := run(context.Background(), []string{"ingest", "--brokers", b.Addr(), "--format", "sshd", "--quiet"}, stdin, &so, &se, nil); code != 0 {
		t.Fatalf("stdin: exit %d: %s %s", code, so.String(), se.String())
	}
	count, _ = readTopic(t, b.Addr(), "auth", 3100, 200*time.Millisecond)
	for i, l := range lines {
		want := 1
		if i < 100 {
			want = 2
		}
		if count[l] != want {
			t.Fatalf("after stdin, line %d delivered %d times, want %d", i, count[l], want)
		}
	}
}

func TestIngestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"ingest"},
		{"ingest", "--format", "bogus", "--topic", "auth"},
		{"ingest", "--topic", "nosuchtopic"},
		{"ingest", "--format", "sshd", "--compression", "brotli"},
		{"ingest", "--format", "sshd", "--long-line-keep", "0"},
	} {
		if code, _, errOut := runInProcess(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
	if code, _, errOut := runInProcess(t, "ingest", "--brokers", "127.0.0.1:1", "--format", "sshd", "/nonexistent/file"); code != 1 {
		t.Errorf("missing file: exit %d, want 1\n%s", code, errOut)
	}
}

// startBroker runs `lambdalog broker` as a subprocess and returns its
// address.
func startBroker(t *testing.T, ctx context.Context) string {
	t.Helper()
	cmd := lambdalog(ctx, t, "broker", "--listen", "127.0.0.1:0", "--partitions", "3")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading broker address: %v", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "broker listening on "))
}

// TestIngestFollowKillAndRestart runs the broker and `ingest --follow` as
// subprocesses: lines are appended, the ingester is killed (SIGKILL), the
// file is rotated while it is down, and a restart must ship everything
// not yet shipped (lines acknowledged before the kill but after the last
// state write may come twice). A clean stop (SIGINT) then a restart with
// nothing new sends nothing.
func TestIngestFollowKillAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	addr := startBroker(t, ctx)
	dir := t.TempDir()
	name := filepath.Join(dir, "auth.log")
	state := filepath.Join(dir, "state.json")
	lines, _ := ingestLines(t, 22, 2000)
	writeLines(t, name, lines[:500], os.O_TRUNC)

	start := func() (*os.Process, *bytes.Buffer, func() error) {
		cmd := lambdalog(ctx, t, "ingest", "--brokers", addr, "--topic", "auth", "--format", "sshd", "--follow",
			"--state", state, "--poll", "20ms", "--state-interval", "50ms", name)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd.Process, &stderr, cmd.Wait
	}
	p, _, wait := start()
	readTopic(t, addr, "auth", 500, 0)
	writeLines(t, name, lines[500:1000], os.O_APPEND)
	readTopic(t, addr, "auth", 1000, 0)
	time.Sleep(150 * time.Millisecond) // a few state writes
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()

	// While down: more lines, then rotation and a new file.
	writeLines(t, name, lines[1000:1200], os.O_APPEND)
	if err := os.Rename(name, name+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(t, name, lines[1200:1500], os.O_TRUNC)

	p, stderr, wait := start()
	readTopic(t, addr, "auth", 1500, 0)
	writeLines(t, name, lines[1500:], os.O_APPEND)
	count, _ := readTopic(t, addr, "auth", 2000, 0)
	time.Sleep(100 * time.Millisecond)
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("ingest did not exit 0 on SIGINT: %v\n%s", err, stderr.String())
	}
	count, _ = readTopic(t, addr, "auth", 2000, 300*time.Millisecond)
	dups := 0
	for i, l := range lines {
		switch c := count[l]; {
		case c == 0:
			t.Errorf("line %d never delivered", i)
		case c > 2 || (c == 2 && i >= 1000):
			t.Errorf("line %d delivered %d times", i, c)
		case c == 2:
			dups++
		}
	}
	t.Logf("re-sent after SIGKILL: %d lines (acknowledged after the last state write)", dups)
	total := 0
	for _, c := range count {
		total += c
	}

	// Clean restart with nothing new: nothing is sent.
	p, stderr, wait = start()
	time.Sleep(300 * time.Millisecond)
	p.Signal(os.Interrupt)
	if err := wait(); err != nil {
		t.Fatalf("idle run: %v\n%s", err, stderr.String())
	}
	after, _ := readTopic(t, addr, "auth", total, 300*time.Millisecond)
	n := 0
	for _, c := range after {
		n += c
	}
	if n != total {
		t.Errorf("an idle restart after a clean stop sent %d records", n-total)
	}
}
