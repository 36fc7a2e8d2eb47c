package agent

import (
	"context"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/store"
)

// offlinePolicy is the dispatcher's view of the link for the relays'
// offline = "off": since when the agent has been without its broker, and
// which relays the policy already switched in this spell. The dispatcher
// owns it.
type offlinePolicy struct {
	connected func() bool // health's connection state
	since     time.Time   // offline since (monotonic when seen in this process); zero = connected
	done      map[string]bool
}

// offlineSince is where an offline spell counts from at start: the time
// recorded before the restart, when there is one (the clock keeps running
// across a restart), else now (never connected since boot counts as
// offline). A recorded time in the future (the clock was set back, a Pi
// without a real-time clock before NTP) counts from now. The result
// carries a monotonic reading, so a clock step later does not move it.
func offlineSince(recorded, now time.Time) time.Time {
	if recorded.IsZero() || recorded.After(now) {
		return now
	}
	return now.Add(-now.Sub(recorded))
}

// linkChanged follows the connection: it records when the link was lost
// (and that it is back), so a restart keeps counting.
func (d *dispatcher) linkChanged(ctx context.Context) {
	up := d.offline.connected()
	switch {
	case up && !d.offline.since.IsZero():
		d.offline.since = time.Time{}
		clear(d.offline.done)
		d.apply(ctx, store.Change{Offline: &time.Time{}})
	case !up && d.offline.since.IsZero():
		now := d.now()
		d.offline.since = now
		wall := now.Round(0)
		d.apply(ctx, store.Change{Offline: &wall})
	}
}

// applyOffline switches off, once per offline spell, every relay with
// offline = "off" whose offline_after has passed, and returns when the next
// one is due (zero: none).
func (d *dispatcher) applyOffline(ctx context.Context) (next time.Time) {
	if d.offline.since.IsZero() {
		return time.Time{}
	}
	now := d.now()
	for _, name := range d.relayNames {
		rc := d.relayCfg[name]
		if rc.Offline != config.OfflineOff || d.offline.done[name] {
			continue
		}
		due := d.offline.since.Add(rc.OfflineAfter)
		if now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		d.log.Warn("no broker for longer than offline_after; switching the relay to its safe state", "relay", name,
			"offline_since", d.offline.since.Round(0), "offline_after", rc.OfflineAfter)
		if d.switchOff(ctx, name, causeOffline, "") {
			d.offline.done[name] = true
		}
	}
	return next
}
