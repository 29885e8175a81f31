package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/internal/storage/storagetest"
)

// testIOTimeout is short so hang tests are quick; the bounds below are
// derived from it.
const testIOTimeout = 700 * time.Millisecond

func hdfsOptions() storage.Options {
	return storage.Options{
		User:           "lambdalog",
		ConnectTimeout: 2 * time.Second,
		IOTimeout:      testIOTimeout,
		Retry:          storage.RetryPolicy{Attempts: 3, Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
}

// startHDFS starts an in-process HDFS with 1 MiB blocks, so the suite's
// 3 MiB file spans four blocks, and opens /lambdalog on it.
func startHDFS(t *testing.T) (*hdfstest.Server, storage.FS) {
	t.Helper()
	s := hdfstest.Start(t, hdfstest.WithBlockSize(1<<20))
	fsys, err := storage.Open(context.Background(), s.URL()+"lambdalog", hdfsOptions())
	if err != nil {
		t.Fatalf("open %s: %v", s.URL(), err)
	}
	t.Cleanup(func() { fsys.Close() })
	return s, fsys
}

func TestHDFSConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.FS {
		_, fsys := startHDFS(t)
		return fsys
	})
}

func TestHDFSFilesLandUnderRoot(t *testing.T) {
	s, fsys := startHDFS(t)
	storagetest.WriteFile(t, fsys, "x", bytes.Repeat([]byte("z"), 3<<20))
	st, ok := s.File("/lambdalog/x")
	if !ok || st.UnderConstruction || st.Length != 3<<20 || len(st.BlockLengths) != 3 {
		t.Fatalf("NameNode sees /lambdalog/x as %+v (found %v); want complete, 3 MiB in 3 blocks", st, ok)
	}
}

// within fails the test if fn takes longer than limit: no call may hang
// past its timeouts.
func within(t *testing.T, limit time.Duration, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if d := time.Since(start); d > limit {
		t.Fatalf("%s took %v, want under %v", what, d, limit)
	}
}

func TestHDFSRetriesSingleTransientFailure(t *testing.T) {
	ctx := context.Background()
	for _, method := range []string{"getFileInfo", "getListing", "mkdirs", "create", "addBlock", "rename2", "delete", "getBlockLocations"} {
		t.Run(method, func(t *testing.T) {
			s, fsys := startHDFS(t)
			storagetest.WriteFile(t, fsys, "old", []byte("before"))
			if err := fsys.MkdirAll(ctx, "d"); err != nil {
				t.Fatal(err)
			}
			f := s.FailCall(method, 1, hdfstest.ExcRetriable)
			var data []byte
			switch method {
			case "getFileInfo":
				if e, err := fsys.Stat(ctx, "old"); err != nil || e.Size != 6 {
					t.Fatalf("Stat = %+v, %v", e, err)
				}
			case "getListing":
				if es, err := fsys.ReadDir(ctx, "."); err != nil || len(es) != 2 {
					t.Fatalf("ReadDir = %+v, %v", es, err)
				}
			case "mkdirs":
				if err := fsys.MkdirAll(ctx, "a/b/c"); err != nil {
					t.Fatal(err)
				}
			case "create":
				// The create RPC failed before running: retried, not uncertain.
				data = []byte("created on the second try")
				storagetest.WriteFile(t, fsys, "d/new", data)
				storagetest.ReadFile(t, fsys, "d/new")
			case "addBlock":
				// A Write's first block: the File reports it, retryable,
				// and the caller writes again.
				fl, err := fsys.Create(ctx, "d/new")
				if err != nil {
					t.Fatal(err)
				}
				_, err = fl.Write([]byte("rows"))
				if !storage.IsRetryable(err) {
					t.Fatalf("Write with addBlock failing: %v, want retryable", err)
				}
				if err := fl.Close(); err == nil {
					t.Fatal("Close after a failed Write succeeded")
				}
				if _, err := fsys.Stat(ctx, "d/new"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("failed file still visible: %v", err)
				}
				storagetest.WriteFile(t, fsys, "d/new", []byte("rows"))
			case "rename2":
				if err := fsys.Rename(ctx, "old", "d/new"); err != nil {
					t.Fatal(err)
				}
				if got := storagetest.ReadFile(t, fsys, "d/new"); string(got) != "before" {
					t.Fatalf("renamed file holds %q", got)
				}
			case "delete":
				if err := fsys.Remove(ctx, "old"); err != nil {
					t.Fatal(err)
				}
				if _, err := fsys.Stat(ctx, "old"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Stat after Remove: %v", err)
				}
			case "getBlockLocations":
				if got := storagetest.ReadFile(t, fsys, "old"); string(got) != "before" {
					t.Fatalf("read %q", got)
				}
			}
			if f.Fired() != 1 {
				t.Fatalf("fault fired %d times, want 1", f.Fired())
			}
		})
	}
}

func TestHDFSPermanentErrorsAreNotRetried(t *testing.T) {
	s, fsys := startHDFS(t)
	f := s.FailCall("getFileInfo", 0, hdfstest.ExcIO)
	_, err := fsys.Stat(context.Background(), "x")
	if err == nil || storage.IsRetryable(err) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat with an IOException: %v; want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "storage: stat x") || !strings.Contains(err.Error(), "java.io.IOException") {
		t.Fatalf("error lacks context or cause: %v", err)
	}
	if f.Fired() != 1 {
		t.Fatalf("a permanent error was tried %d times", f.Fired())
	}
}

func TestHDFSPersistentTransientFailure(t *testing.T) {
	for _, exc := range []string{hdfstest.ExcRetriable,
		"org.apache.hadoop.hdfs.server.namenode.SafeModeException"} {
		s, fsys := startHDFS(t)
		f := s.FailCall("mkdirs", 0, exc)
		err := fsys.MkdirAll(context.Background(), "a")
		if !storage.IsRetryable(err) || !strings.Contains(err.Error(), "storage: mkdirall a") {
			t.Fatalf("%s on every call: %v, want a retryable error with context", exc, err)
		}
		if f.Fired() != 3 {
			t.Fatalf("%s: tried %d times, want Retry.Attempts = 3", exc, f.Fired())
		}
	}
}

func TestHDFSHungNameNodeCall(t *testing.T) {
	ctx := context.Background()
	s, fsys := startHDFS(t)
	storagetest.WriteFile(t, fsys, "f", []byte("x"))

	// One hung call: the timeout cuts it, the retry on a new connection
	// succeeds.
	h := s.HangCall("getFileInfo", 1)
	within(t, 2*testIOTimeout+time.Second, "Stat through one hang", func() {
		if e, err := fsys.Stat(ctx, "f"); err != nil || e.Size != 1 {
			t.Fatalf("Stat = %+v, %v", e, err)
		}
	})
	h.Remove()

	// Every call hangs: a retryable error after Attempts timeouts.
	h = s.HangCall("getFileInfo", 0)
	within(t, 3*testIOTimeout+2*time.Second, "Stat through hangs", func() {
		_, err := fsys.Stat(ctx, "f")
		if !storage.IsRetryable(err) {
			t.Fatalf("Stat with every call hanging: %v, want retryable", err)
		}
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Stat error %v is not the timeout", err)
		}
	})
	// The caller's deadline wins over the retries.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	within(t, testIOTimeout+time.Second, "Stat with a 200ms deadline", func() {
		if _, err := fsys.Stat(cctx, "f"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stat past its deadline: %v", err)
		}
	})
	h.Remove()
	if _, err := fsys.Stat(ctx, "f"); err != nil {
		t.Fatalf("Stat after the hangs ended: %v", err)
	}
}

// checkGone asserts that a failed write left nothing at name, neither in
// the client's view nor in the NameNode's.
func checkGone(t *testing.T, s *hdfstest.Server, fsys storage.FS, name string) {
	t.Helper()
	if _, err := fsys.Stat(context.Background(), name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the failed write, Stat(%s) = %v; want not exist", name, err)
	}
	if st, ok := s.File("/lambdalog/" + name); ok {
		t.Fatalf("NameNode still has %s: %+v", name, st)
	}
}

func TestHDFSHungComplete(t *testing.T) {
	s, fsys := startHDFS(t)
	s.HangCall("complete", 1)
	f, err := fsys.Create(context.Background(), "part")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(storagetest.RandomBytes(1, 200_000)); err != nil {
		t.Fatal(err)
	}
	within(t, 2*testIOTimeout+2*time.Second, "Close with complete hanging", func() {
		if err := f.Close(); !storage.IsRetryable(err) {
			t.Fatalf("Close with complete hanging: %v, want retryable", err)
		}
	})
	checkGone(t, s, fsys, "part")
}

func TestHDFSDroppedWritePipeline(t *testing.T) {
	s, fsys := startHDFS(t)
	s.DropWrite(1, 100<<10)
	f, err := fsys.Create(context.Background(), "part")
	if err != nil {
		t.Fatal(err)
	}
	var werr, cerr error
	within(t, 2*testIOTimeout+2*time.Second, "write through a dropped pipeline", func() {
		_, werr = f.Write(storagetest.RandomBytes(2, 900<<10))
		cerr = f.Close()
	})
	if werr == nil && cerr == nil {
		t.Fatal("write through a dropped DataNode connection succeeded")
	}
	if err := errors.Join(werr, cerr); !storage.IsRetryable(err) {
		t.Fatalf("dropped pipeline: %v, want retryable", err)
	}
	checkGone(t, s, fsys, "part")
	// The caller writes again.
	data := storagetest.RandomBytes(2, 900<<10)
	storagetest.WriteFile(t, fsys, "part", data)
	if got := storagetest.ReadFile(t, fsys, "part"); !bytes.Equal(got, data) {
		t.Fatal("rewritten file differs")
	}
}

func TestHDFSDroppedReadIsRetried(t *testing.T) {
	s, fsys := startHDFS(t)
	data := storagetest.RandomBytes(3, 2<<20)
	storagetest.WriteFile(t, fsys, "f", data)
	d := s.DropRead(1, 100_000)
	if got := storagetest.ReadFile(t, fsys, "f"); !bytes.Equal(got, data) {
		t.Fatal("read through one dropped DataNode connection returned wrong bytes")
	}
	if d.Fired() != 1 {
		t.Fatalf("drop fired %d times", d.Fired())
	}
	// Every read dropped: a retryable error, bounded in time.
	s.DropRead(0, 1000)
	r, err := fsys.Open(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	within(t, 3*testIOTimeout+2*time.Second, "ReadAt with every read dropped", func() {
		if _, err := r.ReadAt(make([]byte, 50_000), 10); !storage.IsRetryable(err) {
			t.Fatalf("ReadAt with every read dropped: %v, want retryable", err)
		}
	})
}

func TestHDFSCompleteRefused(t *testing.T) {
	s, fsys := startHDFS(t)
	// Refused once (replication pending): Close retries complete.
	s.RefuseComplete(1)
	storagetest.WriteFile(t, fsys, "a", []byte("rows a"))
	if got := storagetest.ReadFile(t, fsys, "a"); string(got) != "rows a" {
		t.Fatalf("read %q", got)
	}
	// Refused every time: retryable failure, nothing left.
	s.RefuseComplete(0)
	f, err := fsys.Create(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("rows b")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !storage.IsRetryable(err) {
		t.Fatalf("Close with complete always refused: %v, want retryable", err)
	}
	checkGone(t, s, fsys, "b")
}

func TestHDFSCompleteFailures(t *testing.T) {
	for _, fault := range []hdfstest.Fault{
		// Rejected before running: colinmarc cannot send complete again
		// with the last block, so the file is discarded.
		{Op: "complete", Nth: 1, Action: hdfstest.Fail, Exception: hdfstest.ExcRetriable},
		// Ran, but the answer was lost: the writer cannot know, so the
		// file is discarded too and nobody relies on it.
		{Op: "complete", Nth: 1, Action: hdfstest.FailAfter, Exception: hdfstest.ExcIO},
	} {
		s, fsys := startHDFS(t)
		s.Faults().Add(fault)
		f, err := fsys.Create(context.Background(), "c")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("rows")); err != nil {
			t.Fatal(err)
		}
		err = f.Close()
		if err == nil || !strings.Contains(err.Error(), "storage: close c") {
			t.Fatalf("%v: Close = %v; want a failure with context", fault.Action, err)
		}
		if fault.Exception == hdfstest.ExcRetriable && !storage.IsRetryable(err) {
			t.Fatalf("RetriableException on complete: %v, want retryable", err)
		}
		checkGone(t, s, fsys, "c")
	}
}

func TestHDFSCancelWrite(t *testing.T) {
	s, fsys := startHDFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := fsys.Create(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(storagetest.RandomBytes(4, 300_000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = f.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Close after cancel: %v, want context.Canceled", err)
	}
	checkGone(t, s, fsys, "p")
}

func TestHDFSClosedFS(t *testing.T) {
	_, fsys := startHDFS(t)
	r := func() storage.Reader {
		storagetest.WriteFile(t, fsys, "f", []byte("abc"))
		r, err := fsys.Open(context.Background(), "f")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}()
	fsys.Close()
	if _, err := fsys.Stat(context.Background(), "f"); !errors.Is(err, fs.ErrClosed) || storage.IsRetryable(err) {
		t.Fatalf("Stat after Close: %v, want fs.ErrClosed, not retryable", err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("Reader kept working after the FS was closed")
	}
	r.Close()
}
