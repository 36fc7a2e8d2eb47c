package store

import "time"

// Encodings of what Apply writes (relays.go, commands.go, outbox.go): a
// version byte, then fixed fields, then the variable part.
const actionsVersion = 1

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
