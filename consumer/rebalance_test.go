package consumer

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// TestRebalanceExactlyOnce runs three consumers of one group that join and
// leave at random while records are produced, on the local disk and on the
// in-process HDFS; once every record is committed, each offset is in the
// dataset exactly once.
func TestRebalanceExactlyOnce(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) { rebalanceChurn(t, fsys) })
}

func rebalanceChurn(t *testing.T, fsys storage.FS) {
	const total = 60_000
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 6})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		for i := 0; i < total; i += 1000 {
			var recs []*kgo.Record
			for j := i; j < i+1000; j++ {
				recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(fmt.Sprint(j % 37)), Value: []byte(sshdLine(j))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				produced <- err
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
		produced <- nil
	}()

	start := func() (stop func()) {
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
			RollRecords: 2000, RollInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		return func() {
			ccancel()
			if err := <-done; err != nil {
				t.Errorf("consumer run: %v", err)
			}
		}
	}
	rng := rand.New(rand.NewSource(3))
	var running []func()
	for i := 0; i < 12; i++ {
		if len(running) < 3 && (len(running) == 0 || rng.Intn(2) == 0) {
			running = append(running, start())
		} else {
			k := rng.Intn(len(running))
			running[k]()
			running = append(running[:k], running[k+1:]...)
		}
		time.Sleep(time.Duration(200+rng.Intn(500)) * time.Millisecond)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if len(running) == 0 {
		running = append(running, start())
	}
	for {
		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var next int64
		for _, p := range st.Partitions {
			next += p.Next
		}
		if next == total {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d", next, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, stop := range running {
		stop()
	}
	rep, err := Verify(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, p := range rep.Partitions {
		rows += p.Rows
	}
	if !rep.OK || rows != total {
		t.Fatalf("after churn: ok=%v rows=%d, want %d exactly once: %+v", rep.OK, rows, total, rep)
	}
	// The churn must really have moved partitions between owners, or the
	// test proved nothing about rebalances.
	st, err := ReadState(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, p := range st.Partitions {
		epochs := map[string]bool{}
		for _, e := range p.Entries {
			epochs[e.Epoch] = true
		}
		if len(epochs) > 1 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("no partition changed owner during the churn")
	}
	t.Logf("%d of %d partitions changed owner", moved, len(st.Partitions))
}
