package store

import (
	"fmt"
	"time"
)

// Change is a set of updates that Apply commits in one transaction, so that
// a command's effect, its reply and its handled mark are either all on disk
// or none is.
type Change struct {
	Relays  map[string]RelayState // relay states to record
	Command *CommandChange        // a command id's progress
	Handled []uint64              // inbox records now handled
	Outbox  []OutMsg              // replies and events to publish (ID is assigned)
	// EventSeq, when not 0, is the last event number now in Outbox.
	EventSeq uint64
	// Offline, when set, records when the broker was lost (the zero time:
	// connected again).
	Offline *time.Time
}

// Apply commits c in one transaction and returns the ids given to c.Outbox.
func (db *DB) Apply(c Change) ([]uint64, error) {
	var ids []uint64
	err := db.update(func(t *txn) error {
		for name, st := range c.Relays {
			if err := t.relays.Put([]byte(name), encodeRelay(st)); err != nil {
				return err
			}
		}
		if c.Command != nil {
			if err := t.putCommand(c.Command, uint64(db.opts.MaxCommands)); err != nil {
				return err
			}
		}
		if len(c.Handled) > 0 {
			if err := t.markHandled(c.Handled); err != nil {
				return err
			}
		}
		if err := t.putLink(&c); err != nil {
			return err
		}
		var err error
		ids, err = t.putOutbox(c.Outbox)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return ids, nil
}

// markHandled is Change.Handled inside Apply's transaction.
func (t *txn) markHandled(seqs []uint64) error {
	c, err := t.inboxCounters()
	if err != nil {
		return err
	}
	for _, s := range seqs {
		k := seqKey(s)
		if !t.isPending(k) {
			continue
		}
		if err := t.pending.Delete(k); err != nil {
			return err
		}
		c.pending--
	}
	return t.putInboxCounters(c)
}

// PendingSeqs returns up to max seqs of pending records after after,
// oldest first.
func (db *DB) PendingSeqs(after uint64, max int) ([]uint64, error) {
	var seqs []uint64
	err := db.view(func(t *txn) error {
		cur := t.pending.Cursor()
		for k, _ := cur.Seek(seqKey(after + 1)); k != nil && len(seqs) < max; k, _ = cur.Next() {
			seqs = append(seqs, getSeq(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	return seqs, nil
}
