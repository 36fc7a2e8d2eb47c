package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Message is a received notification as the caller hands it to Append.
type Message struct {
	ReceivedAt time.Time
	Topic      string
	Payload    []byte
	Dup        bool // the MQTT DUP flag as received
	Retained   bool // the MQTT RETAIN flag as received
	// Oversize, when > 0, makes this a marker for a message of that many
	// bytes that was too large to take in: Payload holds its first bytes.
	Oversize int64
	// Reply, when set, is queued in the outbox in the same transaction as
	// the record: a refusal decided on arrival is on disk with the message
	// it answers, or neither is.
	Reply *OutMsg
	// Pending marks a message still to be handled (a command to execute);
	// false means it was handled on arrival. Retention never drops a
	// pending record; Apply's Change.Handled clears the mark.
	Pending bool
}

// Record is a stored message.
type Record struct {
	Seq        uint64    // assigned by Append: 1, 2, 3, …; never reused
	ReceivedAt time.Time // in UTC, to the nanosecond; the zero Time if the message had none
	Topic      string
	Payload    []byte // the exact bytes, the caller's to keep
	Dup        bool
	Retained   bool  // the MQTT RETAIN flag as received
	Oversize   int64 // > 0: a marker for a message of this many bytes; Payload is its first bytes
	Pending    bool
}

// Stats describes the inbox.
type Stats struct {
	Total    int   // records stored
	Pending  int   // of which still pending
	Bytes    int64 // topic+payload bytes stored, as bounded by Options.RetainBytes
	FirstSeq uint64
	LastSeq  uint64 // Seq of the oldest and newest stored record; 0 when empty
}

// inboxCounters live in the meta bucket and change in the same transaction
// as the records they count, so Stats needs no scan.
type inboxCounters struct {
	seq, total, pending, bytes uint64
}

func (t *txn) inboxCounters() (inboxCounters, error) {
	var c inboxCounters
	for _, f := range []struct {
		key []byte
		v   *uint64
	}{{keyInboxSeq, &c.seq}, {keyInboxTotal, &c.total}, {keyInboxPending, &c.pending}, {keyInboxBytes, &c.bytes}} {
		v := t.meta.Get(f.key)
		if v == nil {
			continue // a new store
		}
		if len(v) != 8 {
			return c, fmt.Errorf("%w: counter %s has %d bytes", ErrCorrupt, f.key, len(v))
		}
		*f.v = getU64(t.meta, f.key)
	}
	return c, nil
}

func (t *txn) putInboxCounters(c inboxCounters) error {
	for _, f := range []struct {
		key []byte
		v   uint64
	}{{keyInboxSeq, c.seq}, {keyInboxTotal, c.total}, {keyInboxPending, c.pending}, {keyInboxBytes, c.bytes}} {
		if err := putU64(t.meta, f.key, f.v); err != nil {
			return err
		}
	}
	return nil
}

// Append stores msgs in one transaction, one commit and one fsync pair for
// the whole batch (group commit), and returns their Seqs in order. When it
// returns nil every record is on disk; when it returns an error none is, and
// the store is unchanged and still usable.
//
// Retention: after adding, while the inbox holds more than RetainRecords
// records or RetainBytes bytes, the oldest handled records are dropped (a
// handled message of this very batch too, if it alone exceeds the bound).
// Pending records are never dropped: if the bound cannot be met without
// dropping one, Append fails with ErrFull. A pending message that alone is
// larger than RetainBytes could never be stored: Append fails at once with
// ErrTooLarge, naming its index, so the caller can store it otherwise and
// go on with the rest.
//
// A full disk fails with an error for which errors.Is(err, syscall.ENOSPC)
// holds, a file at Options.MaxSize with bbolt's errors.ErrMaxSizeReached;
// both pass once space is freed (retry later; do not acknowledge meanwhile).
func (db *DB) Append(msgs []Message) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	// Encode outside the transaction: the write lock is held for less.
	vals := make([][]byte, len(msgs))
	var add uint64
	for i, m := range msgs {
		size := uint64(len(m.Topic)) + uint64(len(m.Payload))
		if m.Pending && size > uint64(db.opts.RetainBytes) {
			return nil, &TooLargeError{Index: i, Size: int64(size), Bound: db.opts.RetainBytes}
		}
		v, err := encodeRecord(Record{ReceivedAt: m.ReceivedAt, Topic: m.Topic, Payload: m.Payload,
			Dup: m.Dup, Retained: m.Retained, Oversize: m.Oversize})
		if err != nil {
			return nil, fmt.Errorf("append: message %d: %w", i, err)
		}
		vals[i] = v
		add += size
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if seqs, ok := db.appendJournal(msgs, vals, add); ok {
		return seqs, nil
	}
	seqs, err := db.commitDirect(msgs, vals, add)
	if err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}
	return seqs, nil
}

// appendJournal commits a small batch of plain notifications to the
// journal (journal.go) and reports whether it did. A batch that is large,
// holds a pending record or a reply (they must commit with bbolt's other
// buckets), or does not fit goes to bbolt, taking the journaled records
// with it. So does one whose journal write fails: bbolt may still work.
func (db *DB) appendJournal(msgs []Message, vals [][]byte, add uint64) ([]uint64, bool) {
	if db.jr == nil {
		return nil, false
	}
	size := 0
	for i, m := range msgs {
		if m.Pending || m.Reply != nil {
			return nil, false
		}
		size += len(vals[i])
	}
	// Retention is bbolt's (prune): a batch that would take the inbox over
	// a bound goes there. Prune's slack then leaves room for 1/64 of the
	// bound before the next, so a full store journals too.
	if db.inBolt.total+uint64(len(db.tail)+len(msgs)) > uint64(db.opts.RetainRecords) ||
		db.inBolt.bytes+db.tailSize+add > uint64(db.opts.RetainBytes) {
		return nil, false
	}
	if size >= journalDirect || db.tailBytes+size > tailMax {
		return nil, false // before encoding: a backlog drain's large batches come here
	}
	g := db.jr.encodeGroup(db.lastSeq+1, vals)
	if !db.jr.fits(len(g)) {
		return nil, false
	}
	if err := db.jr.write(g); err != nil {
		return nil, false
	}
	seqs := make([]uint64, len(msgs))
	recs := make([]tailRec, len(msgs))
	for i, m := range msgs {
		db.lastSeq++
		seqs[i] = db.lastSeq
		recs[i] = tailRec{seq: db.lastSeq, val: vals[i], size: int64(len(m.Topic) + len(m.Payload))}
	}
	db.tmu.Lock()
	db.tail = append(db.tail, recs...)
	db.tmu.Unlock()
	db.tailBytes += size
	db.tailSize += add
	return seqs, true
}

// commitDirect commits the journaled records and then msgs (with their
// encoded vals and topic+payload bytes add) in one bbolt transaction, and
// empties the journal. The caller holds db.wmu.
func (db *DB) commitDirect(msgs []Message, vals [][]byte, add uint64) ([]uint64, error) {
	tail := db.tail
	seqs := make([]uint64, len(msgs))
	grow := db.tailBytes
	for _, v := range vals {
		grow += len(v)
	}
	var after inboxCounters
	err := db.updateGrowing(grow, func(t *txn) error {
		c, err := t.inboxCounters()
		if err != nil {
			return err
		}
		if len(tail) > 0 && tail[0].seq != c.seq+1 {
			return fmt.Errorf("%w: the journal continues at record %d, the database ends at %d", ErrCorrupt, tail[0].seq, c.seq)
		}
		for _, r := range tail {
			if err := t.inbox.Put(seqKey(r.seq), r.val); err != nil {
				return err
			}
			c.seq = r.seq
			c.total++
			c.bytes += uint64(r.size)
		}
		for i, m := range msgs {
			c.seq++
			k := seqKey(c.seq)
			if err := t.inbox.Put(k, vals[i]); err != nil {
				return err
			}
			if m.Pending {
				if err := t.pending.Put(k, nil); err != nil {
					return err
				}
				c.pending++
			}
			if m.Reply != nil {
				if _, err := t.putOutbox([]OutMsg{*m.Reply}); err != nil {
					return err
				}
			}
			seqs[i] = c.seq
		}
		c.total += uint64(len(msgs))
		c.bytes += add
		if err := t.prune(&c, uint64(db.opts.RetainRecords), uint64(db.opts.RetainBytes)); err != nil {
			return err
		}
		after = c
		return t.putInboxCounters(c)
	})
	if err != nil {
		return nil, err
	}
	db.lastSeq, db.inBolt = after.seq, after
	if len(tail) > 0 {
		// bbolt has them now: the journal starts over. Its old groups hold
		// Seqs bbolt has, so recovery never takes them again.
		db.tmu.Lock()
		db.tail = nil
		db.tmu.Unlock()
		db.tailBytes, db.tailSize = 0, 0
		db.jr.off = 0
	}
	return seqs, nil
}

// prune drops the oldest handled records until the inbox is within both
// bounds, or fails with ErrFull (and drops nothing) if it cannot be.
//
// A commit that goes over a bound by less than 1/pruneSlack of it drops
// down to that much below the bound, not just to it: dropping one record
// per commit rewrites the oldest leaf and its branch pages at every commit
// (two more pages, 8 KiB, per message on flash); dropping 1/64 of the
// bound at once does that once per so many messages. A larger overflow (a
// big batch) drops to the bound, bounds under 64 are kept exactly, and the
// slack never drops the newest record.
func (t *txn) prune(c *inboxCounters, maxRecords, maxBytes uint64) error {
	if c.total <= maxRecords && c.bytes <= maxBytes {
		return nil
	}
	lowRecords, lowBytes := pruneTo(c.total, maxRecords), pruneTo(c.bytes, maxBytes)
	total, size := c.total, c.bytes
	var drop [][]byte
	newest, _ := t.inbox.Cursor().Last()
	cur := t.inbox.Cursor()
	for k, v := cur.First(); k != nil && (total > lowRecords || size > lowBytes); k, v = cur.Next() {
		if t.isPending(k) {
			continue
		}
		if total <= maxRecords && size <= maxBytes && bytes.Equal(k, newest) {
			break // within the bounds; the slack alone never takes the newest
		}
		p, err := parseRecord(v)
		if err != nil {
			return fmt.Errorf("%w: record %x: %w", ErrCorrupt, k, err)
		}
		// Copy the key: deleting while a cursor walks can skip entries, so
		// collect first, delete after.
		drop = append(drop, bytes.Clone(k))
		total--
		size -= uint64(p.size())
	}
	if total > maxRecords || size > maxBytes {
		return fmt.Errorf("%w: %d of %d records (%d bytes) are pending; the bounds are %d records and %d bytes",
			ErrFull, c.pending, total, size, maxRecords, maxBytes)
	}
	for _, k := range drop {
		if err := t.inbox.Delete(k); err != nil {
			return err
		}
	}
	c.total, c.bytes = total, size
	return nil
}

// pruneSlack: prune drops to 1/pruneSlack below a bound it went over.
const pruneSlack = 64

// pruneTo is what prune brings n down to under bound.
func pruneTo(n, bound uint64) uint64 {
	slack := bound / pruneSlack
	if n > bound && n-bound < slack {
		return bound - slack
	}
	return bound
}

// Get returns record seq, or an error wrapping ErrNotFound.
func (db *DB) Get(seq uint64) (Record, error) {
	if t := db.tailSnapshot(); len(t) > 0 && seq >= t[0].seq && seq <= t[len(t)-1].seq {
		return t[seq-t[0].seq].record()
	}
	var r Record
	err := db.view(func(t *txn) error {
		k := seqKey(seq)
		v := t.inbox.Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		r, err = t.record(k, v)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("record %d: %w", seq, err)
	}
	return r, nil
}

// record decodes a stored record; the result owns all its memory.
func (t *txn) record(k, v []byte) (Record, error) {
	r, err := decodeRecord(v)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	r.Seq = getSeq(k)
	r.Pending = t.isPending(k)
	return r, nil
}

// Scan calls fn for every record with Seq > after, oldest first, up to the
// newest record when Scan was called. An error from fn stops the scan and is
// returned as it is.
//
// fn runs outside any transaction: Scan reads in chunks of short
// transactions (docs/dependencies.md#bbolt-32-bit-maxsize), so fn may take its
// time, and a record that retention drops meanwhile is skipped.
func (db *DB) Scan(after uint64, fn func(Record) error) error {
	if after == math.MaxUint64 {
		return nil
	}
	tail := db.tailSnapshot()
	var last uint64
	err := db.view(func(t *txn) error {
		if k, _ := t.inbox.Cursor().Last(); k != nil {
			last = getSeq(k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if err := db.each(after+1, last, fn); err != nil {
		return err
	}
	return eachTail(tailAfter(tail, max(after, last)), fn)
}

// eachTail calls fn for journaled records, oldest first.
func eachTail(tail []tailRec, fn func(Record) error) error {
	for _, r := range tail {
		rec, err := r.record()
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Tail calls fn for the last n records, oldest first.
func (db *DB) Tail(n int, fn func(Record) error) error {
	if n <= 0 {
		return nil
	}
	tail := db.tailSnapshot()
	var first, last uint64
	err := db.view(func(t *txn) error {
		c := t.inbox.Cursor()
		k, _ := c.Last()
		if k == nil {
			return nil
		}
		last = getSeq(k)
		if tail = tailAfter(tail, last); len(tail) >= n {
			return nil
		}
		first = last
		for i := 1; i < n-len(tail); i++ {
			if k, _ = c.Prev(); k == nil {
				break
			}
			first = getSeq(k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if len(tail) >= n {
		return eachTail(tail[len(tail)-n:], fn)
	}
	if first != 0 {
		if err := db.each(first, last, fn); err != nil {
			return err
		}
	}
	return eachTail(tail, fn)
}

// Chunk bounds for each: at least one record per transaction, then up to
// chunkRecords or chunkBytes, whichever comes first. They bound both the
// read transaction's length and the memory a scan holds (a Pi has little).
const (
	chunkRecords = 256
	chunkBytes   = 1 << 20
)

// each calls fn for the records with from <= Seq <= to, oldest first.
func (db *DB) each(from, to uint64, fn func(Record) error) error {
	for from <= to && from != 0 {
		var recs []Record
		err := db.view(func(t *txn) error {
			c := t.inbox.Cursor()
			size := 0
			for k, v := c.Seek(seqKey(from)); k != nil && getSeq(k) <= to; k, v = c.Next() {
				r, err := t.record(k, v)
				if err != nil {
					return err
				}
				recs = append(recs, r)
				if size += len(v); len(recs) >= chunkRecords || size >= chunkBytes {
					break
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		from = recs[len(recs)-1].Seq + 1 // wraps to 0 only after Seq MaxUint64
	}
	return nil
}

// Stats returns the inbox's counters. It reads a few meta values and the
// two ends of the inbox: no scan, whatever the size.
func (db *DB) Stats() (Stats, error) {
	tail := db.tailSnapshot()
	var s Stats
	err := db.view(func(t *txn) error {
		c, err := t.inboxCounters()
		if err != nil {
			return err
		}
		s.Total, s.Pending, s.Bytes = int(c.total), int(c.pending), int64(c.bytes)
		cur := t.inbox.Cursor()
		if k, _ := cur.First(); k != nil {
			s.FirstSeq = getSeq(k)
		}
		if k, _ := cur.Last(); k != nil {
			s.LastSeq = getSeq(k)
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	for _, r := range tailAfter(tail, s.LastSeq) {
		s.Total++
		s.Bytes += r.size
		s.LastSeq = r.seq
		if s.FirstSeq == 0 {
			s.FirstSeq = r.seq
		}
	}
	return s, nil
}

// ClientSuffix returns the stored MQTT client-id suffix. The first call on a
// new store calls draw once and stores its result durably before returning
// it, so the client id stays the same across restarts and the broker keeps
// the session (docs/dependencies.md#paho-persistent-session).
func (db *DB) ClientSuffix(draw func() int) (int, error) {
	var suffix int
	var found bool
	get := func(t *txn) error {
		v := t.meta.Get(keyClientSuffix)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("%w: client suffix has %d bytes", ErrCorrupt, len(v))
		}
		suffix, found = int(int64(binary.BigEndian.Uint64(v))), true
		return nil
	}
	// Read first: the usual case needs no commit (and works on a full disk).
	err := db.view(get)
	if err == nil && !found {
		err = db.update(func(t *txn) error {
			if err := get(t); err != nil || found {
				return err
			}
			suffix = draw()
			return putU64(t.meta, keyClientSuffix, uint64(int64(suffix)))
		})
	}
	if err != nil {
		return 0, fmt.Errorf("client suffix: %w", err)
	}
	return suffix, nil
}

// isPending reports whether seq key k is in the pending bucket. Its values
// are empty, and bbolt's Get can return nil for an empty value (it does
// inside the write transaction that put it), so ask a cursor.
func (t *txn) isPending(k []byte) bool {
	got, _ := t.pending.Cursor().Seek(k)
	return bytes.Equal(got, k)
}

// getSeq reads an inbox key; checkPages and the fixed key size mean a short
// key is corruption, which reads as Seq 0.
func getSeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
