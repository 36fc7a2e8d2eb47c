package store

import "time"

// FileName is the database file's name inside the data directory.
const FileName = "edge-agent.db"

// Defaults for the zero values of Options.
const (
	DefaultRetainRecords = 100_000
	DefaultRetainBytes   = 64 << 20 // 64 MiB of topic+payload
	// DefaultMaxSize caps the file well below what a 32-bit process can map
	// in one piece (boltdb #442 failed at 1 GiB on a Pi 2;
	// docs/dependencies.md#bbolt-32-bit-maxsize).
	DefaultMaxSize     = 256 << 20
	DefaultLockTimeout = time.Second
	// DefaultMaxCommands: a broker redelivers within a session, and a cloud
	// that repeats an id ten thousand commands later is not retrying.
	DefaultMaxCommands = 10_000
)

// Options tune Open. A nil *Options, and every zero (or negative) field,
// means the documented default.
type Options struct {
	// RetainRecords bounds the number of inbox records. If zero, 100000.
	RetainRecords int

	// RetainBytes bounds the topic+payload bytes of the inbox records. If
	// zero, 64 MiB. bbolt's pages and free space come on top: keep MaxSize
	// at several times RetainBytes.
	RetainBytes int64

	// MaxSize caps the database file; a commit that would grow it further
	// fails with bbolt's ErrMaxSizeReached and changes nothing. If zero,
	// 256 MiB, which a 32-bit ARM process can map.
	MaxSize int

	// LockTimeout is how long Open waits for another process to release the
	// file lock. If zero, one second (bbolt's own zero would wait forever;
	// docs/dependencies.md#bbolt-timeout-0-waits-forever).
	LockTimeout time.Duration

	// MaxCommands is how many executed command ids are remembered for
	// at-most-once execution; older ones are forgotten oldest first. If
	// zero, 10000.
	MaxCommands int

	// SkipCheck skips the integrity check at Open. For benchmarks only: a
	// corrupt file then surfaces later, possibly as a crash inside bbolt.
	SkipCheck bool
}

// withDefaults returns a copy of o with every zero field set.
func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.RetainRecords <= 0 {
		r.RetainRecords = DefaultRetainRecords
	}
	if r.RetainBytes <= 0 {
		r.RetainBytes = DefaultRetainBytes
	}
	if r.MaxSize <= 0 {
		r.MaxSize = DefaultMaxSize
	}
	if r.MaxCommands <= 0 {
		r.MaxCommands = DefaultMaxCommands
	}
	if r.LockTimeout <= 0 {
		r.LockTimeout = DefaultLockTimeout
	}
	return r
}
