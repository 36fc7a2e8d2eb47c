package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// RelayState is a relay's last commanded state.
type RelayState struct {
	On       bool
	Since    time.Time // when it last changed
	Deadline time.Time // when it switches off by itself; zero = never
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

// flagOn marks a relay that is on.
const flagOn = 1 << 0

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
