package config

import (
	"fmt"
	"time"
)

// DefaultCommitWindow is store.commit_window when it is absent: at 100
// messages a second one commit carries about 10 of them, which fill one 4
// KiB block of the store's journal, for at most 100 ms more before the
// PUBACK; a possible command never waits for it (docs/flash.md). A longer
// window writes no less: 20 messages take two blocks.
const DefaultCommitWindow = "100ms"

// maxCommitWindow bounds store.commit_window: the writer's heartbeat and
// the broker's patience with unacknowledged messages are counted in
// seconds.
const maxCommitWindow = time.Second

// checkCommitWindow reads store.commit_window into c.
func (l *loader) checkCommitWindow(c *Config) {
	s := l.doc.Store.CommitWindow
	d, ok := l.duration("store.commit_window", s)
	switch {
	case !ok:
	case d < 0:
		l.problem("store.commit_window", fmt.Sprintf("%s is negative", s), `use "0s" to commit at once, or remove it for the default `+fmt.Sprintf("%q", DefaultCommitWindow))
	case d > maxCommitWindow:
		l.problem("store.commit_window", fmt.Sprintf("%s is more than %v", s, maxCommitWindow),
			fmt.Sprintf("use at most %q: a longer window holds every acknowledgement that long; the default is %q", maxCommitWindow.String(), DefaultCommitWindow))
	default:
		c.Store.CommitWindow = d
	}
}
