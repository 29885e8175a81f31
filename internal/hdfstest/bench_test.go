package hdfstest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

const benchFileSize = 64 << 20

// BenchmarkSequentialWrite measures a client writing a 64 MiB file (one
// 64 MiB block) through this server on loopback; MB/s is the figure.
func BenchmarkSequentialWrite(b *testing.B) {
	s := Start(b, WithBlockSize(64<<20))
	c := newClient(b, s, 30*time.Second)
	data := randomBytes(9, 1<<20)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("/bench-%d", i)
		w, err := c.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchFileSize; off += len(data) {
			if _, err := w.Write(data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Remove(name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkSequentialRead measures a client reading a 64 MiB file back.
func BenchmarkSequentialRead(b *testing.B) {
	s := Start(b, WithBlockSize(64<<20))
	c := newClient(b, s, 30*time.Second)
	w, err := c.Create("/bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(w, io.LimitReader(&streamReader{rng: rand.NewChaCha8(seedOf(10)), left: benchFileSize}, benchFileSize)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for b.Loop() {
		f, err := c.Open("/bench")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, f, buf)
		if err != nil || n != benchFileSize {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		f.Close()
	}
}
