//go:build unix && !linux

package chserver

import "syscall"

// procAttr puts the server in its own process group. Without Linux's
// parent-death signal, a parent that crashes leaves the server running;
// the next Start on the same Dir then fails on its lock file.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
