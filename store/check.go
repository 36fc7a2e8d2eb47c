package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// checkFile checks an existing database file before it is opened for
// writing, in two steps:
//
//  1. checkPages reads the page tree with ReadAt and bounds-checks every
//     page reference. bbolt follows references through its mmap without
//     bounds checks, and walks the tree at open in a goroutine of its own
//     (to rebuild the freelist, as NoFreelistSync wants): a truncated or
//     scribbled-on file makes it fault (SIGBUS/SIGSEGV) or panic where no
//     recover reaches, and the whole process dies.
//  2. bbolt's own Tx.Check (key order, pages referenced twice, freelist),
//     run on a read-only handle, before anything writes: Check is not safe
//     beside writes (docs/dependencies.md#bbolt-check-is-not-concurrent). Its
//     panics on bad pages come back as
//     errors, and a read-only handle can be closed cleanly afterwards.
//
// Step 1 runs under an exclusive lock, as it may rewrite a torn meta page;
// step 2 under a shared one, which bbolt's read-only handle can share. So a
// running agent's writes are never mistaken for damage.
func checkFile(path string, timeout time.Duration) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f, true, timeout); err != nil {
		if errors.Is(err, errLockTimeout) {
			return lockedError(path, err)
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	repairs, err := checkPages(f, st.Size())
	if err != nil {
		return corruptError(path, err.Error())
	}
	for _, r := range repairs {
		if _, err := f.WriteAt(r.b, r.off); err != nil {
			return fmt.Errorf("repair meta page of %s: %w", path, err)
		}
	}
	if len(repairs) > 0 {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("repair meta page of %s: %w", path, err)
		}
	}
	if err := lockFile(f, false, timeout); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}

	b, err := bolt.Open(path, 0o600, &bolt.Options{
		ReadOnly:       true,
		Timeout:        timeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return openError(path, err)
	}
	if err := b.View(func(tx *bolt.Tx) error { return checkTx(tx) }); err != nil {
		// Leave the read-only handle open: when bbolt's freelist walk
		// finds damage it panics, and the goroutine that found it goes on
		// reading the map, so unmapping now would crash the process. The
		// agent exits on ErrCorrupt; until then this costs a descriptor, a
		// mapping and a shared lock on the damaged file. (checkPages looks
		// for what that walk reports, so this should not happen.)
		return corruptError(path, err.Error())
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("close %s after check: %w", path, err)
	}
	return nil
}

// checkTx runs bbolt's consistency check and returns its first few findings.
func checkTx(tx *bolt.Tx) error {
	var msgs []string
	n := 0
	for err := range tx.Check() {
		// Drain the channel: the checker goroutine blocks until we do.
		if n++; n <= 5 {
			msgs = append(msgs, err.Error())
		}
	}
	if n == 0 {
		return nil
	}
	if n > 5 {
		msgs = append(msgs, fmt.Sprintf("and %d more", n-5))
	}
	return errors.New(strings.Join(msgs, "; "))
}

var errLockTimeout = berrors.ErrTimeout
