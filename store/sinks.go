package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sink cursors: each sink (agent/sinks) hands the inbox to a local program
// in seq order and keeps here the last seq it delivered, so a restart
// resumes after it. The bucket maps the sink's name to its cursor, 8-byte
// big-endian. A cursor is only ever written by SetSinkCursors; retention
// does not look at it (a sink that falls behind retention loses records,
// and says so).

// SinkCursors returns every stored sink cursor by sink name. A sink that
// never stored one is absent.
func (db *DB) SinkCursors() (map[string]uint64, error) {
	m := map[string]uint64{}
	err := db.view(func(t *txn) error {
		return t.sinks.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: cursor of sink %q has %d bytes", ErrCorrupt, k, len(v))
			}
			m[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sink cursors: %w", err)
	}
	return m, nil
}

// SetSinkCursors stores the cursors of several sinks in one transaction (one
// commit, one fsync pair); sinks not in cursors keep theirs. An empty map
// writes nothing. A name must not be empty.
func (db *DB) SetSinkCursors(cursors map[string]uint64) error {
	if len(cursors) == 0 {
		return nil
	}
	for name := range cursors {
		if name == "" {
			return errors.New("set sink cursors: a sink name must not be empty")
		}
	}
	err := db.update(func(t *txn) error {
		for name, seq := range cursors {
			if err := putU64(t.sinks, []byte(name), seq); err != nil {
				return fmt.Errorf("sink %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set sink cursors: %w", err)
	}
	return nil
}
