//go:build linux

package storage

import "golang.org/x/sys/unix"

// sysRenameat2 is renameat2(2) with RENAME_NOREPLACE.
func sysRenameat2(oldpath, newpath string) error {
	return unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
}
