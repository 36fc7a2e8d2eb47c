package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// RelayState is a relay's last commanded state.
type RelayState struct {
	On       bool
	Since    time.Time // when it last changed
	Deadline time.Time // when it switches off by itself; zero = never
}

// Command is what the store remembers of a command id.
type Command struct {
	Seq   uint64 // the inbox record that carried it
	Done  bool   // false: execution started and did not finish (a crash)
	Reply []byte // the reply (if !Done: the reply it gets if it finishes)
}

// OutMsg is a reply waiting for the broker's PUBACK.
type OutMsg struct {
	ID      uint64
	Topic   string
	Payload []byte
}

// Change is a set of updates that Apply commits in one transaction, so that
// a command's effect, its reply and its handled mark are either all on disk
// or none is.
type Change struct {
	Relays  map[string]RelayState // relay states to record
	Command *CommandChange        // a command id's progress
	Handled []uint64              // inbox records now handled
	Outbox  []OutMsg              // replies to publish (ID is assigned)
}

// CommandChange records command ID.
type CommandChange struct {
	ID string
	Command
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
		var err error
		ids, err = t.putOutbox(c.Outbox)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return ids, nil
}

// putOutbox queues msgs in the outbox and returns the ids it gave them.
func (t *txn) putOutbox(msgs []OutMsg) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ids := make([]uint64, 0, len(msgs))
	seq, n := getU64(t.meta, keyOutboxSeq), getU64(t.meta, keyOutboxCount)
	for _, m := range msgs {
		seq++
		if err := t.outbox.Put(seqKey(seq), encodeOutMsg(m)); err != nil {
			return nil, err
		}
		ids = append(ids, seq)
		n++
	}
	if err := putU64(t.meta, keyOutboxSeq, seq); err != nil {
		return nil, err
	}
	return ids, putU64(t.meta, keyOutboxCount, n)
}

func (t *txn) putCommand(c *CommandChange, max uint64) error {
	if c.ID == "" {
		return errors.New("command with an empty id")
	}
	k := []byte(c.ID)
	isNew := t.commands.Get(k) == nil
	if err := t.commands.Put(k, encodeCommand(c.Command)); err != nil {
		return err
	}
	if !isNew {
		return nil
	}
	order, n := getU64(t.meta, keyCmdOrder)+1, getU64(t.meta, keyCmdCount)+1
	if err := t.cmdOrder.Put(seqKey(order), k); err != nil {
		return err
	}
	// Forget the oldest ids beyond max.
	cur := t.cmdOrder.Cursor()
	for ok, v := cur.First(); n > max && ok != nil; ok, v = cur.First() {
		if err := t.commands.Delete(v); err != nil {
			return err
		}
		if err := cur.Delete(); err != nil {
			return err
		}
		n--
	}
	if err := putU64(t.meta, keyCmdOrder, order); err != nil {
		return err
	}
	return putU64(t.meta, keyCmdCount, n)
}

// markHandled is MarkHandled inside a transaction.
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

// LookupCommand returns what the store remembers of command id.
func (db *DB) LookupCommand(id string) (Command, bool, error) {
	var c Command
	var found bool
	err := db.view(func(t *txn) error {
		v := t.commands.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		var err error
		c, err = decodeCommand(v)
		return err
	})
	if err != nil {
		return Command{}, false, fmt.Errorf("command %q: %w", id, err)
	}
	return c, found, nil
}

// Relays returns every recorded relay state.
func (db *DB) Relays() (map[string]RelayState, error) {
	m := map[string]RelayState{}
	err := db.view(func(t *txn) error {
		return t.relays.ForEach(func(k, v []byte) error {
			st, err := decodeRelay(v)
			if err != nil {
				return fmt.Errorf("relay %q: %w", k, err)
			}
			m[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("relays: %w", err)
	}
	return m, nil
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

// Outbox returns up to max replies after id after, oldest first.
func (db *DB) Outbox(after uint64, max int) ([]OutMsg, error) {
	var out []OutMsg
	err := db.view(func(t *txn) error {
		cur := t.outbox.Cursor()
		for k, v := cur.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = cur.Next() {
			m, err := decodeOutMsg(v)
			if err != nil {
				return err
			}
			m.ID = getSeq(k)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return out, nil
}

// OutboxLen returns how many replies wait for the broker.
func (db *DB) OutboxLen() (int, error) {
	var n uint64
	err := db.view(func(t *txn) error { n = getU64(t.meta, keyOutboxCount); return nil })
	return int(n), err
}

// DeleteOutbox removes replies the broker acknowledged. Unknown ids are
// ignored (a reply acknowledged twice across a reconnect).
func (db *DB) DeleteOutbox(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	err := db.update(func(t *txn) error {
		n := getU64(t.meta, keyOutboxCount)
		for _, id := range ids {
			k := seqKey(id)
			if t.outbox.Get(k) == nil {
				continue
			}
			if err := t.outbox.Delete(k); err != nil {
				return err
			}
			n--
		}
		return putU64(t.meta, keyOutboxCount, n)
	})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Encodings: a version byte, then fixed fields, then the variable part.

const (
	actionsVersion = 1
	flagOn         = 1 << 0
	flagDone       = 1 << 1
)

func encodeRelay(s RelayState) []byte {
	b := []byte{actionsVersion, 0}
	if s.On {
		b[1] |= flagOn
	}
	b = binary.AppendVarint(b, unixNano(s.Since))
	return binary.AppendVarint(b, unixNano(s.Deadline))
}

func decodeRelay(b []byte) (RelayState, error) {
	if len(b) < 2 || b[0] != actionsVersion {
		return RelayState{}, fmt.Errorf("%w: bad relay state", ErrCorrupt)
	}
	s := RelayState{On: b[1]&flagOn != 0}
	since, n := binary.Varint(b[2:])
	if n <= 0 {
		return RelayState{}, fmt.Errorf("%w: bad relay state", ErrCorrupt)
	}
	deadline, m := binary.Varint(b[2+n:])
	if m <= 0 || 2+n+m != len(b) {
		return RelayState{}, fmt.Errorf("%w: bad relay state", ErrCorrupt)
	}
	s.Since, s.Deadline = fromUnixNano(since), fromUnixNano(deadline)
	return s, nil
}

func encodeCommand(c Command) []byte {
	b := []byte{actionsVersion, 0}
	if c.Done {
		b[1] |= flagDone
	}
	b = binary.AppendUvarint(b, c.Seq)
	return append(b, c.Reply...)
}

func decodeCommand(b []byte) (Command, error) {
	if len(b) < 3 || b[0] != actionsVersion {
		return Command{}, fmt.Errorf("%w: bad command entry", ErrCorrupt)
	}
	seq, n := binary.Uvarint(b[2:])
	if n <= 0 {
		return Command{}, fmt.Errorf("%w: bad command entry", ErrCorrupt)
	}
	return Command{Seq: seq, Done: b[1]&flagDone != 0, Reply: append([]byte(nil), b[2+n:]...)}, nil
}

func encodeOutMsg(m OutMsg) []byte {
	b := []byte{actionsVersion}
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	return append(b, m.Payload...)
}

func decodeOutMsg(b []byte) (OutMsg, error) {
	if len(b) < 2 || b[0] != actionsVersion {
		return OutMsg{}, fmt.Errorf("%w: bad outbox entry", ErrCorrupt)
	}
	l, n := binary.Uvarint(b[1:])
	if n <= 0 || uint64(len(b)-1-n) < l {
		return OutMsg{}, fmt.Errorf("%w: bad outbox entry", ErrCorrupt)
	}
	rest := b[1+n:]
	return OutMsg{Topic: string(rest[:l]), Payload: append([]byte(nil), rest[l:]...)}, nil
}

// unixNano maps the zero Time to 0, so "no deadline" round-trips.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Cached account-service credentials live in the meta bucket; the file is
// mode 0600, which is what keeps them from other users.
var keyCredentials = []byte("bootstrap.credentials")

// Credentials returns the cached account-service credentials, nil if none.
func (db *DB) Credentials() ([]byte, error) {
	var out []byte
	err := db.view(func(t *txn) error {
		if v := t.meta.Get(keyCredentials); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return out, nil
}

// SetCredentials caches account-service credentials durably; nil removes them.
func (db *DB) SetCredentials(b []byte) error {
	err := db.update(func(t *txn) error {
		if b == nil {
			return t.meta.Delete(keyCredentials)
		}
		return t.meta.Put(keyCredentials, b)
	})
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}
