//go:build !linux

package agent

import (
	"syscall"
	"time"
)

// userTimeoutControl is Linux-only; elsewhere (development machines) the
// keepalive alone detects a dead connection.
func userTimeoutControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
