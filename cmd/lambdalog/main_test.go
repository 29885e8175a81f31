package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMain lets tests run the real binary as a subprocess: the test binary
// re-executes itself with LLTEST_RUN_MAIN=1 and behaves as lambdalog.
func TestMain(m *testing.M) {
	if os.Getenv("LLTEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// lambdalog returns a command running this binary as `lambdalog args...`.
func lambdalog(ctx context.Context, t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "LLTEST_RUN_MAIN=1")
	cmd.Dir = t.TempDir()
	return cmd
}

func runInProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

func TestConfigCheckReportsEveryProblem(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfgFile, []byte("topics:\n  partitions: lots\nkafka:\n  brokerz: [a:1]\n"), 0o600)
	code, out, _ := runInProcess(t, "config", "check", "--config", cfgFile)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{"topics.partitions", "expected an integer", "kafka.brokerz", "unknown key", `did you mean "brokers"`, "bad.yaml:2", "bad.yaml:4"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := runInProcess(t, "config", "check"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("defaults: exit %d, %q", code, out)
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"config", "print", "--clickhouse", "clickhouse://u:topsecret@h:9000/db"}, nil, &out, io.Discard,
		[]string{"LAMBDALOG_SERVE_TOKEN=tok123456"})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if s := out.String(); strings.Contains(s, "topsecret") || strings.Contains(s, "tok123456") || !strings.Contains(s, "clickhouse://u:*****@h:9000/db") {
		t.Errorf("config print leaks or mangles secrets:\n%s", s)
	}
}

func TestUsageAndNotBuiltExitCodes(t *testing.T) {
	if code, _, errOut := runInProcess(t, "nosuch"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := runInProcess(t, "broker", "--partitions"); code != 2 || !strings.Contains(errOut, "flag needs an argument") {
		t.Errorf("bad flag: %d %q", code, errOut)
	}
	for _, c := range commands() {
		if !strings.HasSuffix(c.summary, "(not built yet)") {
			continue
		}
		code, _, errOut := runInProcess(t, c.name)
		if code != 1 || !strings.Contains(errOut, "not built yet") {
			t.Errorf("%s: exit %d %q, want 1 and a not-built message", c.name, code, errOut)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runInProcess(t, "help", c.name)
		if code != 0 || !strings.Contains(out, "Usage: "+c.usage) {
			t.Errorf("help %s: exit %d\n%s", c.name, code, out)
		}
		var cf commonFlags
		newFlagSet(c, &cf).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "--"+f.Name) {
				t.Errorf("help %s does not document --%s", c.name, f.Name)
			}
			if f.Usage == "" {
				t.Errorf("%s --%s has no usage text", c.name, f.Name)
			}
		})
	}
}

// TestBrokerSubprocessProduceConsume runs `lambdalog broker` as a separate
// process on a free port and round-trips records through it.
func TestBrokerSubprocessProduceConsume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := lambdalog(ctx, t, "broker", "--listen", "127.0.0.1:0", "--partitions", "3", "--http", "127.0.0.1:0")
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
		if t.Failed() {
			t.Logf("broker stderr:\n%s", stderr.String())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading broker address: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "broker listening on "))

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("auth"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 100
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(fmt.Sprintf("10.0.0.%d", i%7)), Value: []byte(fmt.Sprintf("line %d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := map[string]int{}
	partitions := map[int32]bool{}
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(got), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			partitions[r.Partition] = true
		})
	}
	for i := 0; i < n; i++ {
		if c := got[fmt.Sprintf("line %d", i)]; c != 1 {
			t.Errorf("line %d consumed %d times", i, c)
		}
	}
	if len(partitions) < 2 {
		t.Errorf("records landed in %d partition(s); the topic should have 3", len(partitions))
	}
	// The platform's other topics exist too.
	for _, topic := range []string{"firewall", "ids", "web", "alerts", "late-events", "quarantine"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
			t.Errorf("produce to %s: %v", topic, err)
		}
	}
	// The broker serves its health and metrics.
	m := regexp.MustCompile(`metrics on (http://\S+)/metrics`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("broker did not announce its metrics address:\n%s", stderr.String())
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "kafka: ok", "/metrics": "go_goroutines"} {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %.200q, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("broker did not exit cleanly on SIGINT: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a subprocess writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestValidateOnly(t *testing.T) {
	code, out, _ := runInProcess(t, "broker", "--listen", "127.0.0.1:0", "--validate-only")
	if code != 0 || !strings.Contains(out, "ok: lambdalog broker") {
		t.Errorf("validate-only: exit %d %q", code, out)
	}
	code, _, errOut := runInProcess(t, "broker", "--validate-only", "--set", "topics.partitions=zero")
	if code != 2 || !strings.Contains(errOut, "topics.partitions") {
		t.Errorf("validate-only with a bad setting: exit %d %q", code, errOut)
	}
}
