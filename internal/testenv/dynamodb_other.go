//go:build !linux

package testenv

import "os/exec"

// ddbSetParentDeath has no parent-death signal outside Linux; Main stops DynamoDB Local.
func ddbSetParentDeath(cmd *exec.Cmd) {}
