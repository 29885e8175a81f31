package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// writeCompacting is writeCommits with a checkpoint whenever every entries
// followed the newest one.
func writeCompacting(ctx context.Context, fsys storage.FS, hook func(string) error, to, n, every int64) error {
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
		if (o+1)%n != 0 && o != to-1 {
			continue
		}
		if _, _, err := w.Commit(ctx); err != nil {
			return err
		}
		if w.EntriesSinceCheckpoint() >= every {
			if _, _, err := w.Checkpoint(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// onStorage counts the entry directories of auth/0 on storage.
func onStorage(ctx context.Context, t *testing.T, fsys storage.FS) int {
	t.Helper()
	seqs, err := NewLog(fsys, "auth", 0).seqs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(seqs)
}

// TestCompactionCrashAtEveryStep crashes a writer at each step of a
// checkpoint (snapshot staged, entry staged, published, each folded entry
// deleted; first and second checkpoint), restarts, and checks that every
// offset is in the dataset once, that the log was compacted, and that the
// restart's own checkpoints removed what the crash left.
func TestCompactionCrashAtEveryStep(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		const total, n, every = 120, 5, 4
		steps := []string{"snapshot-staged", "checkpoint-staged", "checkpoint-published", "folded-deleted-0", "folded-deleted-3"}
		for _, step := range steps {
			for _, nth := range []int{1, 2} {
				sub := fmt.Sprintf("%s#%d", step, nth)
				for _, dir := range []string{"_lambdalog", "auth"} {
					if err := fsys.RemoveAll(ctx, dir); err != nil {
						t.Fatal(err)
					}
				}
				seen := 0
				crash := errors.New("crash")
				hook := func(s string) error {
					if s == step {
						if seen++; seen == nth {
							return crash
						}
					}
					return nil
				}
				if err := writeCompacting(ctx, fsys, hook, total, n, every); !errors.Is(err, crash) {
					t.Fatalf("%s: first run: %v, want the injected crash", sub, err)
				}
				if err := writeCompacting(ctx, fsys, nil, total, n, every); err != nil {
					t.Fatalf("%s: restart: %v", sub, err)
				}
				mustVerify(t, fsys, total)
				st, err := ReadState(ctx, fsys)
				if err != nil {
					t.Fatal(err)
				}
				p := st.Partitions[0]
				if p.Checkpoint == 0 || p.Folded == 0 || p.Leftover != 0 {
					t.Fatalf("%s: checkpoint %d, %d folded, %d leftover: want a checkpoint and no leftovers", sub, p.Checkpoint, p.Folded, p.Leftover)
				}
				if got := onStorage(ctx, t, fsys); got > every+1 {
					t.Fatalf("%s: %d entries on storage, want at most %d after compaction", sub, got, every+1)
				}
			}
		}
	})
}

// TestCompactionOfLegacyLog: a log written without checkpoints reads as
// before; the first checkpoint folds all of it, files and offsets intact.
func TestCompactionOfLegacyLog(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		if err := writeCommits(ctx, t, fsys, nil, 0, 100, 10); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 100)
		before, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		if before.Partitions[0].Checkpoint != 0 || len(before.Partitions[0].Entries) != onStorage(ctx, t, fsys) {
			t.Fatalf("legacy log read as %+v", before.Partitions[0])
		}
		if err := writeCompacting(ctx, fsys, nil, 110, 10, 5); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 110)
		after, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]int64{}
		for _, f := range after.Files("auth") {
			files[f.Final] = f.Rows
		}
		for _, f := range before.Files("auth") {
			if files[f.Final] != f.Rows {
				t.Errorf("file %s (%d rows) lost by compaction", f.Final, f.Rows)
			}
		}
		if p := after.Partitions[0]; p.Checkpoint == 0 || onStorage(ctx, t, fsys) > 3 {
			t.Fatalf("not compacted: checkpoint %d, %d entries on storage", p.Checkpoint, onStorage(ctx, t, fsys))
		}

		// A consumer built before checkpoints appends to the compacted
		// log: its claim and commit name no checkpoint (its Log never
		// learns one). Readers still start from the checkpoint.
		oldLog := NewLog(fsys, "auth", 0)
		last, _, err := oldLog.Last(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oldClaim := Entry{Seq: last.Seq + 1, Start: last.Next, Next: last.Next, Epoch: "epoch-oldbinary"}
		if err := oldLog.Publish(ctx, oldClaim); err != nil {
			t.Fatal(err)
		}
		ow := NewPartitionWriter(fsys, oldLog, oldClaim, WriterOptions{})
		for o := int64(110); o < 120; o++ {
			ow.Add(authRecord(o, base), o, 10)
		}
		if _, _, err := ow.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if e, _, _ := oldLog.Last(ctx); e.Checkpoint != 0 {
			t.Fatalf("the old-style entry names checkpoint %d", e.Checkpoint)
		}
		mustVerify(t, fsys, 120)
		if err := writeCompacting(ctx, fsys, nil, 125, 5, 1); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 125)
	})
}

// TestZombieCheckpointIsFenced: a zombie that tries to compact after a new
// owner claimed gets ErrFenced and deletes nothing; a zombie whose
// checkpoint won the race (published just before the claim) deletes only
// what that checkpoint folded. Either way the dataset stays exact.
func TestZombieCheckpointIsFenced(t *testing.T) {
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
		if err := writeCompacting(ctx, fsys, nil, 30, 5, 100); err != nil {
			t.Fatal(err)
		}
		entries := onStorage(ctx, t, fsys)
		if _, published, err := zombie.Checkpoint(ctx); !errors.Is(err, ErrFenced) || published {
			t.Fatalf("zombie checkpoint: published=%v err=%v, want ErrFenced", published, err)
		}
		if got := onStorage(ctx, t, fsys); got != entries {
			t.Fatalf("fenced zombie changed the log: %d entries, had %d", got, entries)
		}
		mustVerify(t, fsys, 30)

		// The zombie's checkpoint wins the race; it stalls before
		// deleting, a new owner claims and writes, then the zombie
		// deletes.
		l2 := NewLog(fsys, "auth", 0)
		claim2, err := l2.Claim(ctx, "epoch-z2")
		if err != nil {
			t.Fatal(err)
		}
		z2 := NewPartitionWriter(fsys, l2, claim2, WriterOptions{})
		stall := errors.New("stall")
		l2.hook = func(s string) error {
			if s == "checkpoint-published" {
				return stall
			}
			return nil
		}
		if _, _, err := z2.Checkpoint(ctx); !errors.Is(err, stall) {
			t.Fatalf("zombie checkpoint: %v", err)
		}
		if err := writeCompacting(ctx, fsys, nil, 40, 5, 100); err != nil {
			t.Fatal(err)
		}
		l2.hook = nil
		cpSeq := claim2.Seq + 1
		snap, err := l2.readSnapshot(ctx, cpSeq)
		if err != nil {
			t.Fatal(err)
		}
		if err := l2.deleteBefore(ctx, cpSeq, snap.Segments); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 40)
		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		if p := st.Partitions[0]; p.Checkpoint != cpSeq || p.Leftover != 0 || onStorage(ctx, t, fsys) != len(p.Entries)-p.Folded {
			t.Fatalf("state after the zombie's deletion: checkpoint %d leftover %d, want %d and 0", p.Checkpoint, p.Leftover, cpSeq)
		}
	})
}

// TestConsumeWithCompaction runs the real Kafka loop with a checkpoint
// every few entries: every partition's log is compacted and the dataset
// holds every record once.
func TestConsumeWithCompaction(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 3})
		cl := kafkatest.Client(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		const total = 6000
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
			RollRecords: 100, RollInterval: 50 * time.Millisecond, CheckpointEvery: 4})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		for i := 0; i < total; i += 500 {
			produceLines(ctx, t, cl, i, i+500)
			time.Sleep(20 * time.Millisecond)
		}
		for committed(ctx, t, fsys) < total {
			select {
			case err := <-done:
				t.Fatalf("consumer stopped with %d of %d committed: %v", committed(ctx, t, fsys), total, err)
			case <-ctx.Done():
				t.Fatalf("committed %d of %d", committed(ctx, t, fsys), total)
			case <-time.After(50 * time.Millisecond):
			}
		}
		rcancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mustExact(ctx, t, fsys, total)
		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Partitions {
			if p.Checkpoint == 0 || p.Folded == 0 {
				t.Errorf("partition %d not compacted: checkpoint %d, %d folded", p.Partition, p.Checkpoint, p.Folded)
			}
		}
	})
}

// TestReadersRaceCompaction reads the state over and over while a writer
// commits and compacts after every other entry: a reader whose entries are
// deleted under it reads again from the newer checkpoint, so every read
// succeeds, sees contiguous offsets from 0 with one file reference per
// committed file, and never goes backwards.
func TestReadersRaceCompaction(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		done := make(chan error, 1)
		go func() { done <- writeCompacting(ctx, fsys, nil, 400, 4, 2) }()
		reads, prev := 0, int64(0)
		for finished := false; !finished; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				finished = true
			default:
			}
			st, err := ReadState(ctx, fsys)
			if err != nil {
				t.Fatalf("read %d during compaction: %v", reads, err)
			}
			reads++
			if len(st.Partitions) == 0 {
				continue
			}
			p := st.Partitions[0]
			var at, rows int64
			for _, e := range p.Entries {
				if e.Start != at {
					t.Fatalf("read %d: entry %d starts at %d, want %d", reads, e.Seq, e.Start, at)
				}
				at = e.Next
				for _, f := range e.Files {
					rows += f.Rows
				}
			}
			if p.Next < prev || rows != p.Next {
				t.Fatalf("read %d: next %d (before %d), %d rows in files; state %+v", reads, p.Next, prev, rows, p)
			}
			prev = p.Next
		}
		mustVerify(t, fsys, 400)
		t.Logf("%d consistent reads during compaction", reads)
	})
}

// TestZombieAfterCompactionIsFenced: compaction frees the numbers it
// deletes, so a zombie whose next number was folded away gets a rename
// that succeeds. It must still learn it lost the partition before moving
// any file, leave no entry behind, and the dataset stays exact.
func TestZombieAfterCompactionIsFenced(t *testing.T) {
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
		next := zombie.seq + 1
		for o := int64(10); o < 20; o++ {
			zombie.Add(authRecord(o, base.Add(48*time.Hour)), o, 10)
		}
		// A new owner claims (at the zombie's next number), writes and
		// compacts past it: that number is deleted, free again.
		if err := writeCompacting(ctx, fsys, nil, 40, 5, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(ctx, "_lambdalog/commits/auth/0/"+seqName(next)); err == nil {
			t.Fatalf("entry %d was not compacted away; the test does not test anything", next)
		}
		if _, _, err := zombie.Commit(ctx); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie commit into a deleted number: %v, want ErrFenced", err)
		}
		if _, err := fsys.Stat(ctx, "_lambdalog/commits/auth/0/"+seqName(next)); err == nil {
			t.Errorf("the zombie left its entry %d behind", next)
		}
		// Its files belong to a day no one else writes: none may have
		// been moved there.
		if _, err := fsys.Stat(ctx, "auth/dt=2026-11-25"); err == nil {
			t.Errorf("zombie files moved into place under auth/dt=2026-11-25")
		}
		mustVerify(t, fsys, 40)
	})
}

// TestCheckpointWritesAreBounded: over a long history (200 data entries,
// a checkpoint every 10 entries) each checkpoint writes one segment of at
// most its own folded entries and a snapshot of segment names, never the
// partition's whole history again; every segment in force is read back
// (all 200 entries' files are in the state, verify exact); a segment of a
// checkpoint attempt that never published is deleted by the next
// checkpoint; and a snapshot written before segments (entries inline) is
// read as before and folded into the next checkpoint's first segment.
func TestCheckpointWritesAreBounded(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		const every = 10
		l := NewLog(fsys, "auth", 0)
		size := func(name string) int64 {
			fi, err := fsys.Stat(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size
		}
		segments := func() map[string]int {
			names, err := fsys.ReadDir(ctx, l.segmentsDir())
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]int{}
			for _, n := range names {
				seg, err := l.readSegment(ctx, n.Name)
				if err != nil {
					t.Fatal(err)
				}
				out[n.Name] = len(seg.Entries)
			}
			return out
		}
		if err := writeCompacting(ctx, fsys, nil, 200, 1, every); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 200)
		v, err := l.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Segments) < 15 {
			t.Fatalf("%d segments in force after 200 entries, want one per checkpoint", len(v.Segments))
		}
		for name, n := range segments() {
			if n == 0 || n > every {
				t.Errorf("segment %s holds %d entries, want 1..%d", name, n, every)
			}
		}
		snapName := path.Join(l.dir(), seqName(v.Checkpoint), snapshotFile)
		snap, err := l.readSnapshot(ctx, v.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Entries) != 0 {
			t.Fatalf("the snapshot holds %d entries inline", len(snap.Entries))
		}
		if perName := size(snapName) / int64(len(snap.Segments)); perName > 100 {
			t.Fatalf("snapshot %d bytes for %d segments: more than names", size(snapName), len(snap.Segments))
		}
		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(st.Files("auth")); got != 200 {
			t.Fatalf("state lists %d files, want the 200 committed", got)
		}

		// A checkpoint attempt that wrote its segment and never published
		// (a crash, or a fenced zombie) leaves a stale segment; the next
		// checkpoint removes it.
		stale := path.Join(l.segmentsDir(), segmentName(v.Checkpoint+1, "crashed-epoch"))
		if err := l.writeFile(ctx, stale, []byte(`{"entries":[]}`)); err != nil {
			t.Fatal(err)
		}
		if err := writeCompacting(ctx, fsys, nil, 230, 1, every); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(ctx, stale); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stale segment still there: %v", err)
		}
		mustVerify(t, fsys, 230)

		// A snapshot from before segments: every folded entry inline.
		v, err = l.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		legacy, err := json.Marshal(snapshot{Entries: v.Folded})
		if err != nil {
			t.Fatal(err)
		}
		snapName = path.Join(l.dir(), seqName(v.Checkpoint), snapshotFile)
		if err := fsys.Remove(ctx, snapName); err != nil {
			t.Fatal(err)
		}
		if err := l.writeFile(ctx, snapName, legacy); err != nil {
			t.Fatal(err)
		}
		if err := fsys.RemoveAll(ctx, l.segmentsDir()); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 230)
		if err := writeCompacting(ctx, fsys, nil, 260, 1, every); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, fsys, 260)
		v, err = l.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Segments) < 2 || len(v.Folded) < 230 {
			t.Fatalf("after the legacy snapshot: %d segments, %d folded entries", len(v.Segments), len(v.Folded))
		}
	})
}
