package storage_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// benchFileSize is the size of each file the benchmarks write or read.
const benchFileSize = 64 << 20

// benchDir is where benchmark files go: STORAGE_BENCH_DIR (to measure a
// particular disk) or the benchmark's temporary directory. dd, the local
// backend and hdfstest's DataNode all write there, so the figures compare
// on the same disk.
func benchDir(b *testing.B) string {
	if d := os.Getenv("STORAGE_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "storagebench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// BenchmarkSequential measures sequential write (1 MiB writes, then Close:
// fsync or complete) and read (1 MiB reads) of a 64 MiB file, next to dd
// writing the same amount with conv=fsync to the same disk. bench.sh runs
// it and prints the ratios to dd.
func BenchmarkSequential(b *testing.B) {
	dir := benchDir(b)
	b.Run("dd-write", func(b *testing.B) {
		if _, err := exec.LookPath("dd"); err != nil {
			if os.Getenv("CI") == "true" {
				b.Fatal("dd is missing")
			}
			b.Skip("dd is missing")
		}
		out := filepath.Join(dir, "dd.out")
		b.SetBytes(benchFileSize)
		for b.Loop() {
			cmd := exec.Command("dd", "if=/dev/zero", "of="+out, "bs=1M", fmt.Sprint("count=", benchFileSize>>20), "conv=fsync")
			if msg, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("dd: %v: %s", err, msg)
			}
			os.Remove(out)
		}
	})

	local, err := storage.Open(context.Background(), "file://"+filepath.Join(dir, "local"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	benchBackend(b, "local", local)

	s, err := hdfstest.New(hdfstest.WithBlockSize(128<<20), hdfstest.WithDir(filepath.Join(dir, "hdfs")))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	remote, err := storage.Open(context.Background(), s.URL()+"bench", storage.Options{User: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer remote.Close()
	benchBackend(b, "hdfs", remote)
}

func benchBackend(b *testing.B, name string, fsys storage.FS) {
	ctx := context.Background()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	write := func(b *testing.B, file string) {
		f, err := fsys.Create(ctx, file)
		if err != nil {
			b.Fatal(err)
		}
		for range benchFileSize / len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run(name+"-write", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(benchFileSize)
		i := 0
		for b.Loop() {
			i++
			file := fmt.Sprintf("w%d", i)
			write(b, file)
			b.StopTimer()
			if err := fsys.Remove(ctx, file); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run(name+"-read", func(b *testing.B) {
		write(b, "r")
		defer fsys.Remove(ctx, "r")
		buf := make([]byte, 1<<20)
		b.ReportAllocs()
		b.SetBytes(benchFileSize)
		for b.Loop() {
			r, err := fsys.Open(ctx, "r")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			if err != nil || n != benchFileSize {
				b.Fatalf("read %d bytes, %v", n, err)
			}
			r.Close()
		}
	})
}
