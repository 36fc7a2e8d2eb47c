package store

import (
	"encoding/binary"
	"fmt"
)

// OutMsg is a reply waiting for the broker's PUBACK.
type OutMsg struct {
	ID      uint64
	Topic   string
	Payload []byte
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
