package source

import (
	"context"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/storage"
)

func TestLayoutFilesAndWatermark(t *testing.T) {
	ctx := context.Background()
	fsys, err := storage.Open(ctx, "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string) {
		t.Helper()
		if err := fsys.MkdirAll(ctx, path.Dir(name)); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("x"))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"00", "01", "02", "03", "23"} {
		put("auth/dt=2026-10-25/hour=" + h + "/x.parquet")
	}
	put("auth/dt=2026-10-25/hour=05/_x.parquet") // in progress: hidden
	put("auth/dt=2026-10-24/hour=23/x.parquet")
	put("web/dt=2026-10-25/hour=01/x.parquet")
	l := &Layout{FS: fsys, Location: loc, Datasets: []string{"auth", "web", "ids"}}

	// 25 Oct in Berlin has 25 hours: hour=02 is the repeated hour and spans
	// two absolute hours.
	from := time.Date(2026, 10, 25, 0, 0, 0, 0, loc)
	to := time.Date(2026, 10, 26, 0, 0, 0, 0, loc)
	files, err := l.Files(ctx, "auth", from, to)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %s %s", f.Name[len("auth/dt=2026-10-25/"):], f.PartStart.UTC().Format("15:04"), f.PartEnd.Sub(f.PartStart)))
	}
	want := "[hour=00/x.parquet 22:00 1h0m0s hour=01/x.parquet 23:00 1h0m0s hour=02/x.parquet 00:00 2h0m0s hour=03/x.parquet 02:00 1h0m0s hour=23/x.parquet 22:00 1h0m0s]"
	if fmt.Sprint(got) != want {
		t.Fatalf("files\n got %v\nwant %s", got, want)
	}
	// Narrow interval: only the overlapping partitions.
	files, _ = l.Files(ctx, "auth", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC))
	if len(files) != 1 || files[0].Name != "auth/dt=2026-10-25/hour=02/x.parquet" {
		t.Fatalf("narrow: %v", files)
	}
	// Watermark: the newest hour partition's start over all datasets; web
	// (quiet since 01:00) and ids (no data) do not hold it back.
	wm, err := l.Watermark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 10, 25, 23, 0, 0, 0, loc); !wm.Equal(want) {
		t.Fatalf("watermark %s, want %s", wm, want)
	}
}
