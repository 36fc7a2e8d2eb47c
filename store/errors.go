package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Errors that callers branch on. Every error the package returns wraps at
// most one of them; test with errors.Is.
var (
	// ErrLocked means another process (normally another edge-agent) holds
	// the database file. Open returns it after Options.LockTimeout.
	ErrLocked = errors.New("store is locked")

	// ErrCorrupt means the file, or a record in it, failed an integrity
	// check. The error text names the file and what to do: move the file
	// aside and start again with an empty store; the broker redelivers only
	// the messages that were never acknowledged.
	ErrCorrupt = errors.New("store file is corrupt")

	// ErrFull means Append could not stay within Options.RetainRecords or
	// Options.RetainBytes because every record it could drop is still
	// pending. Nothing of the batch was written; the caller stops
	// acknowledging until records marked handled (Change.Handled) make room.
	ErrFull = errors.New("store is full of pending records")

	// ErrNotFound means no record has the requested sequence number (it was
	// never assigned, or retention dropped it).
	ErrNotFound = errors.New("record not found")

	// ErrClosed means the DB was used after Close.
	ErrClosed = errors.New("store is closed")
)

// TooLargeError is Append's refusal of a pending message that alone is
// larger than Options.RetainBytes: no amount of waiting makes room for it.
// Nothing of the batch was written.
type TooLargeError struct {
	Index int   // the message's index in the batch
	Size  int64 // its topic and payload bytes
	Bound int64 // Options.RetainBytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message %d of the batch (%d bytes) is larger than the store's retain_bytes (%d) and cannot be kept pending",
		e.Index, e.Size, e.Bound)
}

// Disk-full errors are not wrapped in a sentinel of ours: Append returns
// them wrapped so that errors.Is(err, syscall.ENOSPC) and
// errors.Is(err, bbolt errors.ErrMaxSizeReached) hold, and the caller retries
// later.

// errnoError keeps an error's text and adds an errno for errors.Is.
type errnoError struct {
	err   error
	errno syscall.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.err, e.errno} }

// keepNoSpace makes errors.Is(err, syscall.ENOSPC) hold for a full disk.
// bbolt v1.5.0's grow() formats the truncate/fsync error with %s, which
// drops the errno (db.go); the write path itself keeps it.
func keepNoSpace(err error) error {
	if err == nil || errors.Is(err, syscall.ENOSPC) {
		return err
	}
	if strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		return &errnoError{err: err, errno: syscall.ENOSPC}
	}
	return err
}
