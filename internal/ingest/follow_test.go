package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	st     Stats
	err    error
}

func startFollow(t *testing.T, b *broker.Broker, state string, paths ...string) *running {
	t.Helper()
	g, err := New(newClient(t, b), Options{Topic: "auth", Format: "sshd", QuarantineTopic: "quarantine", Follow: true,
		StateFile: state, PollInterval: 10 * time.Millisecond, StateInterval: 10 * time.Millisecond, BatchRecords: 32})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.st, r.err = g.Run(ctx, paths)
	}()
	return r
}

// stop stops the ingester cleanly (as SIGINT does) and checks it ended
// without error.
func (r *running) stop(t *testing.T) Stats {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingester did not stop")
	}
	if r.err != nil {
		t.Fatalf("clean stop: %v", r.err)
	}
	return r.st
}

// TestFollowRotateTruncateRestart follows a file through appends, a
// rotation (with lines written to the old file just before the rename), a
// truncation, a clean stop in the middle of a line, and a rotation while
// stopped. Every line arrives exactly once: nothing skipped, nothing sent
// again after the clean stop.
func TestFollowRotateTruncateRestart(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	dir := t.TempDir()
	name := filepath.Join(dir, "app.log")
	state := filepath.Join(dir, "state", "ingest.json")
	all := genLines(t, 11, int(gen.Auth), 800)
	A, B1, B2, C := all[0:100], all[100:200], all[200:300], all[300:350]
	D, E, F := all[350:450], all[450:550], all[550:650]
	cons := newConsumer(t, b, "auth")

	appendFile(t, name, joinLines(A))
	r := startFollow(t, b, state, name)
	cons.until(100, 30*time.Second)
	appendFile(t, name, joinLines(all[100:150]))
	cons.until(150, 30*time.Second)

	// Rotation: lines land in the old file right before the rename.
	appendFile(t, name, joinLines(B1[50:]))
	if err := os.Rename(name, name+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, name, joinLines(B2))
	cons.until(300, 30*time.Second)

	// Truncation (copytruncate style): shorter content than was read.
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, name, joinLines(C))
	cons.until(350, 30*time.Second)

	// Half a line, then a clean stop.
	d0 := joinLines(D[:1])
	appendFile(t, name, d0[:20])
	time.Sleep(50 * time.Millisecond)
	r.stop(t)
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	pos := readState(t, state)
	if len(pos) != 1 || pos[0].Offset != fi.Size()-20 || pos[0].id() != idOf(fi) {
		t.Fatalf("state after clean stop %+v; want offset %d of inode %d", pos, fi.Size()-20, idOf(fi).ino)
	}
	if n := topicCount(t, b, "auth"); n != 350 {
		t.Fatalf("auth holds %d records after the first run, want 350", n)
	}

	// While stopped: finish the line, append, rotate, write the new file.
	appendFile(t, name, d0[20:])
	appendFile(t, name, joinLines(D[1:]))
	appendFile(t, name, joinLines(E))
	if err := os.Rename(name, name+".2"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, name, joinLines(F))

	r = startFollow(t, b, state, name)
	cons.until(650, 30*time.Second)
	r.stop(t)
	checkDelivered(t, cons.recs, all[:650])
	if n := topicCount(t, b, "auth"); n != 650 {
		t.Errorf("auth holds %d records, want 650 (nothing sent twice)", n)
	}
	pos = readState(t, state)
	fi, _ = os.Stat(name)
	if len(pos) != 1 || pos[0].Offset != fi.Size() || pos[0].id() != idOf(fi) {
		t.Errorf("final state %+v, want the end (%d) of inode %d", pos, fi.Size(), idOf(fi).ino)
	}

	// A restart with nothing new sends nothing.
	r = startFollow(t, b, state, name)
	time.Sleep(100 * time.Millisecond)
	if st := r.stop(t); st.Lines != 0 {
		t.Errorf("idle restart read %d lines", st.Lines)
	}
	if n := topicCount(t, b, "auth"); n != 650 {
		t.Errorf("auth holds %d records after an idle restart, want 650", n)
	}
}

// TestFollowWaitsForFile follows a path that does not exist yet, and two
// files at once.
func TestFollowWaitsForFile(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.log"), filepath.Join(dir, "two.log")
	all := genLines(t, 12, int(gen.Auth), 200)
	appendFile(t, one, joinLines(all[:100]))
	r := startFollow(t, b, filepath.Join(dir, "s.json"), one, two)
	cons := newConsumer(t, b, "auth")
	cons.until(100, 30*time.Second)
	appendFile(t, two, joinLines(all[100:]))
	cons.until(200, 30*time.Second)
	r.stop(t)
	checkDelivered(t, cons.recs, all)
	if got := readState(t, filepath.Join(dir, "s.json")); len(got) != 2 {
		t.Errorf("state holds %d files, want 2: %+v", len(got), got)
	}
}
