//go:build !linux

package dynamodb

import "syscall"

// sysProcAttr: Pdeathsig exists on Linux only; elsewhere Stop must be called.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
