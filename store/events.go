package store

import (
	"fmt"
	"time"
)

var (
	// keyEventSeq is the last event number given out: events (input
	// changes, relays the agent switched by itself) carry it so that their
	// receiver sees order and gaps across restarts.
	keyEventSeq = []byte("event.seq")
	// keyOfflineSince is when the agent last lost (or had not yet reached)
	// its broker, in Unix ns; absent or 0 = connected. A relay's offline
	// policy counts from it, across restarts.
	keyOfflineSince = []byte("link.offline_since")
)

// EventSeq is the last event number recorded with Change.EventSeq (0: none
// yet).
func (db *DB) EventSeq() (uint64, error) {
	var n uint64
	err := db.view(func(t *txn) error { n = getU64(t.meta, keyEventSeq); return nil })
	if err != nil {
		return 0, fmt.Errorf("event seq: %w", err)
	}
	return n, nil
}

// OfflineSince is the time recorded with Change.Offline: when the agent was
// last seen without its broker; the zero time when it was connected.
func (db *DB) OfflineSince() (time.Time, error) {
	var n uint64
	err := db.view(func(t *txn) error { n = getU64(t.meta, keyOfflineSince); return nil })
	if err != nil || n == 0 {
		return time.Time{}, err
	}
	return fromUnixNano(int64(n)), nil
}

// putLink is Change.EventSeq and Change.Offline inside Apply's transaction.
func (t *txn) putLink(c *Change) error {
	if c.EventSeq != 0 {
		if err := putU64(t.meta, keyEventSeq, c.EventSeq); err != nil {
			return err
		}
	}
	if c.Offline != nil {
		var n uint64
		if !c.Offline.IsZero() {
			n = uint64(unixNano(*c.Offline))
		}
		return putU64(t.meta, keyOfflineSince, n)
	}
	return nil
}
