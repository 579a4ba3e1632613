//go:build linux

package dynamodb

import "syscall"

// sysProcAttr makes the child receive SIGKILL when its parent dies, and puts it in its
// own process group so a terminal's Ctrl-C reaches only the parent, which stops it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
