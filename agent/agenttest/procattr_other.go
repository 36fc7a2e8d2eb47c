//go:build !linux

package agenttest

import "syscall"

// sysProcAttr: only Linux has Pdeathsig; elsewhere a broker left behind by
// a crashed test binary has to be stopped by hand.
func sysProcAttr() *syscall.SysProcAttr { return nil }
