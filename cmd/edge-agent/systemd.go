package main

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent"
)

// withSystemd fills opts' Ready and Alive hooks when systemd supervises
// the agent (Type=notify, WatchdogSec=): READY=1 once the agent is up,
// WATCHDOG=1 every half of WATCHDOG_USEC while its loops are healthy. It
// speaks sd_notify(3)'s documented protocol: one datagram per state to the
// unix socket NOTIFY_SOCKET names. Without NOTIFY_SOCKET (no systemd, or
// another supervisor) it changes nothing, so the agent runs as before.
func withSystemd(opts *agent.Options, log *slog.Logger) {
	n := notifierFromEnv()
	if n == nil {
		return
	}
	n.log = log
	opts.Ready = func() { n.send("READY=1") }
	if every := watchdogEvery(); every > 0 {
		opts.Alive = func() { n.send("WATCHDOG=1") }
		opts.AliveEvery = every
	}
}

// notifier sends sd_notify states. A failure is logged once (then again
// after a success), not every watchdog period.
type notifier struct {
	addr    *net.UnixAddr
	log     *slog.Logger
	failing atomic.Bool
}

func notifierFromEnv() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	// "@name" is Linux's abstract namespace; Go's net package maps a
	// leading '@' to it. Anything else must be an absolute path.
	if path == "" || (path[0] != '/' && path[0] != '@') {
		return nil
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// watchdogEvery is half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// advises, or 0 when the watchdog is off or meant for another process
// (WATCHDOG_PID names a different pid).
func watchdogEvery() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// send delivers one state. A new socket each time: systemd re-creates its
// notify socket on daemon-reexec, and a datagram every 15 s costs nothing.
func (n *notifier) send(state string) {
	err := func() error {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(state))
		return err
	}()
	if err != nil {
		if !n.failing.Swap(true) && n.log != nil {
			n.log.Warn("cannot notify systemd", "state", state, "socket", n.addr.Name, "err", err)
		}
		return
	}
	n.failing.Store(false)
}
