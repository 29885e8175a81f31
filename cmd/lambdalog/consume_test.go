package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// TestConsumeSurvivesSIGKILL kills `lambdalog consume` with SIGKILL at
// random moments while a producer writes, then lets a final run finish: the
// dataset must hold every produced offset exactly once.
func TestConsumeSurvivesSIGKILL(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 200_000
	}
	consumeSIGKILL(t, "file://"+t.TempDir(), total, 20)
}

// TestConsumeSurvivesSIGKILLOnHDFS is the same on the in-process HDFS,
// shorter: the test server shares the two cores with everything else.
func TestConsumeSurvivesSIGKILLOnHDFS(t *testing.T) {
	srv := hdfstest.Start(t)
	consumeSIGKILL(t, srv.URL()+"lambdalog", 100_000, 8)
}

func consumeSIGKILL(t *testing.T, datasetURL string, total, kills int) {
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth", "firewall", "ids", "web"}, Partitions: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		batch := make([]*kgo.Record, 0, 10_000)
		for i := 0; i < total; i++ {
			line := fmt.Sprintf("<38>1 2026-11-23T%02d:%02d:%02d.%03dZ host sshd 100 - - Failed password for user%d from 198.18.%d.%d port %d ssh2",
				(i/3600)%24, (i/60)%60, i%60, i%1000, i%50, (i/250)%250, i%250, 1024+i%60000)
			batch = append(batch, &kgo.Record{Topic: "auth", Key: []byte(fmt.Sprint(i % 101)), Value: []byte(line)})
			if len(batch) == cap(batch) || i == total-1 {
				if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
					produced <- err
					return
				}
				batch = batch[:0]
				time.Sleep(20 * time.Millisecond) // keep producing while the consumer dies
			}
		}
		produced <- nil
	}()

	args := []string{"consume", "--brokers", b.Addr(), "--dataset", datasetURL, "--http", "127.0.0.1:0",
		"--set", "dataset.roll_records=25000", "--set", "dataset.roll_interval=300ms", "--set", "consumer.session_timeout=6s", "--log-level", "warn"}
	rng := rand.New(rand.NewSource(1))
	// Each run joins a fresh group: a SIGKILLed member would otherwise hold
	// its partitions until its session expires. Ownership does not rest on
	// the group anyway: the dataset's commit log fences every earlier run.
	for i := 0; i < kills; i++ {
		cmd := lambdalog(ctx, t, append(args, "--group", fmt.Sprintf("kill-%d", i))...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rng.Intn(900)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if strings.Contains(stderr.String(), "level=ERROR") {
			t.Logf("run %d logged errors before the kill:\n%s", i, stderr.String())
		}
	}
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}

	// A final clean run catches up; stop it once everything is committed.
	fsys, err := storage.Open(ctx, datasetURL, storage.Options{User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	// At info level, so it says when it is up.
	final := lambdalog(ctx, t, append(args, "--group", "final", "--log-level", "info")...)
	var stderr syncBuffer
	final.Stderr = &stderr
	if err := final.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := consumer.ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var next int64
		for _, p := range st.Partitions {
			next += p.Next
		}
		if next == int64(total) {
			break
		}
		if ctx.Err() != nil {
			final.Process.Kill()
			t.Fatalf("final run committed %d of %d offsets\n%s", next, total, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The killed runs may have committed everything already: wait until
	// the final run is up (its signal handler installed) before stopping
	// it, or the interrupt kills it before it can stop cleanly.
	for !strings.Contains(stderr.String(), "consumer started") {
		if ctx.Err() != nil {
			final.Process.Kill()
			t.Fatalf("final run never started\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	final.Process.Signal(os.Interrupt)
	if err := final.Wait(); err != nil {
		t.Fatalf("final run did not stop cleanly: %v\n%s", err, stderr.String())
	}

	rep, err := consumer.Verify(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, p := range rep.Partitions {
		rows += p.Rows
	}
	if !rep.OK || rows != int64(total) {
		t.Fatalf("after %d SIGKILLs: ok=%v rows=%d, want %d exactly once: %+v", kills, rep.OK, rows, total, rep)
	}
	// The operator's view says the same.
	out, err := lambdalog(ctx, t, "dataset", "verify", "--dataset", datasetURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exactly once") {
		t.Fatalf("lambdalog dataset verify: %v\n%s", err, out)
	}
	t.Logf("%d records, %d SIGKILLs: every offset exactly once\n%s", total, kills, out)
}
