package source

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/consumer"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

// TestCommittedSeesOnlyPublishedFiles checks the batch layer reads the
// consumer's manifest: a file copied into a partition by hand is not data,
// and the watermark is the consumer's.
func TestCommittedSeesOnlyPublishedFiles(t *testing.T) {
	ctx := context.Background()
	fsys, err := storage.Open(ctx, "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	log := consumer.NewLog(fsys, "auth", 0)
	claim, err := log.Claim(ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	w := consumer.NewPartitionWriter(fsys, log, claim, consumer.WriterOptions{WatermarkLag: time.Minute})
	at := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	for o := int64(0); o < 10; o++ {
		r := &schemas.Auth{User: "root", SourceIP: "198.18.0.9", Outcome: schemas.OutcomeFailure}
		r.Base.Timestamp = at.Add(time.Duration(o) * time.Minute)
		if err := w.Add(r, o, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A stray file in the same partition directory.
	f, err := fsys.Create(ctx, "auth/dt=2026-11-23/hour=10/stray.parquet")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("not data"))
	f.Close()

	src := &Committed{FS: fsys, Fallback: &Layout{FS: fsys, Datasets: []string{"auth"}}}
	files, err := src.Files(ctx, "auth", at.Truncate(time.Hour), at.Truncate(time.Hour).Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != "auth/dt=2026-11-23/hour=10/part-auth-0-00000000000000000000.parquet" {
		t.Fatalf("files = %+v, want only the committed one", files)
	}
	wm, err := src.Watermark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Add(9 * time.Minute).Add(-time.Minute); !wm.Equal(want) {
		t.Errorf("watermark = %v, want %v (newest event minus the lag)", wm, want)
	}
}
