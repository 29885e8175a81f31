package lease

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func store(t *testing.T) (*Store, *clock, storage.FS) {
	t.Helper()
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	c := &clock{t: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(fsys, Options{TTL: time.Minute, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, fsys
}

// TestExactlyOneWinner races 16 workers for one lease, many times: each
// round has exactly one winner, on local disk and on HDFS (the in-process
// NameNode's exclusive create).
func TestExactlyOneWinner(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		s, _, _ := store(t)
		race(t, s, 20)
	})
	t.Run("hdfs", func(t *testing.T) {
		srv := hdfstest.Start(t)
		fsys, err := storage.Open(context.Background(), srv.URL()+"data", storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fsys.Close() })
		if err := fsys.MkdirAll(context.Background(), "."); err != nil {
			t.Fatal(err)
		}
		s, err := New(fsys, Options{TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		race(t, s, 5)
	})
}

func race(t *testing.T, s *Store, rounds int) {
	ctx := context.Background()
	for round := 0; round < rounds; round++ {
		name := fmt.Sprintf("reports/2026050%d", round%9+1) + fmt.Sprint(round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.Acquire(ctx, name, fmt.Sprintf("w%d", w))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d winners", round, wins.Load())
		}
	}
}

func TestExpiryRenewalRelease(t *testing.T) {
	s, c, fsys := store(t)
	ctx := context.Background()
	const name = "load-events/20260501"
	mustAcquire := func(worker string, want bool) {
		t.Helper()
		ok, err := s.Acquire(ctx, name, worker)
		if err != nil || ok != want {
			t.Fatalf("%s acquire = %v, %v; want %v", worker, ok, err, want)
		}
	}
	mustAcquire("a", true)
	mustAcquire("b", false) // held
	c.add(50 * time.Second)
	mustAcquire("a", true) // renewal: now expires at 1m50s
	c.add(50 * time.Second)
	mustAcquire("b", false) // still held thanks to the renewal
	c.add(11 * time.Second)
	mustAcquire("b", true) // a's lease expired: taken over
	if h, err := s.Holder(ctx, name); err != nil || h.Worker != "b" || h.Gen != 3 {
		t.Fatalf("holder %+v, %v", h, err)
	}
	mustAcquire("a", false) // a lost it for good
	if err := s.Release(ctx, name, "a"); err != nil {
		t.Fatal(err)
	}
	mustAcquire("c", false) // a's release of b's lease does nothing
	if err := s.Release(ctx, name, "b"); err != nil {
		t.Fatal(err)
	}
	mustAcquire("c", true) // released: free at once
	// Old generations are removed; the newest two stay.
	entries, err := fsys.ReadDir(ctx, Dir+"/"+name)
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d generation files left (%v), want 2", len(entries), err)
	}
}

// TestIncompleteGeneration: a generation whose writer died before writing
// (an empty reserved file) holds the lease until its mtime plus the TTL.
func TestIncompleteGeneration(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fsys.MkdirAll(ctx, Dir+"/x"); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create(ctx, Dir+"/x/0000000001")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, _ := New(fsys, Options{TTL: time.Minute, Now: func() time.Time { return now }})
	if ok, err := s.Acquire(ctx, "x", "a"); err != nil || ok {
		t.Fatalf("acquire over a fresh incomplete generation = %v, %v", ok, err)
	}
	now = now.Add(2 * time.Minute)
	if ok, err := s.Acquire(ctx, "x", "a"); err != nil || !ok {
		t.Fatalf("acquire after its TTL = %v, %v", ok, err)
	}
}
