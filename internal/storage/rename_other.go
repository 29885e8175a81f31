//go:build !linux

package storage

import "syscall"

// sysRenameat2 does not exist outside Linux: the caller falls back to
// link+unlink.
func sysRenameat2(oldpath, newpath string) error { return syscall.ENOSYS }
