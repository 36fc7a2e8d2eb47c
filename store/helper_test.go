package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTest opens a store in a new t.TempDir(); see openAt.
func openTest(t testing.TB, opts *Options) *DB {
	t.Helper()
	return openAt(t, t.TempDir(), opts)
}

// openAt opens the store in dir. At cleanup it checks the file (bbolt's
// Tx.Check, and the inbox counters against a recount) and closes it; a
// test that closes the store itself skips the check (the next Open runs it).
func openAt(t testing.TB, dir string, opts *Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := db.verify(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("verify %s: %v", db.Path(), err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close %s: %v", db.Path(), err)
		}
	})
	return db
}

// verify runs bbolt's check and recounts the inbox against its counters.
func (db *DB) verify() error {
	return db.view(func(t *txn) error {
		if err := checkTx(t.tx); err != nil {
			return err
		}
		c, err := t.inboxCounters()
		if err != nil {
			return err
		}
		var got inboxCounters
		err = t.inbox.ForEach(func(k, v []byte) error {
			p, err := parseRecord(v)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			got.total++
			got.bytes += uint64(p.size())
			if s := getSeq(k); s > c.seq {
				return fmt.Errorf("record %d above the last assigned seq %d", s, c.seq)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = t.pending.ForEach(func(k, _ []byte) error {
			if t.inbox.Get(k) == nil { // inbox values are never empty
				return fmt.Errorf("pending record %x is not in the inbox", k)
			}
			got.pending++
			return nil
		})
		if err != nil {
			return err
		}
		got.seq = c.seq
		if got != c {
			return fmt.Errorf("counters %+v, recount %+v", c, got)
		}
		return nil
	})
}

// txid returns bbolt's current transaction id: it grows by one per commit.
func (db *DB) txid(t testing.TB) int {
	t.Helper()
	var id int
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// scanAll returns every record, oldest first.
func scanAll(t testing.TB, db *DB) []Record {
	t.Helper()
	var recs []Record
	if err := db.Scan(0, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return recs
}

func seqsOf(recs []Record) []uint64 {
	s := make([]uint64, len(recs))
	for i, r := range recs {
		s[i] = r.Seq
	}
	return s
}

func mustAppend(t testing.TB, db *DB, msgs ...Message) []uint64 {
	t.Helper()
	seqs, err := db.Append(msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seqs
}

func mustStats(t testing.TB, db *DB) Stats {
	t.Helper()
	s, err := db.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func msg(topic string, payloadLen int, pending bool) Message {
	return Message{ReceivedAt: time.Unix(1700000000, 0), Topic: topic, Payload: make([]byte, payloadLen), Pending: pending}
}

// markHandled clears the pending mark of seqs as the agent does: Apply with
// only Change.Handled.
func markHandled(t *testing.T, db *DB, seqs ...uint64) {
	t.Helper()
	if _, err := db.Apply(Change{Handled: seqs}); err != nil {
		t.Fatal(err)
	}
}
