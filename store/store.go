package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	opts Options
	// pre keeps allocated blocks ahead of bbolt's high-water mark; used
	// only inside write transactions.
	pre *preallocation

	// The journal in front of bbolt (journal.go). wmu serialises Append
	// and Close: it owns jr, lastSeq and the writes to tail. tmu guards
	// tail for readers (tailSnapshot).
	wmu       sync.Mutex
	jr        *journal      // nil: no journal; every commit goes to bbolt
	lastSeq   uint64        // the last Seq assigned, in bbolt or the journal
	inBolt    inboxCounters // bbolt's inbox counters after the last commit of Append's
	tmu       sync.RWMutex
	tail      []tailRec // journaled, not yet in bbolt: Seqs lastSeq-len+1..lastSeq
	tailBytes int       // their encoded bytes
	tailSize  uint64    // their topic+payload bytes, as counted against RetainBytes

	closeOnce sync.Once
	closeErr  error
}

// Buckets. The file's whole layout is here: each bucket is in schema and has
// a field in txn, so a write to any of them (Apply's relay states, command
// ids and outbox with an inbox record's handled mark) commits in one
// transaction, and one fsync pair.
var (
	bucketInbox   = []byte("inbox")   // seq (8-byte big-endian) -> encodeRecord
	bucketPending = []byte("pending") // seq -> empty: records not yet handled
	bucketMeta    = []byte("meta")    // counters and small values (keys below)

	bucketCommands = []byte("commands") // command id -> encodeCommand: executed (or started) commands
	bucketCmdOrder = []byte("cmdorder") // counter -> command id, oldest first: for pruning commands
	bucketRelays   = []byte("relays")   // relay name -> encodeRelay
	bucketOutbox   = []byte("outbox")   // id (8-byte big-endian) -> encodeOutMsg: replies not yet acknowledged
	bucketSinks    = []byte("sinks")    // sink name -> cursor: the last seq delivered (8-byte big-endian)

	// A bucket added here is created in an existing file at its next
	// Open (initSchema), so adding one needs no new layout version.
	schema = [][]byte{bucketInbox, bucketPending, bucketMeta, bucketCommands, bucketCmdOrder, bucketRelays, bucketOutbox, bucketSinks}
)

// Keys in the meta bucket. Counters are 8-byte big-endian.
var (
	keySchema       = []byte("schema")        // layout version of the file
	keyInboxSeq     = []byte("inbox.seq")     // last Seq assigned; never goes back
	keyInboxTotal   = []byte("inbox.total")   // records in inbox
	keyInboxPending = []byte("inbox.pending") // records in pending
	keyInboxBytes   = []byte("inbox.bytes")   // topic+payload bytes in inbox
	keyClientSuffix = []byte("client.suffix") // see ClientSuffix
	keyCmdOrder     = []byte("cmd.order")     // last cmdorder key assigned
	keyCmdCount     = []byte("cmd.count")     // entries in commands
	keyOutboxSeq    = []byte("outbox.seq")    // last outbox id assigned
	keyOutboxCount  = []byte("outbox.count")  // entries in outbox
	keyJournalID    = []byte("journal.id")    // in each journal group: a journal from another store is not replayed
)

// schemaVersion is the layout this code reads and writes. A file with a
// higher one was written by a newer agent: refuse it rather than guess.
const schemaVersion = 1

// Open opens (creating if needed) the store in dir: the directory with mode
// 0750 and the file dir/FileName with mode 0600; an existing file open to
// group or others is chmod-ed back to 0600. opts may be nil.
//
// An existing file is checked first, unless opts.SkipCheck: a damaged one
// fails with an error wrapping ErrCorrupt. A file held by another process
// fails with an error wrapping ErrLocked after opts.LockTimeout.
func Open(dir string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if err := mkdirSynced(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)

	isNew := false
	switch st, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		isNew = true
	case err != nil:
		return nil, err
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	default:
		// bbolt sets the mode only when it creates the file; one copied
		// in, restored from a backup or chmod-ed since is made private
		// again on every open: it holds every notification.
		if err := makePrivate(path, st.Mode()); err != nil {
			return nil, err
		}
		if st.Size() == 0 {
			// Created but never initialised (a crash right after create):
			// bbolt initialises an empty file like a new one.
			isNew = true
		}
	}

	if !isNew && !o.SkipCheck {
		if err := checkFile(path, o.LockTimeout); err != nil {
			return nil, err
		}
	}

	b, err := bolt.Open(path, 0o600, &bolt.Options{
		// bbolt's zero Timeout waits forever for the lock
		// (docs/dependencies.md#bbolt-timeout-0-waits-forever).
		Timeout: o.LockTimeout,
		// The freelist is rebuilt at open instead of written at every
		// commit: one page write less per commit
		// (docs/dependencies.md#bbolt-nofreelistsync).
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Fail cleanly before the map outgrows a 32-bit address space
		// (docs/dependencies.md#bbolt-32-bit-maxsize).
		MaxSize: o.MaxSize,
		// NoSync and NoGrowSync stay false: the promise is fsync.
	})
	if err != nil {
		return nil, openError(path, err)
	}
	if isNew {
		// A brand-new file's directory entry is not durable until the
		// directory is synced (docs/dependencies.md#bbolt-new-file-dir-fsync).
		if err := syncDir(dir); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	db := &DB{bolt: b, path: path, opts: o}
	if err := db.initSchema(); err != nil {
		_ = b.Close()
		return nil, err
	}
	var hwm int64
	_ = b.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
	if db.pre, err = openPreallocation(path, hwm, int64(o.MaxSize)); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.openJournal(dir); err != nil {
		_ = db.pre.close()
		_ = b.Close()
		return nil, err
	}
	return db, nil
}

// openJournal opens the journal and takes in the records it holds beyond
// bbolt's. A store that cannot have one (its id or file cannot be written:
// a full disk) runs without it, committing everything to bbolt; a journal
// that exists but cannot be read fails the open, since it may hold
// acknowledged records.
func (db *DB) openJournal(dir string) error {
	err := db.view(func(t *txn) error {
		c, err := t.inboxCounters()
		db.lastSeq, db.inBolt = c.seq, c
		return err
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", db.path, err)
	}
	id, err := db.journalID(func() uint64 { return rand.Uint64() | 1 })
	if err != nil {
		return nil
	}
	jr, tail, err := openJournal(dir, id, db.lastSeq)
	if err != nil {
		path := filepath.Join(dir, JournalName)
		if st, serr := os.Stat(path); serr == nil && st.Size() > 0 {
			return fmt.Errorf("journal %s: %w; it may hold acknowledged messages: make it readable and writable by the agent's user", path, err)
		}
		return nil
	}
	db.jr, db.tail = jr, tail
	for _, r := range tail {
		db.tailBytes += len(r.val)
		db.tailSize += uint64(r.size)
	}
	db.lastSeq += uint64(len(tail))
	return nil
}

// openError turns bbolt's open errors into ours.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return lockedError(path, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch),
		strings.Contains(err.Error(), "file size too small"):
		return corruptError(path, err.Error())
	}
	return fmt.Errorf("open %s: %w", path, err)
}

func lockedError(path string, cause error) error {
	return fmt.Errorf("another edge-agent process holds %s (%w: %w); stop that process, or give this one another data_dir",
		path, ErrLocked, cause)
}

func corruptError(path, detail string) error {
	return fmt.Errorf("%s: %w (%s); move it aside (mv %s %s.corrupt) and start again: "+
		"the agent starts with an empty store, and the broker redelivers only the messages it never acknowledged",
		path, ErrCorrupt, detail, path, path)
}

// initSchema creates missing buckets. It writes only when something is
// missing, so that a store on a full disk still opens.
func (db *DB) initSchema() error {
	complete := true
	var version uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range schema {
			if tx.Bucket(name) == nil {
				complete = false
			}
		}
		if m := tx.Bucket(bucketMeta); m != nil {
			version = getU64(m, keySchema)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("%s has layout version %d; this edge-agent reads up to %d: run a newer edge-agent",
			db.path, version, schemaVersion)
	}
	if complete && version == schemaVersion {
		return nil
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range schema {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return putU64(tx.Bucket(bucketMeta), keySchema, schemaVersion)
	})
	if err != nil {
		return fmt.Errorf("create buckets in %s: %w", db.path, keepNoSpace(err))
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close releases the file and its lock. It is safe to call more than once;
// later calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		// Move the journal's records into bbolt, so a stopped agent leaves
		// one file to read. If that fails they stay in the journal, and the
		// next Open takes them in again.
		_ = db.checkpoint()
		db.wmu.Lock()
		defer db.wmu.Unlock()
		if err := db.jr.close(); err != nil {
			db.closeErr = err
		}
		db.closeErr = errors.Join(db.closeErr, db.bolt.Close())
		if err := db.pre.close(); db.closeErr == nil {
			db.closeErr = err
		}
	})
	return db.closeErr
}

// txn is one bbolt transaction with the store's buckets at hand. All access
// goes through view and update, so every feature's buckets are opened, and
// checked, in one place.
type txn struct {
	tx       *bolt.Tx
	inbox    *bolt.Bucket
	pending  *bolt.Bucket
	meta     *bolt.Bucket
	commands *bolt.Bucket
	cmdOrder *bolt.Bucket
	relays   *bolt.Bucket
	outbox   *bolt.Bucket
	sinks    *bolt.Bucket
}

func newTxn(tx *bolt.Tx) (*txn, error) {
	t := &txn{
		tx:       tx,
		inbox:    tx.Bucket(bucketInbox),
		pending:  tx.Bucket(bucketPending),
		meta:     tx.Bucket(bucketMeta),
		commands: tx.Bucket(bucketCommands),
		cmdOrder: tx.Bucket(bucketCmdOrder),
		relays:   tx.Bucket(bucketRelays),
		outbox:   tx.Bucket(bucketOutbox),
		sinks:    tx.Bucket(bucketSinks),
	}
	for _, name := range schema {
		if tx.Bucket(name) == nil {
			return nil, fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
		}
	}
	// Inbox and pending keys only ever grow. At bbolt's default fill of 50%
	// a page split leaves the left half-full page behind for good, so an
	// append-only bucket takes twice the disk and twice the pages to walk
	// at open; filled to the brim, each page is written full once.
	t.inbox.FillPercent = appendFill
	t.pending.FillPercent = appendFill
	t.outbox.FillPercent = appendFill
	return t, nil
}

// view runs fn in a read transaction. Keep fn short: on 32-bit ARM a
// writer that must remap waits for open readers
// (docs/dependencies.md#bbolt-32-bit-maxsize).
func (db *DB) view(fn func(*txn) error) error {
	return closedError(db.bolt.View(func(tx *bolt.Tx) error {
		t, err := newTxn(tx)
		if err != nil {
			return err
		}
		return fn(t)
	}))
}

// update runs fn in one write transaction and commits it: one fsync of the
// data pages, one of the meta page (docs/dependencies.md#bbolt-commit-fsyncs).
// If fn or the commit fails, nothing of it is written. bbolt's Update runs fn
// exactly once, unlike Batch (docs/dependencies.md#bbolt-batch-runs-fn-twice).
func (db *DB) update(fn func(*txn) error) error { return db.updateGrowing(0, fn) }

// updateGrowing is update for a transaction that adds about grow bytes.
// Only a small one writes zeros ahead (preallocation): every preallocated
// byte is written twice, once as a zero and once as a page, which pays
// only while a commit grows the file by less than the journal commit it
// saves (docs/flash.md). A large one (a backlog drain, a flood) lets bbolt
// grow the file by itself.
func (db *DB) updateGrowing(grow int, fn func(*txn) error) error {
	return closedError(keepNoSpace(db.bolt.Update(func(tx *bolt.Tx) error {
		if grow < preallocMaxGrow {
			db.pre.ahead(tx.Size())
		}
		t, err := newTxn(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})))
}

func closedError(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// appendFill is the FillPercent for the buckets whose keys only grow: bbolt's
// maximum.
const appendFill = 1.0

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, binary.BigEndian.AppendUint64(make([]byte, 0, 8), v))
}

// makePrivate chmods path, whose mode is mode, to 0600 if group or others
// may read it: the store's files hold every notification.
func makePrivate(path string, mode fs.FileMode) error {
	if mode.Perm()&^0o600 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("%s is mode %04o, open to other users, and cannot be made 0600: %w", path, mode.Perm(), err)
	}
	return nil
}

// mkdirSynced creates dir (0750) if it is missing and makes the new entry
// durable by syncing its parent.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Clean(dir)))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
