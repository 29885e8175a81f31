package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// An external test package, because batch/source (the batch layer's
// reader of the watermark) imports consumer.

func onBothBackends(t *testing.T, fn func(t *testing.T, fsys storage.FS)) {
	t.Run("local", func(t *testing.T) {
		fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		fn(t, fsys)
	})
	t.Run("hdfs", func(t *testing.T) {
		srv := hdfstest.Start(t)
		fsys, err := storage.Open(context.Background(), srv.URL()+"lambdalog", storage.Options{User: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		fn(t, fsys)
	})
}

// lineAt is an sshd line whose event time is at.
func lineAt(i int, at time.Time) []byte {
	return []byte(fmt.Sprintf("<38>1 %s host sshd 100 - - Failed password for user%d from 198.18.0.%d port %d ssh2",
		at.UTC().Format("2006-01-02T15:04:05.000Z"), i%50, i%250, 1024+i))
}

// TestIdlePartitionHeartbeat has two partitions, one of which goes quiet.
// Without heartbeats the batch layer's watermark (batch/source.Committed)
// stays behind the quiet partition's last event; with them it passes an
// interval that ended after that event, it never passes the heartbeat's
// bound (check time minus the lateness), a record that respects the
// lateness still lands in the dataset, and verify stays exact.
func TestIdlePartitionHeartbeat(t *testing.T) {
	onBothBackends(t, func(t *testing.T, fsys storage.FS) {
		const lateness = 2 * time.Second
		const lag = 500 * time.Millisecond
		b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 2})
		cl := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		produced := 0
		produce := func(p int32, at time.Time) {
			t.Helper()
			r := &kgo.Record{Topic: "auth", Partition: p, Value: lineAt(produced, at)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			produced++
		}
		src := &source.Committed{FS: fsys}
		watermark := func() time.Time {
			t.Helper()
			wm, err := src.Watermark(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return wm
		}
		state := func() consumer.State {
			t.Helper()
			st, err := consumer.ReadState(ctx, fsys)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		committed := func() int64 {
			var n int64
			for _, p := range state().Partitions {
				n += p.Next
			}
			return n
		}
		// run starts a consumer and, when busy, keeps partition 0 flowing
		// with current event times until cond holds; then it stops.
		run := func(heartbeat time.Duration, busy bool, cond func() bool) {
			t.Helper()
			c, err := consumer.New(consumer.Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g",
				Sources: []consumer.Source{{Topic: "auth", Format: "sshd"}}, Writer: consumer.WriterOptions{WatermarkLag: lag},
				RollInterval: 100 * time.Millisecond, IdleHeartbeat: heartbeat, IdleLateness: lateness})
			if err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(rctx) }()
			for !cond() {
				if ctx.Err() != nil {
					t.Fatal("timed out")
				}
				if busy {
					produce(0, time.Now())
				}
				time.Sleep(100 * time.Millisecond)
			}
			rcancel()
			if err := <-done; err != nil {
				t.Fatalf("consumer run: %v", err)
			}
		}

		// Both partitions get records, then partition 1 goes quiet.
		produce(0, time.Now())
		last1 := time.Now()
		produce(1, last1)
		intervalEnd := last1.Add(time.Second)

		// Without heartbeats: partition 0 moves on, the watermark does not.
		stop := time.Now().Add(3 * time.Second)
		run(-1, true, func() bool { return time.Now().After(stop) })
		if wm := watermark(); wm.IsZero() || wm.After(last1.Add(-lag)) {
			t.Fatalf("without heartbeats the watermark is %v, want at most partition 1's last event minus the lag (%v)", wm, last1.Add(-lag))
		}

		// With heartbeats the quiet partition stops holding it back. At
		// every look, its watermark is at most now - lateness: it never
		// claims event times a timely record could still carry.
		var violation string
		run(300*time.Millisecond, true, func() bool {
			wm := state().Partitions[1].Watermark
			// Whatever was published before the read finished.
			if after := time.Now(); wm.After(after.Add(-lateness)) && violation == "" {
				violation = fmt.Sprintf("partition 1's watermark %v is after %v - %v", wm, after, lateness)
			}
			return !watermark().Before(intervalEnd)
		})
		if violation != "" {
			t.Fatal(violation)
		}

		// A record that respects the lateness bound is still welcome.
		produce(1, time.Now().Add(-lateness/2))
		total := int64(produced)
		run(300*time.Millisecond, false, func() bool { return committed() >= total })

		rep, err := consumer.Verify(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		for _, p := range rep.Partitions {
			rows += p.Rows
		}
		if !rep.OK || rows != total {
			t.Fatalf("verify: ok=%v rows=%d, want %d exactly once: %+v", rep.OK, rows, total, rep)
		}
		// Partition 1's log holds heartbeats: no files, its offsets
		// unchanged, watermarks never going back.
		st, err := consumer.ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		beats := 0
		var prev time.Time
		for _, e := range st.Partitions[1].Entries {
			if e.Watermark.Before(prev) {
				t.Errorf("entry %d: watermark %v went back from %v", e.Seq, e.Watermark, prev)
			}
			prev = e.Watermark
			if e.Kind == consumer.KindHeartbeat {
				beats++
				if len(e.Files) != 0 || e.Start != e.Next {
					t.Errorf("heartbeat %d carries data: %+v", e.Seq, e)
				}
			}
		}
		if beats == 0 {
			t.Error("no heartbeat entry in the quiet partition's log")
		}
	})
}
