package consumer

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// TestMemoryBudgetRollsEarly: with roll settings no partition reaches
// (records, bytes, age), a memory budget below what three partitions
// buffer makes the consumer commit files while it runs, largest partition
// first; a clean stop commits the rest, and every record is in the dataset
// exactly once.
func TestMemoryBudgetRollsEarly(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 3})
		cl := kafkatest.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		// Each partition gets more than a chunk, so every file's Parquet
		// writer exists (about 30 MiB each by MemBytes): three of them
		// pass a 64 MiB budget.
		const perPartition = chunkRows + 8000
		var recs []*kgo.Record
		for i := 0; i < 3*perPartition; i++ {
			recs = append(recs, &kgo.Record{Topic: "auth", Partition: int32(i % 3), Value: []byte(sshdLine(i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		const budget = 64 << 20
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
			RollRecords: 1 << 40, RollBytes: 1 << 40, RollInterval: time.Hour, MemoryBudget: budget})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		for c.RecordsCommitted() == 0 {
			if ctx.Err() != nil {
				t.Fatal("nothing committed: the budget never rolled a file")
			}
			time.Sleep(10 * time.Millisecond)
		}
		early, byBudget := c.BudgetRolls(), c.RecordsCommitted()
		rcancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		if early == 0 {
			t.Fatal("records were committed, but not by the budget")
		}
		t.Logf("%d early commits (%d records) before the stop", early, byBudget)
		// A restart with an ordinary roll commits whatever the first run
		// had not fetched yet.
		c, err = New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
			RollInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel = context.WithCancel(ctx)
		go func() { done <- c.Run(rctx) }()
		waitCommitted(ctx, t, fsys, int64(len(recs)))
		rcancel()
		if err := <-done; err != nil {
			t.Fatalf("restart: %v", err)
		}
		verifyRows(ctx, t, fsys, int64(len(recs)))
	})
}

// TestMemBytesTracksHeap: MemBytes, the estimate the budget sums, stays
// within a third of the live heap that writers buffering sshd records
// actually hold, before and after their files' Parquet writers exist and
// as the row group grows.
func TestMemBytesTracksHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("parses 400,000 lines")
	}
	ctx := context.Background()
	fsys, err := storage.Open(ctx, "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	p, err := parse.New("sshd", parse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const files = 2
	// The first round warms what is process-wide, not per file: the
	// shared zstd encoder's states (one per concurrent compression, tens
	// of MiB), allocated on first use.
	for round, n := range []int{3 * chunkRows, chunkRows / 2, 3 * chunkRows, 200_000} {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		var ws []*PartitionWriter
		for part := int32(0); part < files; part++ {
			l := NewLog(fsys, "auth", part)
			claim, err := l.Claim(ctx, newEpoch())
			if err != nil {
				t.Fatal(err)
			}
			w := NewPartitionWriter(fsys, l, claim, WriterOptions{})
			for i := 0; i < n; i++ {
				r, err := p.Parse([]byte(sshdLine(i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Add(r, w.Next()+int64(i), 120); err != nil {
					t.Fatal(err)
				}
			}
			ws = append(ws, w)
		}
		var est int64
		for _, w := range ws {
			for _, g := range w.groups { // the encoders finish what was sent
				for g.enc != nil && g.enc.inflight.Load() > 0 {
					time.Sleep(time.Millisecond)
				}
			}
			est += w.MemBytes()
		}
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		live := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
		t.Logf("%d records per file: live heap %.1f MiB, MemBytes %.1f MiB", n, float64(live)/(1<<20), float64(est)/(1<<20))
		if round > 0 && (est < live*2/3 || est > live*4/3) {
			t.Errorf("%d records per file: MemBytes %d is not within a third of the live heap %d", n, est, live)
		}
		for _, w := range ws {
			w.discard()
		}
	}
}
