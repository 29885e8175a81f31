package consumer

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// encoderGoroutines counts the goroutines running a Parquet encoder.
func encoderGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "consumer.(*encoder).run")
}

// failCreate fails creating any Parquet file under prefix with an error that is
// not retryable, so the commit of that partition fails the run.
type failCreate struct {
	storage.FS
	prefix string
}

func (f failCreate) Create(ctx context.Context, name string) (storage.File, error) {
	if strings.HasPrefix(name, f.prefix) && strings.HasSuffix(name, ".parquet") {
		return nil, errors.New("injected: disk refused the file")
	}
	return f.FS.Create(ctx, name)
}

// TestRunErrorStopsEncoders: when Run fails (a partition's commit cannot
// write its file), it returns only after every Parquet encoder goroutine
// of every partition stopped, including the ones of partitions that were
// still buffering (their encoders had started on full chunks), and the
// dataset still holds what was committed exactly once.
func TestRunErrorStopsEncoders(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 2})
	cl := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Partition 0 gets enough records to roll; partition 1 more than a
	// chunk (its encoder runs) but fewer than a roll.
	var recs []*kgo.Record
	for i := 0; i < 2*chunkRows+1000; i++ {
		recs = append(recs, &kgo.Record{Topic: "auth", Partition: int32(i % 2), Value: []byte(sshdLine(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before := encoderGoroutines()
	c, err := New(Options{FS: failCreate{FS: fsys, prefix: "_lambdalog/tmp/auth/0/"}, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())},
		Group: "g", Sources: []Source{{"auth", "sshd"}}, RollRecords: chunkRows + 100, RollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Run: %v, want the injected write error", err)
	}
	// Other tests' encoders may end meanwhile, never start: more than
	// before is a leak.
	if n := encoderGoroutines() - before; n > 0 {
		t.Fatalf("%d encoder goroutines still running after Run returned", n)
	}
	// A healthy restart resumes from the dataset: every record once.
	c, err = New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
		RollRecords: chunkRows + 100, RollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	waitCommitted(ctx, t, fsys, int64(len(recs)))
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n := encoderGoroutines() - before; n > 0 {
		t.Fatalf("%d encoder goroutines still running after a clean stop", n)
	}
	verifyRows(ctx, t, fsys, int64(len(recs)))
}

// TestDiscardWritersStopsEncoders: the writers Run still holds when it
// returns (which the group's leave did not release) lose their encoder
// goroutines, and nothing is written for them.
func TestDiscardWritersStopsEncoders(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ctx := context.Background()
	c, err := New(Options{FS: fsys, Group: "g", Sources: []Source{{"auth", "sshd"}}})
	if err != nil {
		t.Fatal(err)
	}
	var encs []*encoder
	for p := int32(0); p < 2; p++ {
		w, err := c.claim(ctx, "auth", p)
		if err != nil {
			t.Fatal(err)
		}
		for o := int64(0); o < chunkRows+10; o++ {
			if err := w.Add(authRecord(o, base), o, 100); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range w.groups {
			if g.enc == nil {
				t.Fatal("a full chunk did not start the file's encoder")
			}
			encs = append(encs, g.enc)
		}
	}
	c.discardWriters()
	for _, e := range encs {
		select {
		case <-e.done: // the goroutine returned
		default:
			t.Fatal("an encoder goroutine is still running after discardWriters")
		}
	}
	st, err := ReadState(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Partitions {
		if p.Next != 0 {
			t.Fatalf("partition %+v committed something", p)
		}
	}
}

// waitCommitted waits until the dataset's partitions committed n offsets.
func waitCommitted(ctx context.Context, t *testing.T, fsys storage.FS, n int64) {
	t.Helper()
	for {
		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, p := range st.Partitions {
			got += p.Next
		}
		if got >= n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d offsets", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verifyRows checks the dataset holds offsets [0, n) over all partitions,
// each exactly once.
func verifyRows(ctx context.Context, t *testing.T, fsys storage.FS, n int64) {
	t.Helper()
	rep, err := Verify(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, p := range rep.Partitions {
		rows += p.Rows
	}
	if !rep.OK || rows != n {
		t.Fatalf("verify: ok=%v rows=%d, want %d exactly once: %+v", rep.OK, rows, n, rep)
	}
}

// failMoves fails every rename to a final Parquet name, as a NameNode that
// keeps refusing the move would.
type failMoves struct{ storage.FS }

func (f failMoves) Rename(ctx context.Context, from, to string) error {
	if strings.HasSuffix(to, ".parquet") && !strings.HasPrefix(to, "_") {
		return errors.New("injected: rename refused")
	}
	return f.FS.Rename(ctx, from, to)
}

// TestAbortKeepsPublishedFiles: a writer whose entry is published but
// whose files could not be moved, then aborted (its partition revoked or
// lost), leaves those temporary files for the next owner, whose claim
// rolls them forward: the records are in the dataset once. Deleting them
// with the rest of the epoch's temporary files left an entry whose files
// existed nowhere, and every later claim of the partition failed.
func TestAbortKeepsPublishedFiles(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		bad := failMoves{fsys}
		l := NewLog(bad, "auth", 0)
		claim, err := l.Claim(ctx, newEpoch())
		if err != nil {
			t.Fatal(err)
		}
		w := NewPartitionWriter(bad, l, claim, WriterOptions{})
		for o := int64(0); o < 30; o++ {
			if err := w.Add(authRecord(o, base), o, 100); err != nil {
				t.Fatal(err)
			}
		}
		if _, published, err := w.Commit(ctx); !published || err == nil {
			t.Fatalf("commit: published=%v err=%v, want published with the move error", published, err)
		}
		if err := w.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if err := writeCommits(ctx, t, fsys, nil, 30, 50, 10); err != nil {
			t.Fatalf("next owner: %v", err)
		}
		mustVerify(t, fsys, 50)
	})
}
