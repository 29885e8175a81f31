// Package source finds and reads the Parquet files of the master dataset
// for the batch jobs: which committed files hold a data interval, how far
// the dataset is complete, and a parallel, column-projected scan of the
// files through internal/storage (local disk or HDFS).
//
// Until the consumer's committed-state API lands, Layout reads the
// directory layout the consumer writes, <dataset>/dt=YYYY-MM-DD/hour=HH/
// *.parquet, skipping names that start with "_" or "." (in-progress and
// bookkeeping files). Switching to the consumer's manifest and watermark
// means writing one more Source; the jobs only see the interface.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// File is one committed data file.
type File struct {
	// Dataset is the dataset the file belongs to.
	Dataset string
	// Name is the file's name in the storage FS.
	Name string
	// Size is its length in bytes.
	Size int64
	// PartStart and PartEnd bound the event times the file's partition
	// holds (its dt=/hour= hour in the dataset timezone).
	PartStart, PartEnd time.Time
}

// Source lists committed files and reports completeness.
type Source interface {
	// Files returns the committed files of dataset whose partitions
	// overlap [from, to), in name order.
	Files(ctx context.Context, dataset string, from, to time.Time) ([]File, error)
	// Watermark is the event time up to which every partition of the
	// dataset is complete.
	Watermark(ctx context.Context) (time.Time, error)
}

// Layout is the Source over the consumer's directory layout.
type Layout struct {
	// FS is the dataset root.
	FS storage.FS
	// Location is the timezone of the dt=/hour= partitions
	// (dataset.timezone); UTC when nil.
	Location *time.Location
	// Datasets are the datasets Watermark considers.
	Datasets []string
}

func (l *Layout) loc() *time.Location {
	if l.Location == nil {
		return time.UTC
	}
	return l.Location
}

func hidden(name string) bool { return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") }

// Files implements Source. Missing dataset or day directories mean no data.
func (l *Layout) Files(ctx context.Context, dataset string, from, to time.Time) ([]File, error) {
	loc := l.loc()
	var out []File
	// Walk the local days the interval touches; an hour partition is taken
	// when its hour overlaps [from, to).
	first := from.In(loc)
	day := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, loc)
	for ; day.Before(to); day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc) {
		dir := dataset + "/dt=" + day.Format("2006-01-02")
		hours, err := l.FS.ReadDir(ctx, dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("source: list %s: %w", dir, err)
		}
		for _, h := range hours {
			if !h.IsDir || hidden(h.Name) || !strings.HasPrefix(h.Name, "hour=") {
				continue
			}
			start, end, ok := hourBounds(day, h.Name)
			if !ok || !start.Before(to) || !end.After(from) {
				continue
			}
			hdir := dir + "/" + h.Name
			files, err := l.FS.ReadDir(ctx, hdir)
			if err != nil {
				return nil, fmt.Errorf("source: list %s: %w", hdir, err)
			}
			for _, f := range files {
				if f.IsDir || hidden(f.Name) || !strings.HasSuffix(f.Name, ".parquet") {
					continue
				}
				out = append(out, File{Dataset: dataset, Name: hdir + "/" + f.Name, Size: f.Size, PartStart: start, PartEnd: end})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// hourBounds turns "hour=HH" of a local day into absolute bounds. On a
// fall-back day the repeated hour is one partition two hours long; on a
// spring-forward day the missing hour has no partition.
func hourBounds(day time.Time, name string) (start, end time.Time, ok bool) {
	var h int
	if _, err := fmt.Sscanf(name, "hour=%02d", &h); err != nil || h < 0 || h > 23 {
		return time.Time{}, time.Time{}, false
	}
	loc := day.Location()
	next := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
	for t := day; t.Before(next); t = t.Add(time.Hour) {
		if t.In(loc).Hour() != h {
			continue
		}
		if !ok {
			start, ok = t, true
		}
		end = t.Add(time.Hour)
	}
	return start, end, ok
}

// Watermark implements Source from the layout alone, as a stand-in until
// the consumer's committed watermark is readable: the start of the newest
// hour partition of any dataset. Everything before the hour the consumer
// is writing into is taken as complete; the maximum (not the minimum) over
// datasets is used because a quiet dataset (no IDS alerts for a day) would
// otherwise hold every job back. The consumer's per-partition watermark,
// once readable, replaces this guess.
func (l *Layout) Watermark(ctx context.Context) (time.Time, error) {
	var wm time.Time
	for _, ds := range l.Datasets {
		t, ok, err := l.newestHour(ctx, ds)
		if err != nil {
			return time.Time{}, err
		}
		if ok && t.After(wm) {
			wm = t
		}
	}
	return wm, nil
}

func (l *Layout) newestHour(ctx context.Context, dataset string) (time.Time, bool, error) {
	days, err := l.FS.ReadDir(ctx, dataset)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("source: list %s: %w", dataset, err)
	}
	for i := len(days) - 1; i >= 0; i-- {
		d := days[i]
		if !d.IsDir || !strings.HasPrefix(d.Name, "dt=") {
			continue
		}
		day, err := time.ParseInLocation("2006-01-02", strings.TrimPrefix(d.Name, "dt="), l.loc())
		if err != nil {
			continue
		}
		hours, err := l.FS.ReadDir(ctx, dataset+"/"+d.Name)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("source: list %s/%s: %w", dataset, d.Name, err)
		}
		for j := len(hours) - 1; j >= 0; j-- {
			if start, _, ok := hourBounds(day, hours[j].Name); ok && hours[j].IsDir {
				return start, true, nil
			}
		}
	}
	return time.Time{}, false, nil
}

// Static is a Source with a fixed watermark over another Source's files,
// for runs that must not wait (tests, explicit backfills of old data).
type Static struct {
	Source
	At time.Time
}

// Watermark implements Source.
func (s Static) Watermark(context.Context) (time.Time, error) { return s.At, nil }
