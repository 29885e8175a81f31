package hdfstest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// streamReader yields n deterministic pseudo-random bytes without holding
// them, so a 300 MB round trip needs only buffers.
type streamReader struct {
	rng  *rand.ChaCha8
	left int64
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	r.rng.Read(p)
	r.left -= int64(len(p))
	return len(p), nil
}

func TestLargeFileRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MB round trip skipped in -short mode")
	}
	const (
		size = 300_000_000
		bs   = 64 << 20 // five 64 MiB blocks
	)
	s := Start(t, WithBlockSize(bs))
	c := newClient(t, s, 30*time.Second)

	w, err := c.Create("/large.bin")
	if err != nil {
		t.Fatal(err)
	}
	wantHash := sha256.New()
	src := io.TeeReader(&streamReader{rng: rand.NewChaCha8(seedOf(300)), left: size}, wantHash)
	if n, err := io.CopyBuffer(w, src, make([]byte, 1<<20)); err != nil || n != size {
		t.Fatalf("write: %d bytes, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	st, _ := s.File("/large.bin")
	if st.Length != size || len(st.BlockLengths) != 5 || st.BlockLengths[4] != size-4*bs {
		t.Fatalf("server state = length %d blocks %v; want %d in 5 blocks", st.Length, st.BlockLengths, size)
	}

	f, err := c.Open("/large.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gotHash := sha256.New()
	if n, err := io.CopyBuffer(gotHash, f, make([]byte, 1<<20)); err != nil || n != size {
		t.Fatalf("read: %d bytes, %v", n, err)
	}
	if !bytes.Equal(gotHash.Sum(nil), wantHash.Sum(nil)) {
		t.Fatal("the 300 MB file read back differs from what was written (sha256 mismatch)")
	}
	// A read across the first block boundary, compared with the generator.
	ref := make([]byte, bs+4096)
	(&streamReader{rng: rand.NewChaCha8(seedOf(300)), left: int64(len(ref))}).Read(ref)
	buf := make([]byte, 8192)
	if _, err := f.ReadAt(buf, bs-4096); err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "read across the block boundary", buf, ref[bs-4096:])
}
