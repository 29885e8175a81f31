package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

func genFiles(t *testing.T, dir string, seed string) map[string][]byte {
	t.Helper()
	truth := filepath.Join(dir, "t.jsonl")
	code, out, errOut := runInProcess(t, "gen", "--seed", seed, "--rate", "50000", "--duration", "10s",
		"--truth", truth, "--out", filepath.Join(dir, "out"))
	if code != 0 {
		t.Fatalf("gen exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "generated 500000 events") {
		t.Errorf("summary lacks the event count:\n%s", out)
	}
	files := map[string][]byte{}
	for _, name := range []string{"out/auth.log", "out/firewall.log", "out/ids.json", "out/web.log", "t.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
		files[name] = b
	}
	return files
}

// TestGenTwiceIsByteIdentical runs the documented determinism check:
// `gen --seed 1 --rate 50000 --duration 10s --truth t.jsonl --out DIR`
// twice gives identical files; another seed does not.
func TestGenTwiceIsByteIdentical(t *testing.T) {
	a := genFiles(t, t.TempDir(), "1")
	b := genFiles(t, t.TempDir(), "1")
	lines := 0
	for name, content := range a {
		if !bytes.Equal(content, b[name]) {
			t.Errorf("%s differs between two runs with seed 1", name)
		}
		lines += bytes.Count(content, []byte("\n"))
	}
	if n := lines - bytes.Count(a["t.jsonl"], []byte("\n")); n != 500000 {
		t.Errorf("files hold %d lines, want 500000", n)
	}
	recs, err := gen.ReadTruth(bytes.NewReader(a["t.jsonl"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Errorf("10s run has %d attack instances, want 6 (all but password_spraying)", len(recs))
	}
	c := genFiles(t, t.TempDir(), "2")
	for name := range a {
		if bytes.Equal(a[name], c[name]) {
			t.Errorf("%s is the same with seed 1 and seed 2", name)
		}
	}
}

func TestGenUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"gen", "--rate", "0", "--count", "10", "--out", t.TempDir()},
		{"gen", "--count", "10", "--duration", "1s", "--out", t.TempDir()},
		{"gen", "--attacks", "ssh_bruteforce,bogus", "--count", "1", "--out", t.TempDir()},
		{"gen", "--start", "yesterday", "--count", "1", "--out", t.TempDir()},
		{"gen", "--compression", "brotli", "--count", "1"},
		{"gen", "--attack-every", "1s", "--count", "1", "--out", t.TempDir()},
	} {
		if code, _, errOut := runInProcess(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

// TestGenProducesToKafka runs the command against an in-process broker and
// counts what arrives per topic against the command's own summary.
func TestGenProducesToKafka(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	dir := t.TempDir()
	truthFile := filepath.Join(dir, "t.jsonl")
	code, out, errOut := runInProcess(t, "gen", "--brokers", b.Addr(), "--seed", "3", "--rate", "20000",
		"--duration", "3s", "--pace=false", "--truth", truthFile, "--start", "now")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "generated 60000 events") {
		t.Fatalf("summary: %s", out)
	}
	cl := kafkatest.Client(t, b, kgo.ConsumeTopics("auth", "firewall", "ids", "web"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := map[string]int{}
	total := 0
	for total < 60000 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			per[r.Topic]++
			total++
			if len(r.Key) == 0 {
				t.Fatalf("record without key on %s: %s", r.Topic, r.Value)
			}
		})
	}
	if total != 60000 {
		t.Fatalf("read %d records, want 60000", total)
	}
	for _, topic := range []string{"auth", "firewall", "ids", "web"} {
		if per[topic] == 0 {
			t.Errorf("nothing on %s: %v", topic, per)
		}
	}
	recs, err := os.ReadFile(truthFile)
	if err != nil || !bytes.Contains(recs, []byte(`"rule":"port_scan"`)) {
		t.Errorf("truth file: %v\n%s", err, recs)
	}
	// --start now: event times are near the wall clock.
	var first gen.TruthRecord
	if rs, _ := gen.ReadTruth(bytes.NewReader(recs)); len(rs) > 0 {
		first = rs[0]
	}
	if d := time.Since(first.Start); d < 0 || d > time.Minute {
		t.Errorf("--start now: first attack at %s, %v ago", first.Start, d)
	}
}
