package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/internal/storage/storagetest"
)

// lossyProxy forwards NameNode connections and, once armed with a method
// name, lets the next request naming that method through but cuts the
// connection instead of returning its answer: the call runs on the
// NameNode and the client never hears of it (a lost answer, the
// ambiguous failure retries must handle).
type lossyProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	trigger []byte
	cut     atomic.Int32
}

func startLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

// arm makes the next request for method lose its answer.
func (p *lossyProxy) arm(method string) {
	p.mu.Lock()
	p.trigger = []byte(method)
	p.mu.Unlock()
}

func (p *lossyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *lossyProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var drop atomic.Bool
	closeBoth := func() { client.Close(); server.Close() }
	go func() { // client -> server
		defer closeBoth()
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if p.trigger != nil && bytes.Contains(buf[:n], p.trigger) {
					p.trigger = nil
					drop.Store(true) // before forwarding: the answer follows it
				}
				p.mu.Unlock()
				if _, err := server.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // server -> client
		defer closeBoth()
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				if drop.Load() {
					p.cut.Add(1)
					return
				}
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

func TestHDFSLostAnswers(t *testing.T) {
	ctx := context.Background()
	s := hdfstest.Start(t)
	p := startLossyProxy(t, s.NameNodeAddr())
	fsys, err := storage.Open(ctx, "hdfs://"+p.ln.Addr().String()+"/lambdalog", hdfsOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()

	// create ran, its answer was lost: the retry finds the name taken.
	// That is reported as fs.ErrExist together with ErrUncertain, never as
	// a clean success and never as a plain "someone else has it".
	p.arm("create")
	_, err = fsys.Create(ctx, "x1")
	if !errors.Is(err, fs.ErrExist) || !errors.Is(err, storage.ErrUncertain) || p.cut.Load() != 1 {
		t.Fatalf("Create with its answer lost: %v (cuts %d); want fs.ErrExist and ErrUncertain", err, p.cut.Load())
	}
	if st, ok := s.File("/lambdalog/x1"); !ok || !st.UnderConstruction {
		t.Fatalf("the lost create did run: %+v %v", st, ok)
	}

	// rename2 ran, its answer was lost: the retry sees the source gone and
	// the target there, which only the lost attempt can have done.
	storagetest.WriteFile(t, fsys, "tmp1", []byte("batch 1"))
	p.arm("rename2")
	if err := fsys.Rename(ctx, "tmp1", "final1"); err != nil {
		t.Fatalf("Rename with its answer lost: %v", err)
	}
	if p.cut.Load() != 2 {
		t.Fatalf("proxy cut %d answers, want 2", p.cut.Load())
	}
	if got := storagetest.ReadFile(t, fsys, "final1"); string(got) != "batch 1" {
		t.Fatalf("final1 = %q", got)
	}
	// Without a lost answer, a missing source is still an error.
	if err := fsys.Rename(ctx, "tmp1", "final2"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Rename of a missing source: %v", err)
	}

	// delete ran, its answer was lost: the retry finds nothing, which is
	// the success the caller asked for.
	p.arm("delete")
	if err := fsys.Remove(ctx, "final1"); err != nil {
		t.Fatalf("Remove with its answer lost: %v", err)
	}
	if p.cut.Load() != 3 {
		t.Fatalf("proxy cut %d answers, want 3", p.cut.Load())
	}
	if _, ok := s.File("/lambdalog/final1"); ok {
		t.Fatal("final1 still exists")
	}
}
