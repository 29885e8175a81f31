// Package lease gives batch workers exclusive, expiring claims on units of
// work, kept in the master dataset's storage (local disk or HDFS) beside
// the data they cover.
//
// A lease on a name is a directory of generations: _batch/leases/<name>/
// 0000000001, 0000000002, ... Each generation file holds the holder's
// worker id and the lease's expiry. The newest generation is the lease.
// Taking a lease (a free one, an expired one, or renewing one's own) is
// creating the next generation with storage.FS.Create, which is atomic and
// exclusive on every backend (O_EXCL locally, the NameNode's create on
// HDFS): of N workers racing for the same generation exactly one wins, and
// the others see fs.ErrExist and back off. Nothing is ever overwritten, so
// there is no read-modify-write race, and no clock is compared across
// machines except against an expiry (skew must stay well below the TTL).
//
// Why storage and not a ClickHouse table: ClickHouse has no conditional
// insert, so a claim there is "insert, then read back and let the earliest
// claim win", which on a ReplicatedMergeTree read through a Distributed
// table may read a replica that has not yet seen a competing claim, and two
// workers can each believe they won. The dataset's create-if-absent gives
// mutual exclusion outright. The batch jobs are idempotent in any case, so
// a lost race (or a worker that outlives its lease while paused) costs a
// repeated run, never wrong data.
package lease

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

	"github.com/lambdalog/lambdalog/internal/storage"
)

// Dir is where leases live in the dataset.
const Dir = "_batch/leases"

// genDigits is the width of a generation's file name, so names sort.
const genDigits = 10

// Store hands out leases kept in a storage.FS.
type Store struct {
	fs  storage.FS
	ttl time.Duration
	now func() time.Time
}

// Options configure a Store.
type Options struct {
	// TTL is how long a lease lasts without renewal (required).
	TTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// New returns a Store on fsys.
func New(fsys storage.FS, o Options) (*Store, error) {
	if o.TTL <= 0 {
		return nil, errors.New("lease: TTL must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{fs: fsys, ttl: o.TTL, now: o.Now}, nil
}

// TTL is the lease duration.
func (s *Store) TTL() time.Duration { return s.ttl }

// Holder describes the newest generation of a lease.
type Holder struct {
	Gen     int
	Worker  string
	Expires time.Time
}

// Acquire takes the lease name for worker until now+TTL: when nobody holds
// it, when its holder's lease has expired, or when worker holds it already
// (a renewal). It reports false when another worker holds it, or won the
// race for the next generation.
func (s *Store) Acquire(ctx context.Context, name, worker string) (bool, error) {
	return s.write(ctx, name, worker, s.now().Add(s.ttl), false)
}

// Release gives the lease up if worker holds it, so another worker may
// take the unit at once (after a failed run) instead of after the TTL.
func (s *Store) Release(ctx context.Context, name, worker string) error {
	_, err := s.write(ctx, name, worker, s.now(), true)
	return err
}

func (s *Store) write(ctx context.Context, name, worker string, expires time.Time, release bool) (bool, error) {
	if strings.ContainsAny(worker, "\n") || worker == "" {
		return false, fmt.Errorf("lease: bad worker id %q", worker)
	}
	dir := path.Join(Dir, name)
	h, err := s.Holder(ctx, name)
	if err != nil {
		return false, err
	}
	mine := h.Worker == worker
	if h.Gen > 0 && !mine && s.now().Before(h.Expires) {
		return false, nil
	}
	if release && (!mine || !s.now().Before(h.Expires)) {
		return false, nil
	}
	if err := s.fs.MkdirAll(ctx, dir); err != nil {
		return false, fmt.Errorf("lease: %s: %w", dir, err)
	}
	gen := h.Gen + 1
	file := path.Join(dir, fmt.Sprintf("%0*d", genDigits, gen))
	f, err := s.fs.Create(ctx, file)
	if errors.Is(err, fs.ErrExist) {
		// Another worker took this generation first; or our own attempt
		// whose answer was lost did (storage.ErrUncertain): then the
		// file names us.
		if errors.Is(err, storage.ErrUncertain) {
			if h2, herr := s.Holder(ctx, name); herr == nil && h2.Gen == gen && h2.Worker == worker {
				return true, nil
			}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease: create %s: %w", file, err)
	}
	if _, err := fmt.Fprintf(f, "%s\n%d\n", worker, expires.UnixNano()); err != nil {
		f.Abort()
		return false, fmt.Errorf("lease: write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		// The name is removed on a failed Close: the generation is free
		// again, and this claim did not happen.
		return false, fmt.Errorf("lease: close %s: %w", file, err)
	}
	// Older generations are history; remove them (best effort: a left
	// file only costs a directory entry).
	if gen > 2 {
		_ = s.fs.Remove(ctx, path.Join(dir, fmt.Sprintf("%0*d", genDigits, gen-2)))
	}
	return true, nil
}

// Holder returns the newest generation of the lease (Gen 0: never taken).
// A generation whose content cannot be read yet (being written, or its
// writer died before Close) counts as held by nobody known until its
// modification time plus the TTL.
func (s *Store) Holder(ctx context.Context, name string) (Holder, error) {
	dir := path.Join(Dir, name)
	entries, err := s.fs.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Holder{}, nil
	}
	if err != nil {
		return Holder{}, fmt.Errorf("lease: list %s: %w", dir, err)
	}
	var gens []int
	mod := map[int]time.Time{}
	for _, e := range entries {
		if g, err := strconv.Atoi(e.Name); err == nil && len(e.Name) == genDigits && !e.IsDir {
			gens = append(gens, g)
			mod[g] = e.ModTime
		}
	}
	if len(gens) == 0 {
		return Holder{}, nil
	}
	sort.Ints(gens)
	g := gens[len(gens)-1]
	h := Holder{Gen: g, Expires: mod[g].Add(s.ttl)}
	file := path.Join(dir, fmt.Sprintf("%0*d", genDigits, g))
	r, err := s.fs.Open(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed under us: only older generations are removed, so a
		// newer one exists; report it as held.
		return h, nil
	}
	if err != nil {
		return Holder{}, fmt.Errorf("lease: open %s: %w", file, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, 4096))
	r.Close()
	if err != nil {
		return h, nil
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 3 {
		return h, nil
	}
	ns, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return h, nil
	}
	h.Worker, h.Expires = lines[0], time.Unix(0, ns)
	return h, nil
}
