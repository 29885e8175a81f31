package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/internal/storage/storagetest"
)

func openLocal(t *testing.T) storage.FS {
	t.Helper()
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir()+"/root", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, openLocal)
}

// renameat2Unsupported stands for a file system without RENAME_NOREPLACE
// (the kernel answers EINVAL) and counts the attempts.
type renameat2Unsupported struct {
	mu    sync.Mutex
	calls int
}

func (u *renameat2Unsupported) renameat2(oldpath, newpath string) error {
	u.mu.Lock()
	u.calls++
	u.mu.Unlock()
	return syscall.EINVAL
}

// TestLocalConformanceLinkFallback runs the whole suite with renameat2
// unsupported, so every rename goes through link+unlink.
func TestLocalConformanceLinkFallback(t *testing.T) {
	var u renameat2Unsupported
	storagetest.Run(t, func(t *testing.T) storage.FS {
		fsys, err := storage.OpenLocalWithHooks(context.Background(), t.TempDir(), nil, u.renameat2)
		if err != nil {
			t.Fatal(err)
		}
		return fsys
	})
	if u.calls < 5 {
		t.Fatalf("renameat2 hook called %d times; the suite's renames did not go through it", u.calls)
	}
}

func TestLocalRenameat2Real(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := storage.SysRenameat2(a, b)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
		t.Skipf("renameat2 unsupported here (%v); the fallback is tested separately", err)
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("renameat2 onto an existing file: %v, want EEXIST", err)
	}
	if got, _ := os.ReadFile(b); string(got) != b {
		t.Fatalf("b was overwritten: %q", got)
	}
}

func TestLocalRenameOtherErrorsDoNotFallBack(t *testing.T) {
	calls := 0
	fsys, err := storage.OpenLocalWithHooks(context.Background(), t.TempDir(), nil, func(o, n string) error {
		calls++
		return syscall.EXDEV
	})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.WriteFile(t, fsys, "a", []byte("a"))
	err = fsys.Rename(context.Background(), "a", "b")
	if !errors.Is(err, syscall.EXDEV) || calls != 1 {
		t.Fatalf("rename = %v after %d calls; want EXDEV passed through", err, calls)
	}
	if !strings.Contains(err.Error(), "storage: rename a -> b") {
		t.Fatalf("error lacks context: %v", err)
	}
	if _, err := fsys.Stat(context.Background(), "b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("b exists after a failed rename: %v", err)
	}
}

// syncLog records what was fsynced, relative to the root.
type syncLog struct {
	root  string
	mu    sync.Mutex
	paths []string
	fail  string // fsync of this path fails
}

func (s *syncLog) sync(f *os.File) error {
	rel, err := filepath.Rel(s.root, f.Name())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.paths = append(s.paths, filepath.ToSlash(rel))
	s.mu.Unlock()
	if rel == s.fail {
		return syscall.EIO
	}
	return f.Sync()
}

func (s *syncLog) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.paths
	s.paths = nil
	return p
}

func TestLocalFsyncs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	log := &syncLog{root: root}
	fsys, err := storage.OpenLocalWithHooks(ctx, root, log.sync, nil)
	if err != nil {
		t.Fatal(err)
	}
	log.take()
	step := func(what string, want ...string) {
		t.Helper()
		if got := log.take(); !slices.Equal(got, want) {
			t.Fatalf("%s fsynced %q, want %q", what, got, want)
		}
	}

	if err := fsys.MkdirAll(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	step("MkdirAll a/b", ".", "a")
	if err := fsys.MkdirAll(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	step("MkdirAll of an existing directory")

	f, err := fsys.Create(ctx, "a/b/f")
	if err != nil {
		t.Fatal(err)
	}
	step("Create", "a/b")
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	step("Write")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	step("Close", "a/b/f")

	if err := fsys.Rename(ctx, "a/b/f", "a/g"); err != nil {
		t.Fatal(err)
	}
	step("Rename across directories", "a", "a/b")
	if err := fsys.Rename(ctx, "a/g", "a/h"); err != nil {
		t.Fatal(err)
	}
	step("Rename within a directory", "a")
	if err := fsys.Remove(ctx, "a/h"); err != nil {
		t.Fatal(err)
	}
	step("Remove", "a")

	f, err = fsys.Create(ctx, "a/x")
	if err != nil {
		t.Fatal(err)
	}
	step("Create", "a")
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	step("Abort", "a")
}

func TestLocalCloseFsyncFailureRemovesFile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	log := &syncLog{root: root, fail: "part"}
	fsys, err := storage.OpenLocalWithHooks(ctx, root, log.sync, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create(ctx, "part")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("rows")); err != nil {
		t.Fatal(err)
	}
	err = f.Close()
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "storage: close part: fsync") {
		t.Fatalf("Close with a failing fsync = %v; want the EIO with context", err)
	}
	if _, err := fsys.Stat(ctx, "part"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file whose fsync failed is still visible: %v", err)
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		url, hint string
	}{
		{"file://./data", "absolute path"},
		{"file://data/x", "absolute path"},
		{"./data", "must be made absolute"},
		{"/var/data", "must be made absolute"},
		{"s3://bucket/x", "unknown scheme"},
		{"hdfs:///x", "NameNode address"},
	} {
		_, err := storage.Open(ctx, tc.url, storage.Options{})
		if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("Open(%q) = %v; want fs.ErrInvalid saying %q", tc.url, err, tc.hint)
		}
	}
	// A file URL creates its root; localhost is the same machine.
	fsys, err := storage.Open(ctx, "file://localhost"+dir+"/new/root", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.WriteFile(t, fsys, "x", []byte("x"))
	if b, err := os.ReadFile(filepath.Join(dir, "new/root/x")); err != nil || string(b) != "x" {
		t.Fatalf("file not under the URL's root: %q, %v", b, err)
	}
	// A root that is a file is refused.
	if _, err := storage.Open(ctx, "file://"+dir+"/new/root/x", storage.Options{}); err == nil {
		t.Fatal("Open of a file as root succeeded")
	}
}
