package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Commit log compaction.
//
// Entries are small, but one per commit, heartbeat and claim adds up, and
// recovery and every reader of the state used to read them all. Every
// Options.CheckpointEvery entries the owner publishes a checkpoint entry: an
// entry like any other (next sequence number, same fenced rename) whose
// directory also holds snapshot.json, the data entries of everything before
// it (the previous checkpoint's snapshot plus the entries since). Once it is
// published the entries before it are redundant and deleted, oldest first.
//
// Every entry names the newest checkpoint at or before it (Entry.Checkpoint),
// so a reader reads the newest entry, then that checkpoint and the entries
// after it, and ignores whatever older entries a crashed deletion left. A
// log without checkpoints (every dataset written before they existed) has
// Checkpoint 0 everywhere and is read whole, as before. Fencing is
// unchanged: it only needs the newest sequence numbers, which compaction
// never deletes.

// Folded summarises what a checkpoint folded.
type Folded struct {
	// Start is the first offset of the partition's log.
	Start int64 `json:"start"`
	// Entries, Files and Records count the folded data entries.
	Entries int   `json:"entries"`
	Files   int   `json:"files"`
	Records int64 `json:"records"`
}

// snapshot is a checkpoint's snapshot.json. It names the segments that
// hold the folded entries, oldest first: each checkpoint writes one
// segment with the data entries folded since the previous checkpoint (at
// most about CheckpointEvery of them) and lists the earlier segments by
// name, so a checkpoint writes a bounded amount whatever the partition's
// history, where rewriting every folded entry grew with every file ever
// committed. Entries holds folded entries inline: snapshots written before
// segments existed, read as before.
type snapshot struct {
	Segments []string `json:"segments,omitempty"`
	Entries  []Entry  `json:"entries,omitempty"`
}

// segment is one segment file: folded data entries, oldest first.
type segment struct {
	Entries []Entry `json:"entries"`
}

// segmentsDir holds a partition's segments, beside the entry directories
// (whose numeric names the log lists; this one is not numeric). Segments
// outlive the checkpoint that wrote them, whose directory the next
// compaction deletes.
func (l *Log) segmentsDir() string { return path.Join(l.dir(), "segments") }

// segmentName is unique per checkpoint attempt: a writer that lost the
// race for seq never overwrites the winner's segment.
func segmentName(seq int64, epoch string) string { return seqName(seq) + "-" + epoch + ".json" }

// View is what a reader sees of a partition's log.
type View struct {
	// Checkpoint is the sequence number of the newest checkpoint (0: none).
	Checkpoint int64
	// Start is the first offset of the log.
	Start int64
	// Folded are the data entries the checkpoint folded, oldest first.
	Folded []Entry
	// Segments are the checkpoint snapshot's segments.
	Segments []string
	// Live are the entries from the checkpoint on (all of them without
	// one), in sequence order.
	Live []Entry
	// Leftover counts entries older than the checkpoint still on storage
	// (a deletion that did not finish); readers ignore them.
	Leftover int
}

// View reads the partition's log from its newest checkpoint. A compaction
// running meanwhile may delete what it was about to read; it then reads
// again from the newer checkpoint.
func (l *Log) View(ctx context.Context) (View, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		v, anchor, err := l.view(ctx)
		if err == nil {
			return v, nil
		}
		// Deletions go oldest first, so if anything this read depended
		// on vanished, its oldest dependency (the anchor) went first. The
		// failure itself may not say "not found": HDFS reports a file
		// deleted between open and read as an I/O error.
		if !errors.Is(err, fs.ErrNotExist) {
			if anchor < 0 {
				return View{}, err
			}
			if _, serr := l.fs.Stat(ctx, path.Join(l.dir(), seqName(anchor))); !errors.Is(serr, fs.ErrNotExist) {
				return View{}, err
			}
		}
		lastErr = err
	}
	return View{}, fmt.Errorf("consumer: read log of %s/%d: entries kept disappearing: %w", l.topic, l.partition, lastErr)
}

// view reads the log once. anchor is the oldest entry the read depended
// on (-1 before one is known).
func (l *Log) view(ctx context.Context) (v View, anchor int64, err error) {
	seqs, err := l.seqs(ctx)
	if err != nil || len(seqs) == 0 {
		return View{}, -1, err
	}
	anchor = seqs[0]
	last, err := l.read(ctx, seqs[len(seqs)-1])
	if err != nil {
		return View{}, anchor, err
	}
	if last.Checkpoint == 0 {
		// The newest entry names no checkpoint: a log from before
		// compaction existed, read whole as then. A writer of that age
		// may also have appended to a compacted log; then the newest
		// checkpoint among the entries still applies.
		all, err := l.span(ctx, seqs[0], last)
		if err != nil {
			return View{}, anchor, err
		}
		cpAt := -1
		for i, e := range all {
			if e.Kind == KindCheckpoint {
				cpAt = i
			}
		}
		if cpAt < 0 {
			v.Live = all
			if len(all) > 0 {
				v.Start = all[0].Start
			}
			return v, anchor, nil
		}
		v.Checkpoint, v.Leftover, v.Live = all[cpAt].Seq, cpAt, all[cpAt:]
	} else {
		v.Checkpoint = last.Checkpoint
		anchor = v.Checkpoint
		for _, s := range seqs {
			if s < v.Checkpoint {
				v.Leftover++
			}
		}
		if v.Live, err = l.span(ctx, v.Checkpoint, last); err != nil {
			return View{}, anchor, err
		}
	}
	cp := v.Live[0]
	if cp.Kind != KindCheckpoint || cp.Folded == nil {
		return View{}, anchor, fmt.Errorf("consumer: %s/%d: entry %d names checkpoint %d, which is a %q entry", l.topic, l.partition, last.Seq, cp.Seq, cp.Kind)
	}
	v.Start = cp.Folded.Start
	snap, err := l.readSnapshot(ctx, cp.Seq)
	if err != nil {
		return View{}, anchor, err
	}
	v.Segments = snap.Segments
	for _, name := range snap.Segments {
		seg, err := l.readSegment(ctx, name)
		if err != nil {
			return View{}, anchor, err
		}
		v.Folded = append(v.Folded, seg.Entries...)
	}
	v.Folded = append(v.Folded, snap.Entries...)
	return v, anchor, nil
}

func (l *Log) readSegment(ctx context.Context, name string) (segment, error) {
	full := path.Join(l.segmentsDir(), name)
	r, err := l.fs.Open(ctx, full)
	if err != nil {
		return segment{}, fmt.Errorf("consumer: read checkpoint segment %s: %w", full, err)
	}
	defer r.Close()
	var s segment
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return segment{}, fmt.Errorf("consumer: checkpoint segment %s is damaged: %w", full, err)
	}
	return s, nil
}

// seqs lists the sequence numbers on storage, ascending. A log that has an
// entry always keeps one (compaction never deletes the newest), so an empty
// listing is asked again: the local backend drops listed names it can no
// longer stat, so a listing whose every entry a compaction deleted before
// the stat (the writer having published newer ones meanwhile) comes back
// empty. TestReadersRaceCompaction hit it about once in fifteen runs on a
// loaded machine; a reader must not take it for a log without entries.
func (l *Log) seqs(ctx context.Context) ([]int64, error) {
	var out []int64
	var err error
	for attempt := 0; attempt < 3 && len(out) == 0 && err == nil; attempt++ {
		out, err = l.list(ctx)
	}
	return out, err
}

func (l *Log) list(ctx context.Context) ([]int64, error) {
	names, err := l.fs.ReadDir(ctx, l.dir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: list commits of %s/%d: %w", l.topic, l.partition, err)
	}
	var out []int64
	for _, n := range names {
		if seq, perr := strconv.ParseInt(n.Name, 10, 64); perr == nil && n.IsDir {
			out = append(out, seq)
		}
	}
	return out, nil // ReadDir sorts by name; names are zero-padded
}

func (l *Log) readSnapshot(ctx context.Context, seq int64) (snapshot, error) {
	name := path.Join(l.dir(), seqName(seq), snapshotFile)
	r, err := l.fs.Open(ctx, name)
	if err != nil {
		return snapshot{}, fmt.Errorf("consumer: read checkpoint %s: %w", name, err)
	}
	defer r.Close()
	var s snapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return snapshot{}, fmt.Errorf("consumer: checkpoint %s is damaged: %w", name, err)
	}
	return s, nil
}

// Compact publishes a checkpoint at seq, which must be the log's next
// sequence number for this writer (its last + 1), folding every entry
// before it; then it deletes the folded entries. Its caller must have
// rolled its newest entry forward: a checkpoint takes the newest place,
// and recovery only rolls the newest entry forward. ErrFenced means
// another writer owns the partition; nothing was deleted. An error after
// the publish (deleting) leaves the checkpoint in force and is returned
// with ok=true: leftovers are harmless and the next compaction removes them.
func (l *Log) Compact(ctx context.Context, epoch string, seq int64) (cp Entry, ok bool, err error) {
	v, err := l.View(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	if len(v.Live) == 0 {
		return Entry{}, false, fmt.Errorf("consumer: compact %s/%d: empty log", l.topic, l.partition)
	}
	last := v.Live[len(v.Live)-1]
	if last.Seq == seq && last.Kind == KindCheckpoint && last.Epoch == epoch {
		// Ours: an earlier attempt was published but its answer lost.
		l.checkpoint = seq
		return last, true, l.deleteBefore(ctx, seq, v.Segments)
	}
	if last.Seq != seq-1 {
		// Someone published after our last entry: the publish below
		// would collide anyway; say so without writing a snapshot.
		return Entry{}, false, fmt.Errorf("%w (%s/%d: newest entry %d, this writer is at %d)", ErrFenced, l.topic, l.partition, last.Seq, seq-1)
	}
	// The new segment: what the previous snapshot held inline (only a
	// snapshot from before segments has any) and the data entries since.
	var seg segment
	if len(v.Folded) > 0 {
		prev, err := l.readSnapshot(ctx, v.Checkpoint)
		if err != nil {
			return Entry{}, false, err
		}
		seg.Entries = append(seg.Entries, prev.Entries...)
	}
	sum := Folded{Start: v.Start}
	for _, e := range v.Folded {
		sum.Entries++
		sum.Files += len(e.Files)
		sum.Records += e.Records
	}
	for _, e := range v.Live {
		// Claims, heartbeats and checkpoints carry no offsets or files:
		// dropping them keeps the folded ranges contiguous.
		if e.Next > e.Start || len(e.Files) > 0 {
			seg.Entries = append(seg.Entries, e)
			sum.Entries++
			sum.Files += len(e.Files)
			sum.Records += e.Records
		}
	}
	snap := snapshot{Segments: append(v.Segments[:len(v.Segments):len(v.Segments)], segmentName(seq, epoch))}
	segBody, err := json.Marshal(seg)
	if err != nil {
		return Entry{}, false, fmt.Errorf("consumer: encode checkpoint segment: %w", err)
	}
	if err := l.fs.MkdirAll(ctx, l.segmentsDir()); err != nil {
		return Entry{}, false, fmt.Errorf("consumer: checkpoint segments dir: %w", err)
	}
	segPath := path.Join(l.segmentsDir(), segmentName(seq, epoch))
	if err := l.fs.Remove(ctx, segPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, fmt.Errorf("consumer: clear %s: %w", segPath, err) // an earlier attempt's
	}
	if err := l.writeFile(ctx, segPath, segBody); err != nil {
		return Entry{}, false, err
	}
	if err := l.step("segment-written"); err != nil {
		return Entry{}, false, err
	}
	body, err := json.Marshal(snap)
	if err != nil {
		return Entry{}, false, fmt.Errorf("consumer: encode checkpoint: %w", err)
	}
	cp = Entry{Seq: seq, Kind: KindCheckpoint, Start: last.Next, Next: last.Next, Epoch: epoch,
		MaxEventTime: last.MaxEventTime, Watermark: last.Watermark, Folded: &sum}
	if err := l.publish(ctx, cp, body); err != nil {
		return Entry{}, false, err
	}
	l.checkpoint = seq
	cp.Checkpoint = seq
	return cp, true, l.deleteBefore(ctx, seq, snap.Segments)
}

// deleteBefore removes the entries older than the checkpoint seq, oldest
// first, so a crash leaves a suffix that readers ignore anyway; then the
// segments of checkpoint attempts below seq that lost or never published
// (the checkpoint's own list, keep, names every segment in force).
func (l *Log) deleteBefore(ctx context.Context, seq int64, keep []string) error {
	if err := l.deleteEntriesBefore(ctx, seq); err != nil {
		return err
	}
	return l.deleteSegments(ctx, seq, keep)
}

func (l *Log) deleteSegments(ctx context.Context, seq int64, keep []string) error {
	names, err := l.fs.ReadDir(ctx, l.segmentsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: list checkpoint segments of %s/%d: %w", l.topic, l.partition, err)
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	for _, n := range names {
		s, _, _ := strings.Cut(n.Name, "-")
		at, perr := strconv.ParseInt(s, 10, 64)
		// Only below seq: a segment at or above it may be a later
		// checkpoint's, being written.
		if perr != nil || at >= seq || kept[n.Name] {
			continue
		}
		if err := l.fs.Remove(ctx, path.Join(l.segmentsDir(), n.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("consumer: delete stale checkpoint segment %s: %w", n.Name, err)
		}
	}
	return nil
}

func (l *Log) deleteEntriesBefore(ctx context.Context, seq int64) error {
	seqs, err := l.seqs(ctx)
	if err != nil {
		return err
	}
	i := 0
	for _, s := range seqs {
		if s >= seq {
			break
		}
		name := path.Join(l.dir(), seqName(s))
		if err := l.fs.RemoveAll(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("consumer: delete folded entry %s: %w", name, err)
		}
		if err := l.step("folded-deleted-" + strconv.Itoa(i)); err != nil {
			return err
		}
		i++
	}
	return nil
}

// EntriesSinceCheckpoint is how many entries this writer published after
// the newest checkpoint it knows (all of them in a log without one).
func (w *PartitionWriter) EntriesSinceCheckpoint() int64 {
	return w.seq - w.log.checkpoint
}

// Checkpoint folds the partition's log into a checkpoint entry at the
// writer's next sequence number and deletes the folded entries. Buffered
// records are unaffected: their commit follows the checkpoint. published
// says whether the checkpoint is in force (an error may still follow, from
// deleting the folded entries).
func (w *PartitionWriter) Checkpoint(ctx context.Context) (cp Entry, published bool, err error) {
	if w.pending != nil {
		if err := w.log.RollForward(ctx, *w.pending); err != nil {
			return Entry{}, false, err
		}
		w.pending = nil
	}
	cp, published, err = w.log.Compact(ctx, w.epoch, w.seq+1)
	if published {
		w.seq = cp.Seq
	}
	return cp, published, err
}
