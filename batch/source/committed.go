package source

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// Committed is the Source over the consumer's commit log: the files of a
// dataset are exactly those published entries name (a manifest, so a
// directory listing is never trusted), and the watermark is the one the
// consumer committed. A dataset with no commit log at all (files copied in
// by hand, older layouts) falls back to Layout.
type Committed struct {
	FS       storage.FS
	Location *time.Location
	// Fallback serves datasets written without a commit log.
	Fallback Source
}

func (c *Committed) state(ctx context.Context) (consumer.State, bool, error) {
	st, err := consumer.ReadState(ctx, c.FS)
	if err != nil {
		return st, false, fmt.Errorf("source: %w", err)
	}
	return st, len(st.Partitions) > 0, nil
}

// Files implements Source.
func (c *Committed) Files(ctx context.Context, dataset string, from, to time.Time) ([]File, error) {
	st, ok, err := c.state(ctx)
	if err != nil {
		return nil, err
	}
	if !ok && c.Fallback != nil {
		return c.Fallback.Files(ctx, dataset, from, to)
	}
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	var out []File
	for _, f := range st.Files(dataset) {
		// <dataset>/dt=YYYY-MM-DD/hour=HH/<name>
		parts := strings.Split(f.Final, "/")
		if len(parts) != 4 || !strings.HasPrefix(parts[1], "dt=") {
			return nil, fmt.Errorf("source: committed file %s is not in a dt=/hour= partition", f.Final)
		}
		day, err := time.ParseInLocation("2006-01-02", strings.TrimPrefix(parts[1], "dt="), loc)
		if err != nil {
			return nil, fmt.Errorf("source: committed file %s: %w", f.Final, err)
		}
		start, end, ok := hourBounds(day, parts[2])
		if !ok || !start.Before(to) || !end.After(from) {
			continue
		}
		out = append(out, File{Dataset: dataset, Name: path.Clean(f.Final), Size: f.Bytes, PartStart: start, PartEnd: end})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Watermark implements Source: the minimum committed watermark over every
// partition in the commit state, claimed ones included. A partition whose
// owner has claimed it but not committed yet holds the watermark at zero:
// records may be in Kafka that no file holds yet (counting only partitions
// with commits let a day's first hours load while other partitions still
// held their records: the dev platform's seeded history showed it). A
// partition that never receives a record is released by the consumer's
// idle heartbeat, as is one that went quiet (docs/exactly-once.md, idle
// partitions).
func (c *Committed) Watermark(ctx context.Context) (time.Time, error) {
	st, ok, err := c.state(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !ok && c.Fallback != nil {
		return c.Fallback.Watermark(ctx)
	}
	var wm time.Time
	first := true
	for _, p := range st.Partitions {
		if first || p.Watermark.Before(wm) {
			wm, first = p.Watermark, false
		}
	}
	return wm, nil
}
