package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

// backends runs fn against the local disk and the in-process HDFS.
func backends(t *testing.T, fn func(t *testing.T, fsys storage.FS)) {
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

func authRecord(offset int64, at time.Time) schemas.Record {
	r := &schemas.Auth{User: fmt.Sprintf("u%d", offset%7), SourceIP: "198.18.0.1", Outcome: schemas.OutcomeFailure}
	r.Base.Timestamp = at
	r.Base.KafkaTopic, r.Base.KafkaPartition, r.Base.KafkaOffset = "auth", 0, offset
	return r
}

var base = time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC)

// writeCommits claims the partition and commits records [from, to) in
// commits of n, spanning an hour boundary so files split by partition.
func writeCommits(ctx context.Context, t *testing.T, fsys storage.FS, hook func(string) error, from, to, n int64) error {
	l := NewLog(fsys, "auth", 0)
	l.hook = hook
	claim, err := l.Claim(ctx, newEpoch())
	if err != nil {
		return err
	}
	w := NewPartitionWriter(fsys, l, claim, WriterOptions{})
	for o := w.Next(); o < to; o++ {
		if err := w.Add(authRecord(o, base.Add(time.Duration(o)*100*time.Second)), o, 100); err != nil {
			return err
		}
		if (o+1-from)%n == 0 || o == to-1 {
			if _, _, err := w.Commit(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func mustVerify(t *testing.T, fsys storage.FS, wantNext int64) {
	t.Helper()
	rep, err := Verify(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Partitions) != 1 {
		t.Fatalf("dataset inconsistent: %+v", rep)
	}
	p := rep.Partitions[0]
	if p.Start != 0 || p.Next != wantNext || p.Rows != wantNext || p.Pending != 0 {
		t.Fatalf("partition = %+v, want offsets [0,%d) each once", p, wantNext)
	}
}

func TestCommitLogCrashAtEveryStep(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		// Steps of one commit, in order; crash at the k-th occurrence of
		// any step, restart, finish, and the dataset must be exact.
		steps := []string{"files-written", "entry-staged", "entry-published", "file-moved-0", "file-moved-1"}
		const total = 120
		for _, step := range steps {
			for _, nth := range []int{1, 3} {
				sub := fmt.Sprintf("%s#%d", step, nth)
				if err := fsys.RemoveAll(ctx, "_lambdalog"); err != nil {
					t.Fatal(err)
				}
				if err := fsys.RemoveAll(ctx, "auth"); err != nil {
					t.Fatal(err)
				}
				seen := 0
				crash := errors.New("crash")
				hook := func(s string) error {
					if s == step {
						seen++
						if seen == nth {
							return crash
						}
					}
					return nil
				}
				if err := writeCommits(ctx, t, fsys, hook, 0, total, 25); !errors.Is(err, crash) {
					t.Fatalf("%s: first run: %v, want the injected crash", sub, err)
				}
				// Restart: a new epoch claims, recovers and continues.
				if err := writeCommits(ctx, t, fsys, nil, 0, total, 25); err != nil {
					t.Fatalf("%s: restart: %v", sub, err)
				}
				mustVerify(t, fsys, total)
			}
		}
	})
}

func TestZombieIsFenced(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		old := NewLog(fsys, "auth", 0)
		claim, err := old.Claim(ctx, "epoch-old")
		if err != nil {
			t.Fatal(err)
		}
		zombie := NewPartitionWriter(fsys, old, claim, WriterOptions{})
		for o := int64(0); o < 10; o++ {
			zombie.Add(authRecord(o, base), o, 10)
		}
		if _, _, err := zombie.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for o := int64(10); o < 20; o++ {
			zombie.Add(authRecord(o, base), o, 10)
		}
		// The zombie pauses; a new owner claims and writes on.
		if err := writeCommits(ctx, t, fsys, nil, 10, 30, 10); err != nil {
			t.Fatal(err)
		}
		// The zombie wakes and tries to publish what it buffered.
		if _, _, err := zombie.Commit(ctx); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie commit: %v, want ErrFenced", err)
		}
		mustVerify(t, fsys, 30)
	})
}

func TestRacingPublishersOneWins(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func(i int) {
				errs <- NewLog(fsys, "auth", 0).Publish(ctx, Entry{Seq: 0, Epoch: fmt.Sprintf("e%d", i)})
			}(i)
		}
		wins := 0
		for i := 0; i < 4; i++ {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrFenced):
				t.Errorf("loser got %v, want ErrFenced", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d publishers won sequence 0, want exactly 1", wins)
		}
	})
}

func sshdLine(i int) string {
	return fmt.Sprintf("<38>1 2026-11-23T10:%02d:%02d.%03dZ host sshd 100 - - Failed password for user%d from 198.18.%d.%d port %d ssh2",
		(i/60)%60, i%60, i%1000, i%50, (i/250)%250, i%250, 1024+i%60000)
}

// TestConsumeExactlyOnce runs the real Kafka loop: records produced to an
// in-process broker end up in the dataset once each, parsed, with lineage,
// across two consumer runs with a clean stop between them.
func TestConsumeExactlyOnce(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 3})
		cl := kafkatest.Client(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		produce := func(from, to int) {
			var recs []*kgo.Record
			for i := from; i < to; i++ {
				line := sshdLine(i)
				if i%97 == 0 {
					line = "garbage \xff line " + fmt.Sprint(i) // quarantined, not lost
				}
				recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(fmt.Sprint(i % 13)), Value: []byte(line)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		run := func(want int64) {
			c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
				RollRecords: 500, RollInterval: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(rctx) }()
			for {
				st, err := ReadState(ctx, fsys)
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				for _, p := range st.Partitions {
					n += p.Next
				}
				if n >= want {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("committed %d of %d offsets", n, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			rcancel()
			if err := <-done; err != nil {
				t.Fatalf("consumer run: %v", err)
			}
		}
		produce(0, 3000)
		run(3000)
		produce(3000, 5000)
		run(5000)

		rep, err := Verify(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		for _, p := range rep.Partitions {
			rows += p.Rows
		}
		if !rep.OK || rows != 5000 {
			t.Fatalf("verify: ok=%v rows=%d, want 5000 exactly once: %+v", rep.OK, rows, rep)
		}
		st, _ := ReadState(ctx, fsys)
		if n := len(st.Files("quarantine")); n == 0 {
			t.Error("garbage lines were not quarantined")
		}
		for _, f := range st.Files("auth") {
			if !strings.HasPrefix(f.Final, "auth/dt=2026-11-23/hour=10/") {
				t.Errorf("auth file %s not in its event-time partition", f.Final)
			}
		}
	})
}
