package testenv

import (
	"os/exec"
	"syscall"
)

// ddbSetParentDeath makes the kernel kill DynamoDB Local when the test process dies.
func ddbSetParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
