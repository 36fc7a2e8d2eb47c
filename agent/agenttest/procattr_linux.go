package agenttest

import "syscall"

// sysProcAttr puts a broker in its own process group, so a Ctrl-C meant for
// `go test` does not reach it before Stop does, and has the kernel kill it
// if the test binary dies first (a panic, a -timeout), so no broker outlives
// its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
