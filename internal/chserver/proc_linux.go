package chserver

import "syscall"

// procAttr puts the server in its own process group and has the kernel
// SIGKILL it when the thread that started it exits. The Go runtime ends a
// thread only when a goroutine locked to it returns, which Start never
// does, so in practice that is when this process dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
