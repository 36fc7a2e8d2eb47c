package agent

import (
	"context"
	"sync/atomic"
	"time"
)

// heartbeatEvery is how often a loop stamps its heartbeat while idle.
const heartbeatEvery = time.Second

// stuckAfter: a loop whose heartbeat is older than this is stuck (a
// deadlock, a write that never returns), not merely busy or retrying.
const stuckAfter = 30 * time.Second

// heartbeat is the last time a loop showed it was alive.
type heartbeat struct{ last atomic.Int64 }

func (h *heartbeat) stamp() { h.last.Store(time.Now().UnixNano()) }

func (h *heartbeat) age(now time.Time) time.Duration {
	l := h.last.Load()
	if l == 0 {
		return 0 // not started yet
	}
	return now.Sub(time.Unix(0, l))
}

// watchdog calls alive every interval while every loop's heartbeat is fresh,
// and stops calling it when one is stuck, so that a supervisor (systemd's
// WatchdogSec) restarts a wedged agent. A store that refuses writes is not
// stuck: the writer keeps beating while it retries.
func watchdog(ctx context.Context, interval, stuck time.Duration, alive func(), beats ...*heartbeat) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			healthy := true
			for _, b := range beats {
				if b.age(now) > stuck {
					healthy = false
				}
			}
			if healthy {
				alive()
			}
		}
	}
}
