// Package consumer is the exactly-once Kafka -> Parquet consumer: it writes
// every event of the source topics to the master dataset once, storing the
// Kafka offsets in the dataset beside the files they cover. See
// docs/exactly-once.md for the protocol and its failure analysis.
//
// The commit point of a topic-partition is its commit log: a dense sequence
// of entry directories under _lambdalog/commits/<topic>/<partition>/. An
// entry is published by renaming a fully written temporary directory to the
// next sequence number; that rename fails when the number is taken (local
// disk: renameat2 RENAME_NOREPLACE; HDFS: a directory rename never replaces
// a non-empty directory), so two writers can never both publish the same
// number. Everything else (data files, recovery, fencing) is built on that.
package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// Bookkeeping lives under a name that starts with '_', so readers globbing
// **/*.parquet and Hive/Spark-style listings skip it.
const (
	metaDir    = "_lambdalog"
	commitsDir = metaDir + "/commits"
	tmpDir     = metaDir + "/tmp"
	entryFile  = "entry.json"
	// snapshotFile, beside a checkpoint's entry.json, holds the entries
	// it folded.
	snapshotFile = "snapshot.json"
)

// ErrFenced means another writer published the sequence number this writer
// needed: it no longer owns the partition and must stop writing it.
var ErrFenced = errors.New("consumer: fenced: another writer owns the partition")

// FileRef is one data file of a commit entry.
type FileRef struct {
	// Temp is where the file was written; Final where it is published.
	Temp  string `json:"temp"`
	Final string `json:"final"`
	// Dataset is the dataset (directory) the file belongs to.
	Dataset string `json:"dataset"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	// FirstOffset and LastOffset bound the Kafka offsets of its rows.
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

// Kinds of entries. Every kind takes one sequence number through the same
// fenced Publish; only data entries (kind empty) carry files. Entries
// written before kinds existed have none: a claim among them reads as an
// empty data entry, which is what it is.
const (
	KindData = ""
	// KindClaim is an owner's first entry, which fences earlier owners.
	KindClaim = "claim"
	// KindHeartbeat raises the watermark of an idle, caught-up partition.
	KindHeartbeat = "heartbeat"
	// KindCheckpoint folds every earlier entry into its snapshot
	// (compact.go); the entries before it may then be deleted.
	KindCheckpoint = "checkpoint"
)

// Entry is one published commit of a topic-partition: the offsets
// [Start, Next) are in the dataset exactly in Files.
type Entry struct {
	Seq       int64     `json:"seq"`
	Kind      string    `json:"kind,omitempty"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Start     int64     `json:"start"`
	Next      int64     `json:"next"`
	Epoch     string    `json:"epoch"`
	Files     []FileRef `json:"files,omitempty"`
	Records   int64     `json:"records"`
	// MaxEventTime is the newest event time written so far by the
	// partition; Watermark the event time up to which it is complete.
	MaxEventTime time.Time `json:"max_event_time"`
	Watermark    time.Time `json:"watermark"`
	Published    time.Time `json:"published"`
	// Checkpoint is the sequence number of the newest checkpoint at or
	// before this entry (0: none), so a reader finds it from the newest
	// entry alone. Publish sets it.
	Checkpoint int64 `json:"checkpoint,omitempty"`
	// Folded summarises what a checkpoint entry folded.
	Folded *Folded `json:"folded,omitempty"`
}

// Log is the commit log of one topic-partition.
type Log struct {
	fs        storage.FS
	topic     string
	partition int32
	// hook, when set, is called between the steps of the protocol; tests
	// return an error from it to simulate a crash at that point.
	hook func(step string) error
	// checkpoint is the newest checkpoint this writer knows (from its
	// claim or its own compaction); Publish stamps it on every entry.
	checkpoint int64
}

// NewLog returns the commit log of topic-partition tp in fsys.
func NewLog(fsys storage.FS, topic string, partition int32) *Log {
	return &Log{fs: fsys, topic: topic, partition: partition}
}

func (l *Log) dir() string {
	return path.Join(commitsDir, l.topic, strconv.Itoa(int(l.partition)))
}

func (l *Log) tmp(epoch string) string {
	return path.Join(tmpDir, l.topic, strconv.Itoa(int(l.partition)), epoch)
}

func seqName(seq int64) string { return fmt.Sprintf("%020d", seq) }

func (l *Log) step(name string) error {
	if l.hook != nil {
		return l.hook(name)
	}
	return nil
}

// Entries returns the partition's entries in order: those the newest
// checkpoint folded (data entries only), then every entry from the
// checkpoint on. Without a checkpoint, every published entry.
func (l *Log) Entries(ctx context.Context) ([]Entry, error) {
	v, err := l.View(ctx)
	if err != nil {
		return nil, err
	}
	return append(v.Folded, v.Live...), nil
}

// span reads the entries first..last.Seq by number: an unbroken span, since
// entries are only ever deleted oldest first.
func (l *Log) span(ctx context.Context, first int64, last Entry) ([]Entry, error) {
	out := make([]Entry, 0, last.Seq-first+1)
	for s := first; s < last.Seq; s++ {
		e, err := l.read(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return append(out, last), nil
}

func (l *Log) read(ctx context.Context, seq int64) (Entry, error) {
	name := path.Join(l.dir(), seqName(seq), entryFile)
	r, err := l.fs.Open(ctx, name)
	if err != nil {
		return Entry{}, fmt.Errorf("consumer: read commit %s: %w", name, err)
	}
	defer r.Close()
	var e Entry
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&e); err != nil {
		// Entries are published whole (the directory rename), so a
		// damaged one is corruption, not a half-done write.
		return Entry{}, fmt.Errorf("consumer: commit %s is damaged: %w", name, err)
	}
	if e.Seq != seq {
		return Entry{}, fmt.Errorf("consumer: commit %s names sequence %d", name, e.Seq)
	}
	return e, nil
}

// Last returns the newest entry, or ok=false when the log is empty.
func (l *Log) Last(ctx context.Context) (e Entry, ok bool, err error) {
	names, err := l.fs.ReadDir(ctx, l.dir())
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("consumer: list commits of %s/%d: %w", l.topic, l.partition, err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		if seq, perr := strconv.ParseInt(names[i].Name, 10, 64); perr == nil && names[i].IsDir {
			e, err := l.read(ctx, seq)
			return e, err == nil, err
		}
	}
	return Entry{}, false, nil
}

// Publish makes e the entry with sequence e.Seq. It returns ErrFenced when
// another writer holds that sequence number. A publish whose answer was lost
// is recognised by reading the entry back.
func (l *Log) Publish(ctx context.Context, e Entry) error {
	return l.publish(ctx, e, nil)
}

// publish stages entry.json, and for a checkpoint its snapshot, in one
// directory and renames it to the sequence number: both appear at once.
func (l *Log) publish(ctx context.Context, e Entry, snapshot []byte) error {
	e.Topic, e.Partition = l.topic, l.partition
	e.Published = time.Now().UTC()
	e.Checkpoint = l.checkpoint
	steps := "entry"
	if e.Kind == KindCheckpoint {
		e.Checkpoint, steps = e.Seq, "checkpoint"
	}
	body, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("consumer: encode commit: %w", err)
	}
	stage := path.Join(l.tmp(e.Epoch), "entry-"+seqName(e.Seq))
	if err := l.fs.RemoveAll(ctx, stage); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("consumer: clear %s: %w", stage, err)
	}
	if err := l.fs.MkdirAll(ctx, stage); err != nil {
		return fmt.Errorf("consumer: stage commit: %w", err)
	}
	if snapshot != nil {
		if err := l.writeFile(ctx, path.Join(stage, snapshotFile), snapshot); err != nil {
			return err
		}
		if err := l.step("snapshot-staged"); err != nil {
			return err
		}
	}
	if err := l.writeFile(ctx, path.Join(stage, entryFile), body); err != nil {
		return err
	}
	if err := l.step(steps + "-staged"); err != nil {
		return err
	}
	if err := l.fs.MkdirAll(ctx, l.dir()); err != nil {
		return fmt.Errorf("consumer: commit dir: %w", err)
	}
	target := path.Join(l.dir(), seqName(e.Seq))
	rerr := l.fs.Rename(ctx, stage, target)
	if rerr == nil {
		if err := l.notResurrected(ctx, e.Seq); err != nil {
			return err
		}
		return l.step(steps + "-published")
	}
	// Whatever the error (taken, or an answer lost), the entry at target
	// says who won.
	got, err := l.read(ctx, e.Seq)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("consumer: publish %s/%d #%d: %w", l.topic, l.partition, e.Seq, rerr)
		}
		return err
	}
	if got.Epoch == e.Epoch && got.Kind == e.Kind && bytes.Equal(mustJSON(got.Files), mustJSON(e.Files)) && got.Next == e.Next {
		return l.notResurrected(ctx, e.Seq)
	}
	_ = l.fs.RemoveAll(ctx, stage)
	return fmt.Errorf("%w (%s/%d sequence %d taken by epoch %s)", ErrFenced, l.topic, l.partition, e.Seq, got.Epoch)
}

// notResurrected checks, after this writer's entry seq was published,
// that seq is not below the newest checkpoint. Compaction deletes the
// entries below a checkpoint, which frees their numbers: a zombie whose
// next number was deleted gets a rename that succeeds. Its entry is then
// one readers ignore (they start at the newest entry's checkpoint), but the
// zombie must learn it lost the partition before it moves any file into
// place. If the newest entry names a checkpoint above seq, the publish is
// fenced and the entry removed (readers ignore it either way). A genuine
// publish that a new owner then claimed and folded into a checkpoint is
// also reported fenced: true, since the new owner rolled it forward when it
// claimed.
func (l *Log) notResurrected(ctx context.Context, seq int64) error {
	var top Entry
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var seqs []int64
		if seqs, err = l.seqs(ctx); err != nil {
			break
		}
		if len(seqs) == 0 {
			err = fmt.Errorf("consumer: %s/%d: log empty right after publishing %d: %w", l.topic, l.partition, seq, fs.ErrNotExist)
			continue
		}
		// The newest entry is never deleted; a listing that is already
		// stale may still name one that was.
		if top, err = l.read(ctx, seqs[len(seqs)-1]); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("consumer: publish %s/%d #%d: check the newest entry: %w", l.topic, l.partition, seq, err)
	}
	if top.Checkpoint <= seq {
		return nil
	}
	_ = l.fs.RemoveAll(ctx, path.Join(l.dir(), seqName(seq)))
	return fmt.Errorf("%w (%s/%d sequence %d was free only because checkpoint %d deleted it)", ErrFenced, l.topic, l.partition, seq, top.Checkpoint)
}

// writeFile writes name whole and closes it (durable).
func (l *Log) writeFile(ctx context.Context, name string, body []byte) error {
	f, err := l.fs.Create(ctx, name)
	if err != nil {
		return fmt.Errorf("consumer: stage commit: %w", err)
	}
	if _, err := f.Write(body); err != nil {
		f.Abort()
		return fmt.Errorf("consumer: stage commit %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("consumer: stage commit %s: %w", name, err)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// RollForward moves an entry's files from their temporary to their final
// names. It is idempotent: a file already in place is done.
func (l *Log) RollForward(ctx context.Context, e Entry) error {
	for i, f := range e.Files {
		if err := l.fs.MkdirAll(ctx, path.Dir(f.Final)); err != nil {
			return fmt.Errorf("consumer: roll forward %s: %w", f.Final, err)
		}
		err := l.fs.Rename(ctx, f.Temp, f.Final)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist):
			if _, serr := l.fs.Stat(ctx, f.Final); serr != nil {
				return fmt.Errorf("consumer: commit %s/%d #%d: file %s is neither at its temporary nor its final name: %w", l.topic, l.partition, e.Seq, f.Final, serr)
			}
		default:
			return fmt.Errorf("consumer: roll forward %s: %w", f.Final, err)
		}
		if err := l.step("file-moved-" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	return nil
}

// Claim takes ownership of the partition for epoch: it completes the last
// published entry, publishes an empty claim entry at the next sequence
// number (which fences every earlier owner), removes other epochs'
// temporary files, and returns the claim, whose Next is where to resume.
func (l *Log) Claim(ctx context.Context, epoch string) (Entry, error) {
	for attempt := 0; attempt < 5; attempt++ {
		last, ok, err := l.Last(ctx)
		if err != nil {
			return Entry{}, err
		}
		claim := Entry{Seq: 0, Epoch: epoch}
		l.checkpoint = 0
		if ok {
			l.checkpoint = last.Checkpoint
			if err := l.RollForward(ctx, last); err != nil {
				return Entry{}, err
			}
			claim = Entry{Seq: last.Seq + 1, Start: last.Next, Next: last.Next, Epoch: epoch,
				MaxEventTime: last.MaxEventTime, Watermark: last.Watermark}
		}
		claim.Kind = KindClaim
		err = l.Publish(ctx, claim)
		if errors.Is(err, ErrFenced) {
			continue // someone published meanwhile; look again
		}
		if err != nil {
			return Entry{}, err
		}
		if err := l.cleanTemp(ctx, epoch); err != nil {
			return Entry{}, err
		}
		return claim, nil
	}
	return Entry{}, fmt.Errorf("consumer: claim %s/%d: lost the race 5 times", l.topic, l.partition)
}

// cleanTemp removes the temporary files of every epoch but keep. After a
// claim no earlier epoch can publish, so its files can never be referenced.
func (l *Log) cleanTemp(ctx context.Context, keep string) error {
	dir := path.Dir(l.tmp(keep))
	entries, err := l.fs.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name == keep {
			continue
		}
		if err := l.fs.RemoveAll(ctx, path.Join(dir, e.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("consumer: remove stale %s: %w", e.Name, err)
		}
	}
	return nil
}
