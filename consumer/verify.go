package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// PartitionState is the committed state of one topic-partition.
type PartitionState struct {
	Topic     string
	Partition int32
	// Next is the first offset not in the dataset.
	Next int64
	// Watermark is the event time up to which the partition is complete.
	Watermark time.Time
	// Start is the first offset of the log.
	Start int64
	// Entries are the published commit entries, oldest first: the data
	// entries the newest checkpoint folded, then the entries on storage
	// from that checkpoint on (docs/exactly-once.md, compaction).
	Entries []Entry
	// Checkpoint is the newest checkpoint's sequence number (0: none);
	// the first Folded entries come from its snapshot. Leftover counts
	// older entries a crashed compaction did not delete (ignored).
	Checkpoint int64
	Folded     int
	Leftover   int
}

// State is the committed state of the whole dataset: what the batch layer
// reads instead of trusting directory listings.
type State struct {
	Partitions []PartitionState
}

// Files returns the committed files of a dataset, final names.
func (s State) Files(dataset string) []FileRef {
	var out []FileRef
	for _, p := range s.Partitions {
		for _, e := range p.Entries {
			for _, f := range e.Files {
				if f.Dataset == dataset {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// Watermark is the minimum watermark over all partitions: the event time up
// to which the whole dataset is complete (zero when nothing is committed).
func (s State) Watermark() time.Time {
	var wm time.Time
	for i, p := range s.Partitions {
		if i == 0 || p.Watermark.Before(wm) {
			wm = p.Watermark
		}
	}
	return wm
}

// ReadState reads every partition's commit log.
func ReadState(ctx context.Context, fsys storage.FS) (State, error) {
	var st State
	topics, err := fsys.ReadDir(ctx, commitsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("consumer: read state: %w", err)
	}
	for _, t := range topics {
		parts, err := fsys.ReadDir(ctx, path.Join(commitsDir, t.Name))
		if err != nil {
			return st, fmt.Errorf("consumer: read state: %w", err)
		}
		for _, p := range parts {
			n, err := strconv.Atoi(p.Name)
			if err != nil {
				continue
			}
			v, err := NewLog(fsys, t.Name, int32(n)).View(ctx)
			if err != nil {
				return st, err
			}
			entries := append(v.Folded, v.Live...)
			ps := PartitionState{Topic: t.Name, Partition: int32(n), Start: v.Start, Entries: entries,
				Checkpoint: v.Checkpoint, Folded: len(v.Folded), Leftover: v.Leftover}
			if len(entries) > 0 {
				last := entries[len(entries)-1]
				ps.Next, ps.Watermark = last.Next, last.Watermark
			}
			st.Partitions = append(st.Partitions, ps)
		}
	}
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, b := st.Partitions[i], st.Partitions[j]
		return a.Topic < b.Topic || (a.Topic == b.Topic && a.Partition < b.Partition)
	})
	return st, nil
}

// PartitionReport is what Verify found for one topic-partition.
type PartitionReport struct {
	Topic      string  `json:"topic"`
	Partition  int32   `json:"partition"`
	Entries    int     `json:"entries"`
	Start      int64   `json:"start"`
	Next       int64   `json:"next"`
	Rows       int64   `json:"rows"`
	Files      int     `json:"files"`
	Holes      []Range `json:"holes,omitempty"`
	Duplicates int64   `json:"duplicates"`
	// Pending are files of the newest entry still at their temporary
	// name (a consumer will roll them forward); not an inconsistency.
	Pending int `json:"pending"`
	// Checkpoint is the newest checkpoint (0: none), Folded the entries
	// read from its snapshot, Leftover older entries still on storage
	// (a compaction's deletion cut short; harmless).
	Checkpoint int64    `json:"checkpoint,omitempty"`
	Folded     int      `json:"folded,omitempty"`
	Leftover   int      `json:"leftover,omitempty"`
	Problems   []string `json:"problems,omitempty"`
}

// Range is the offsets [From, To).
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Report is the result of Verify.
type Report struct {
	Partitions []PartitionReport `json:"partitions"`
	// Orphans are data files no commit entry references.
	Orphans []string `json:"orphans,omitempty"`
	OK      bool     `json:"ok"`
}

// Verify reads the commit state and every committed file and checks that
// each partition's committed offsets are in the dataset exactly once: no
// holes, no duplicates, ranges contiguous, row counts as committed, and no
// data file outside the commit log. Offsets a topic does not hold (e.g.
// transaction markers) would show as holes: lambdalog's producers are not
// transactional, so source topics have none.
func Verify(ctx context.Context, fsys storage.FS) (Report, error) {
	st, err := ReadState(ctx, fsys)
	if err != nil {
		return Report{}, err
	}
	rep := Report{OK: true}
	referenced := map[string]bool{}
	for _, ps := range st.Partitions {
		pr := PartitionReport{Topic: ps.Topic, Partition: ps.Partition, Entries: len(ps.Entries),
			Checkpoint: ps.Checkpoint, Folded: ps.Folded, Leftover: ps.Leftover}
		if len(ps.Entries) > 0 {
			pr.Start, pr.Next = ps.Start, ps.Entries[len(ps.Entries)-1].Next
			if ps.Entries[0].Start != pr.Start {
				pr.Problems = append(pr.Problems, fmt.Sprintf("log starts at %d, its first entry at %d", pr.Start, ps.Entries[0].Start))
			}
		}
		if ps.Checkpoint > 0 {
			pr.Problems = append(pr.Problems, checkFolded(ps)...)
		}
		seen := make([]uint8, max(0, pr.Next-pr.Start))
		for i, e := range ps.Entries {
			if i > 0 {
				prev := ps.Entries[i-1]
				// Folded entries keep their numbers but lost the claims
				// and heartbeats between them; from the checkpoint on
				// the sequence is dense.
				if i > ps.Folded && e.Seq != prev.Seq+1 || i <= ps.Folded && e.Seq <= prev.Seq {
					pr.Problems = append(pr.Problems, fmt.Sprintf("sequence %d follows %d", e.Seq, prev.Seq))
				}
				if e.Start != prev.Next {
					pr.Problems = append(pr.Problems, fmt.Sprintf("entry %d starts at %d, previous ended at %d", e.Seq, e.Start, prev.Next))
				}
			}
			var rows int64
			for _, f := range e.Files {
				referenced[f.Final] = true
				name := f.Final
				if _, err := fsys.Stat(ctx, f.Final); err != nil {
					if i == len(ps.Entries)-1 {
						if _, terr := fsys.Stat(ctx, f.Temp); terr == nil {
							pr.Pending++
							name = f.Temp
						}
					}
					if name == f.Final {
						pr.Problems = append(pr.Problems, fmt.Sprintf("entry %d: file %s missing", e.Seq, f.Final))
						continue
					}
				}
				offsets, err := readOffsets(ctx, fsys, name)
				if err != nil {
					pr.Problems = append(pr.Problems, fmt.Sprintf("entry %d: %v", e.Seq, err))
					continue
				}
				if int64(len(offsets)) != f.Rows {
					pr.Problems = append(pr.Problems, fmt.Sprintf("%s: %d rows, commit says %d", f.Final, len(offsets), f.Rows))
				}
				for _, o := range offsets {
					if o < e.Start || o >= e.Next || o < f.FirstOffset || o > f.LastOffset {
						pr.Problems = append(pr.Problems, fmt.Sprintf("%s: offset %d outside its commit", f.Final, o))
						continue
					}
					if seen[o-pr.Start] > 0 {
						pr.Duplicates++
					}
					seen[o-pr.Start]++
				}
				rows += int64(len(offsets))
				pr.Files++
			}
			pr.Rows += rows
		}
		for i := 0; i < len(seen); {
			if seen[i] != 0 {
				i++
				continue
			}
			j := i
			for j < len(seen) && seen[j] == 0 {
				j++
			}
			pr.Holes = append(pr.Holes, Range{From: pr.Start + int64(i), To: pr.Start + int64(j)})
			i = j
		}
		if len(pr.Holes) > 0 || pr.Duplicates > 0 || len(pr.Problems) > 0 {
			rep.OK = false
		}
		rep.Partitions = append(rep.Partitions, pr)
	}
	orphans, err := findOrphans(ctx, fsys, "", referenced)
	if err != nil {
		return rep, err
	}
	rep.Orphans = orphans
	if len(orphans) > 0 {
		rep.OK = false
	}
	return rep, nil
}

// checkFolded compares a checkpoint's summary with its snapshot.
func checkFolded(ps PartitionState) []string {
	if ps.Folded >= len(ps.Entries) {
		return []string{"checkpoint entry missing"}
	}
	cp := ps.Entries[ps.Folded]
	if cp.Kind != KindCheckpoint || cp.Folded == nil || cp.Seq != ps.Checkpoint {
		return []string{fmt.Sprintf("entry %d is not checkpoint %d", cp.Seq, ps.Checkpoint)}
	}
	var files int
	var records int64
	for _, e := range ps.Entries[:ps.Folded] {
		files += len(e.Files)
		records += e.Records
	}
	if got := (Folded{Start: ps.Start, Entries: ps.Folded, Files: files, Records: records}); got != *cp.Folded {
		return []string{fmt.Sprintf("checkpoint %d says it folded %+v, its snapshot holds %+v", cp.Seq, *cp.Folded, got)}
	}
	return nil
}

func findOrphans(ctx context.Context, fsys storage.FS, dir string, referenced map[string]bool) ([]string, error) {
	entries, err := fsys.ReadDir(ctx, dirOrRoot(dir))
	if err != nil {
		return nil, fmt.Errorf("consumer: list %s: %w", dirOrRoot(dir), err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name, "_") || strings.HasPrefix(e.Name, ".") {
			continue // bookkeeping, hidden by convention
		}
		p := path.Join(dir, e.Name)
		if e.IsDir {
			sub, err := findOrphans(ctx, fsys, p, referenced)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		} else if strings.HasSuffix(e.Name, ".parquet") && !referenced[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

func dirOrRoot(d string) string {
	if d == "" {
		return "."
	}
	return d
}

// readOffsets reads the kafka_offset column of a Parquet file.
func readOffsets(ctx context.Context, fsys storage.FS, name string) ([]int64, error) {
	r, err := fsys.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	pr, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: not a Parquet file: %w", name, err)
	}
	defer pr.Close()
	idx := pr.MetaData().Schema.ColumnIndexByName("kafka_offset")
	if idx < 0 {
		return nil, fmt.Errorf("%s: no kafka_offset column", name)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	rgs := make([]int, pr.NumRowGroups())
	for i := range rgs {
		rgs[i] = i
	}
	tbl, err := fr.ReadRowGroups(ctx, []int{idx}, rgs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer tbl.Release()
	out := make([]int64, 0, tbl.NumRows())
	for _, ch := range tbl.Column(0).Data().Chunks() {
		out = append(out, ch.(*array.Int64).Int64Values()...)
	}
	return out, nil
}
