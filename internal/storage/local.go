package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// localHooks are the system calls the local backend makes that tests need
// to count or replace. Zero fields take the real calls.
type localHooks struct {
	// sync is fsync of a file or directory.
	sync func(*os.File) error
	// renameat2 is renameat2(2) with RENAME_NOREPLACE; it fails with
	// EEXIST if newpath exists, and with EINVAL, ENOSYS or ENOTSUP where
	// the kernel or file system lacks it.
	renameat2 func(oldpath, newpath string) error
}

// localFS is the local-disk backend. It works on any POSIX file system:
// renames use renameat2(RENAME_NOREPLACE) where the kernel and file system
// support it and link+unlink otherwise.
type localFS struct {
	root  string
	hooks localHooks
}

func openLocal(ctx context.Context, root string, opts Options, hooks localHooks) (*localFS, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: open file://%s: %w", root, err)
	}
	root = filepath.Clean(root)
	if hooks.sync == nil {
		hooks.sync = (*os.File).Sync
	}
	if hooks.renameat2 == nil {
		hooks.renameat2 = sysRenameat2
	}
	l := &localFS{root: root, hooks: hooks}
	if err := l.mkdirAll(root); err != nil {
		return nil, fmt.Errorf("storage: open file://%s: %w", root, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("storage: open file://%s: %w", root, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("storage: open file://%s: not a directory: %w", root, fs.ErrInvalid)
	}
	opts.Logger.Debug("storage: local root open", "root", root)
	return l, nil
}

func (l *localFS) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

// syncDir fsyncs a directory so the entries created, renamed or removed in
// it survive a power loss.
func (l *localFS) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = l.hooks.sync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func (l *localFS) Create(ctx context.Context, name string) (File, error) {
	if err := checkName("create", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", name, err)
	}
	p := l.path(name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", name, err)
	}
	// The name is the reservation: make it durable before anyone relies on
	// it, so a create that returned survives a crash.
	if err := l.syncDir(filepath.Dir(p)); err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("storage: create %s: %w", name, err)
	}
	return &localFile{fs: l, f: f, name: name, path: p}, nil
}

// localFile is a File on local disk.
type localFile struct {
	fs   *localFS
	f    *os.File
	name string
	path string
	done bool
	err  error // sticky write error
}

func (f *localFile) Name() string { return f.name }

func (f *localFile) Write(b []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("storage: write %s: %w", f.name, fs.ErrClosed)
	}
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.f.Write(b)
	if err != nil {
		f.err = fmt.Errorf("storage: write %s: %w", f.name, err)
		return n, f.err
	}
	return n, nil
}

func (f *localFile) Close() error {
	if f.done {
		return fmt.Errorf("storage: close %s: %w", f.name, fs.ErrClosed)
	}
	err := f.err
	if err == nil {
		if serr := f.fs.hooks.sync(f.f); serr != nil {
			err = fmt.Errorf("storage: close %s: fsync: %w", f.name, serr)
		}
	}
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("storage: close %s: %w", f.name, cerr)
	}
	f.done = true
	if err != nil {
		// The content is undefined: take the name away so nobody reads a
		// torn file as written.
		return errors.Join(err, f.remove())
	}
	return nil
}

func (f *localFile) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	f.f.Close()
	return f.remove()
}

func (f *localFile) remove() error {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: abort %s: %w", f.name, err)
	}
	if err := f.fs.syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("storage: abort %s: %w", f.name, err)
	}
	return nil
}

func (l *localFS) Open(ctx context.Context, name string) (Reader, error) {
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: is a directory: %w", name, fs.ErrInvalid)
	}
	return &localReader{File: f, size: fi.Size()}, nil
}

// localReader is an *os.File, whose ReadAt is safe for concurrent use.
type localReader struct {
	*os.File
	size int64
}

func (r *localReader) Size() int64 { return r.size }

func (l *localFS) Stat(ctx context.Context, name string) (Entry, error) {
	if err := checkName("stat", name); err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	fi, err := os.Stat(l.path(name))
	if err != nil {
		return Entry{}, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	e := entryOf(fi)
	e.Name = baseName(name)
	return e, nil
}

func entryOf(fi fs.FileInfo) Entry {
	e := Entry{Name: fi.Name(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !e.IsDir {
		e.Size = fi.Size()
	}
	return e
}

func (l *localFS) ReadDir(ctx context.Context, name string) ([]Entry, error) {
	if err := checkName("readdir", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: readdir %s: %w", name, err)
	}
	des, err := os.ReadDir(l.path(name))
	if err != nil {
		return nil, fmt.Errorf("storage: readdir %s: %w", name, err)
	}
	out := make([]Entry, 0, len(des))
	for _, de := range des {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing: not there any more
		}
		if err != nil {
			return nil, fmt.Errorf("storage: readdir %s: %w", name, err)
		}
		out = append(out, entryOf(fi))
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (l *localFS) Rename(ctx context.Context, oldname, newname string) error {
	if err := checkName("rename", oldname); err != nil {
		return err
	}
	if err := checkName("rename", newname); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: rename %s -> %s: %w", oldname, newname, err)
	}
	if oldname == "." || newname == "." {
		return fmt.Errorf("storage: rename %s -> %s: cannot rename the root: %w", oldname, newname, fs.ErrInvalid)
	}
	op, np := l.path(oldname), l.path(newname)
	if err := l.renameNoReplace(op, np); err != nil {
		return fmt.Errorf("storage: rename %s -> %s: %w", oldname, newname, err)
	}
	// Both directory entries must be durable before the rename counts as
	// done: the new one so it survives, the old one so the file does not
	// come back under its old name too.
	if err := l.syncDir(filepath.Dir(np)); err != nil {
		return fmt.Errorf("storage: rename %s -> %s: %w", oldname, newname, err)
	}
	if filepath.Dir(op) != filepath.Dir(np) {
		if err := l.syncDir(filepath.Dir(op)); err != nil {
			return fmt.Errorf("storage: rename %s -> %s: %w", oldname, newname, err)
		}
	}
	return nil
}

// renameNoReplace renames atomically without overwriting: renameat2 with
// RENAME_NOREPLACE fails with EEXIST (which matches fs.ErrExist) if newpath
// exists. Where the kernel or file system lacks it, linkRename does the job.
func (l *localFS) renameNoReplace(oldpath, newpath string) error {
	err := l.hooks.renameat2(oldpath, newpath)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.ENOTSUP) {
		return linkRename(oldpath, newpath)
	}
	return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
}

// linkRename renames without overwriting where renameat2 cannot: link(2)
// fails with EEXIST atomically, then the old name is unlinked. A crash in
// between leaves the file under both names, never under neither. Hard links
// to directories do not exist, so a directory is renamed after checking
// that newpath is absent, with a race window a concurrent creator of
// newpath could hit (rename(2) would replace an empty directory).
func linkRename(oldpath, newpath string) error {
	fi, err := os.Lstat(oldpath)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if _, err := os.Lstat(newpath); err == nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Rename(oldpath, newpath)
	}
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return os.Remove(oldpath)
}

func (l *localFS) Remove(ctx context.Context, name string) error {
	if err := checkName("remove", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: remove %s: %w", name, err)
	}
	if name == "." {
		return fmt.Errorf("storage: remove %s: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	p := l.path(name)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("storage: remove %s: %w", name, err)
	}
	if err := l.syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("storage: remove %s: %w", name, err)
	}
	return nil
}

func (l *localFS) RemoveAll(ctx context.Context, name string) error {
	if err := checkName("removeall", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: removeall %s: %w", name, err)
	}
	if name == "." {
		return fmt.Errorf("storage: removeall %s: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	p := l.path(name)
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("storage: removeall %s: %w", name, err)
	}
	if err := l.syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("storage: removeall %s: %w", name, err)
	}
	return nil
}

func (l *localFS) MkdirAll(ctx context.Context, name string) error {
	if err := checkName("mkdirall", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: mkdirall %s: %w", name, err)
	}
	if err := l.mkdirAll(l.path(name)); err != nil {
		return fmt.Errorf("storage: mkdirall %s: %w", name, err)
	}
	return nil
}

// mkdirAll creates dir and its missing parents, fsyncing the parent of each
// directory it creates so the whole chain survives a power loss.
func (l *localFS) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := l.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// A concurrent MkdirAll made it; fine if it is a directory.
			if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	}
	return l.syncDir(parent)
}

func (l *localFS) Close() error { return nil }
