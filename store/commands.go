package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command is what the store remembers of a command id.
type Command struct {
	Seq   uint64 // the inbox record that carried it
	Done  bool   // false: execution started and did not finish (a crash)
	Reply []byte // the reply (if !Done: the reply it gets if it finishes)
}

// CommandChange records command ID.
type CommandChange struct {
	ID string
	Command
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

// flagDone marks a command that finished.
const flagDone = 1 << 1

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
