//go:build faults

package main

import (
	"os"
	"syscall"
)

// Built only with -tags faults (`make faults`, and the agent the
// kill-mid-command test builds): release binaries carry no way to be
// killed on request. EDGE_AGENT_FAILPOINT=after-relay-move SIGKILLs the
// agent between a relay's move and its recorded reply.
func init() {
	failpoint = func() func() {
		if os.Getenv("EDGE_AGENT_FAILPOINT") == "after-relay-move" {
			return func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		}
		return nil
	}
}
