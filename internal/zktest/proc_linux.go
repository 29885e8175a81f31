package zktest

import "syscall"

// procAttr puts the JVM in its own process group (Stop kills the group)
// and kills it if the test binary dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
