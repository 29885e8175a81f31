//go:build !linux

package zktest

import "syscall"

// procAttr puts the JVM in its own process group (Stop kills the group).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
