package service

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

// TestMain lets the kill test run the service as a subprocess: the test
// binary re-executes itself with RT_CHILD_BROKER set.
func TestMain(m *testing.M) {
	if addr := os.Getenv("RT_CHILD_BROKER"); addr != "" {
		os.Exit(childMain(addr))
	}
	os.Exit(m.Run())
}

// childMain runs the service like `lambdalog realtime` until SIGTERM.
func childMain(addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	rs, err := rules.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	svc, err := New(Options{Client: []kgo.Opt{kgo.SeedBrokers(addr)}, Group: "rt", AlertsTopic: "alerts", LateTopic: "late-events",
		Sources: testSources, Rules: rs, TransactionalID: "rt-child",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKillNineExactlyOnce runs the service as a subprocess and SIGKILLs it
// four times at random moments while traffic is produced in chunks; a
// final instance drains the input and stops on SIGTERM with exit 0. The
// alerts topic (read committed) then holds exactly the alerts, ids and
// contents, of an uncrashed run over the same input: none twice, none
// missing.
func TestKillNineExactlyOnce(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3, Topics: append([]string{"alerts-ref"}, kafkatest.DefaultTopics...)})
	recs, truth := genLines(t, gen.Options{Seed: 23, Rate: 1000, Duration: 4 * time.Minute})
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	if d := os.Getenv("RT_KILL_LOGS"); d != "" {
		logDir = d // keep the children's logs for a look after a failure
	}
	spawn := func(i int) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "RT_CHILD_BROKER="+b.Addr())
		f, err := os.Create(fmt.Sprintf("%s/child-%d.log", logDir, i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitRebuilt := func(i int) {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if log, _ := os.ReadFile(fmt.Sprintf("%s/child-%d.log", logDir, i)); strings.Contains(string(log), "window state rebuilt") {
				return
			}
		}
	}
	rng := rand.New(rand.NewPCG(23, 1))
	const kills = 4
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		const chunks = 8
		for i := range chunks {
			produce(t, prod, recs[i*len(recs)/chunks:(i+1)*len(recs)/chunks])
			time.Sleep(250 * time.Millisecond)
		}
	}()
	for i := range kills {
		cmd := spawn(i)
		// Kill at a random moment after it has rebuilt its state and is
		// processing (or at the latest after 10 s).
		waitRebuilt(i)
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	<-produced
	last := spawn(kills)
	waitRebuilt(kills)
	waitCaughtUp(t, b, "rt", 2*time.Minute)
	if err := last.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := last.Wait(); err != nil {
		log, _ := os.ReadFile(fmt.Sprintf("%s/child-%d.log", logDir, kills))
		t.Fatalf("final instance did not exit 0 on SIGTERM: %v\n%s", err, log)
	}
	log, _ := os.ReadFile(fmt.Sprintf("%s/child-%d.log", logDir, kills))
	t.Logf("final instance log:\n%s", lastLines(string(log), 6))

	ref := start(t, testOptions(t, b, "ref", "alerts-ref"))
	waitCaughtUp(t, b, "ref", time.Minute)
	ref.shutdown(t)
	t.Logf("reference run: %+v", ref.svc.Stats())
	want, got := readAlerts(t, b, "alerts-ref"), readAlerts(t, b, "alerts")
	t.Logf("%d attacks in the truth, %d alerts in the reference run, %d on the crashed run's topic", len(truth.Records), len(want), len(got))
	compareAlerts(t, want, got)
}

func lastLines(s string, n int) string {
	lines := []string{}
	for len(s) > 0 {
		i := len(s) - 1
		for i > 0 && s[i-1] != '\n' {
			i--
		}
		lines = append([]string{s[i:]}, lines...)
		s = s[:max(i-1, 0)]
		if len(lines) == n {
			break
		}
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
