//go:build unix

package reports

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// spillLockName is the file in a spill directory that its process holds
// an exclusive flock on while it lives. The kernel drops the lock when
// the process dies, kill -9 included, so a later run can tell a dead
// run's directory from a running one's.
const spillLockName = "owner.lock"

// lockSpillDir takes the lock of spill directory dir.
// The file is locked under a temporary name and then renamed (the lock
// stays with the file): a sweep never finds an unlocked lock file of a
// live directory.
func lockSpillDir(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "owner-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("reports: spill lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("reports: spill lock %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, spillLockName)); err != nil {
		f.Close()
		return nil, fmt.Errorf("reports: spill lock: %w", err)
	}
	return f, nil
}

// removeStaleSpillDirs removes the spill directories in parent whose
// process is gone: their lock can be taken. A directory without a lock
// file is either being created this instant or predates the locks, so it
// is removed only once it is older than an hour. It returns the
// directories removed.
func removeStaleSpillDirs(parent string) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(parent, spillDirPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		f, err := os.OpenFile(filepath.Join(d, spillLockName), os.O_RDWR, 0)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		case err != nil:
			errs = append(errs, err)
			continue
		default:
			lerr := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if lerr != nil {
				f.Close()
				if !errors.Is(lerr, syscall.EWOULDBLOCK) {
					errs = append(errs, fmt.Errorf("lock %s: %w", f.Name(), lerr))
				}
				continue // a running job's
			}
			// Removed while holding the lock, so no process can take the
			// directory over meanwhile; the lock goes with the file.
			defer f.Close()
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, d)
	}
	return removed, errors.Join(errs...)
}
