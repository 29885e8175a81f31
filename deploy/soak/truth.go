package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/lambdalog/lambdalog/batch/source"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// keyColumn is the column counted per key: the source address, which is
// also the Kafka record key the generator wrote.
const keyColumn = "source_ip"

// counts is what the soak compares between the generator and the
// platform: events per dataset, per (dataset, source address), per
// (UTC day, dataset), and authentication failures per source address.
type counts struct {
	events       int64
	perDataset   map[string]int64
	perKey       map[string]int64 // dataset + "|" + source_ip
	perDay       map[string]int64 // YYYY-MM-DD + "|" + dataset (quarantine excluded)
	authFailures map[string]int64
}

func newCounts() *counts {
	return &counts{perDataset: map[string]int64{}, perKey: map[string]int64{}, perDay: map[string]int64{}, authFailures: map[string]int64{}}
}

// expected regenerates the run in this process (the generator is
// deterministic: same options, same lines) and parses every line as the
// consumer does, which gives the ground truth per key, not only the
// totals `lambdalog gen` prints.
func expected(ctx context.Context, o gen.Options) (*counts, *gen.Truth, error) {
	o.Pace, o.Progress, o.Logger = false, nil, nil
	g, err := gen.New(o)
	if err != nil {
		return nil, nil, fmt.Errorf("soak: generator: %w", err)
	}
	var parsers [gen.NumDatasets]parse.Parser
	for d := gen.Dataset(0); d < gen.NumDatasets; d++ {
		// The consumer's parse options (cmd/lambdalog/consume.go).
		if parsers[d], err = parse.New(d.Format(), parse.Options{Location: time.UTC}); err != nil {
			return nil, nil, fmt.Errorf("soak: parser %s: %w", d.Format(), err)
		}
	}
	c := newCounts()
	access := map[string]schemas.Accessor{}
	for _, ds := range schemas.Datasets() {
		if a, err := ds.Accessor(keyColumn); err == nil {
			access[ds.Name()] = a
		}
	}
	truth, err := g.Run(ctx, gen.SinkFunc(func(_ context.Context, l *gen.Line) error {
		r, perr := parsers[l.Dataset].Parse(l.Value)
		if perr != nil {
			r = parse.Quarantine(l.Value, l.Dataset.Format(), perr)
		}
		ds := r.Dataset()
		c.events++
		c.perDataset[ds]++
		if a, ok := access[ds]; ok {
			c.perKey[ds+"|"+a.String(r)]++
		}
		if ds != schemas.DatasetQuarantine {
			c.perDay[r.EventTime().UTC().Format(time.DateOnly)+"|"+ds]++
		}
		if au, ok := r.(*schemas.Auth); ok && au.Outcome == schemas.OutcomeFailure {
			c.authFailures[au.SourceIP]++
		}
		return nil
	}))
	if err != nil {
		return nil, nil, fmt.Errorf("soak: regenerate: %w", err)
	}
	return c, truth, nil
}

// stored counts the rows of every dataset in the committed Parquet files
// of the master dataset (the files the commit log names, as the batch
// layer reads them), per dataset and per source address.
func stored(ctx context.Context, fsys storage.FS) (*counts, error) {
	src := &source.Committed{FS: fsys, Location: time.UTC}
	from, to := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCounts()
	var mu sync.Mutex
	for _, ds := range schemas.Datasets() {
		name := ds.Name()
		files, err := src.Files(ctx, name, from, to)
		if err != nil {
			return nil, fmt.Errorf("soak: files of %s: %w", name, err)
		}
		if len(files) == 0 {
			continue
		}
		_, hasKey := ds.Field(keyColumn)
		var cols []string
		if hasKey {
			cols = []string{keyColumn}
		}
		_, err = source.Scan(ctx, fsys, files, source.ScanOptions{Columns: cols, From: from, To: to, Workers: 2}, func(_ int, ch *source.Chunk) error {
			local := map[string]int64{}
			if hasKey {
				col, ok := ch.Cols[0].(*array.String)
				if !ok {
					return fmt.Errorf("soak: %s.%s is %T, want a string column", name, keyColumn, ch.Cols[0])
				}
				for i := 0; i < ch.Rows; i++ {
					local[name+"|"+col.Value(i)]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			c.events += int64(ch.Rows)
			c.perDataset[name] += int64(ch.Rows)
			for k, v := range local {
				c.perKey[k] += v
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("soak: scan %s: %w", name, err)
		}
	}
	return c, nil
}

// diffCounts compares two maps and returns how many keys differ and up to
// max examples.
func diffCounts(want, got map[string]int64, maxEx int) (int, []string) {
	n := 0
	var ex []string
	seen := map[string]bool{}
	for k, w := range want {
		seen[k] = true
		if g := got[k]; g != w {
			n++
			if len(ex) < maxEx {
				ex = append(ex, fmt.Sprintf("%s: got %d want %d", k, g, w))
			}
		}
	}
	for k, g := range got {
		if !seen[k] && g != 0 {
			n++
			if len(ex) < maxEx {
				ex = append(ex, fmt.Sprintf("%s: got %d want 0", k, g))
			}
		}
	}
	return n, ex
}
