package store

import (
	"errors"
	"maps"
	"math"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func mustSinkCursors(t *testing.T, db *DB) map[string]uint64 {
	t.Helper()
	m, err := db.SinkCursors()
	if err != nil {
		t.Fatalf("SinkCursors: %v", err)
	}
	return m
}

func TestSinkCursors(t *testing.T) {
	dir := t.TempDir()
	db := openAt(t, dir, nil)
	if got := mustSinkCursors(t, db); len(got) != 0 {
		t.Fatalf("new store: cursors %v, want none", got)
	}

	// Several sinks: one transaction, one commit.
	before := db.txid(t)
	want := map[string]uint64{"log": 7, "forwarder": 1 << 40, "max": math.MaxUint64, "zero": 0}
	if err := db.SetSinkCursors(want); err != nil {
		t.Fatal(err)
	}
	if n := db.txid(t) - before; n != 1 {
		t.Errorf("SetSinkCursors of %d sinks took %d commits, want 1", len(want), n)
	}
	if got := mustSinkCursors(t, db); !maps.Equal(got, want) {
		t.Errorf("cursors = %v, want %v", got, want)
	}

	// A later call changes only the sinks it names.
	if err := db.SetSinkCursors(map[string]uint64{"log": 9}); err != nil {
		t.Fatal(err)
	}
	want["log"] = 9

	// Nothing to set writes nothing.
	before = db.txid(t)
	for _, m := range []map[string]uint64{nil, {}} {
		if err := db.SetSinkCursors(m); err != nil {
			t.Errorf("SetSinkCursors(%v): %v", m, err)
		}
	}
	if n := db.txid(t) - before; n != 0 {
		t.Errorf("empty SetSinkCursors made %d commits", n)
	}
	if err := db.SetSinkCursors(map[string]uint64{"": 1, "ok": 2}); err == nil {
		t.Error("an empty sink name was accepted")
	}
	if got := mustSinkCursors(t, db); !maps.Equal(got, want) {
		t.Errorf("after the refused call: cursors = %v, want %v", got, want)
	}

	// Durable across a reopen.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir, nil)
	if got := mustSinkCursors(t, db); !maps.Equal(got, want) {
		t.Errorf("after reopen: cursors = %v, want %v", got, want)
	}

	// Cursors are independent of the inbox: appending and pruning leave them.
	db2 := openTest(t, &Options{RetainRecords: 2})
	if err := db2.SetSinkCursors(map[string]uint64{"s": 1}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mustAppend(t, db2, msg("t", 3, false))
	}
	if got := mustSinkCursors(t, db2); got["s"] != 1 || len(got) != 1 {
		t.Errorf("after appends: cursors = %v, want s=1", got)
	}
}

// A file written before the sinks bucket existed gets it at its next Open,
// keeping everything else.
func TestSinkBucketAddedToOlderFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, msg("a", 10, false), msg("b", 10, true))
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketSinks) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, dir, nil)
	if got := mustSinkCursors(t, db); len(got) != 0 {
		t.Errorf("cursors = %v, want none", got)
	}
	if err := db.SetSinkCursors(map[string]uint64{"log": 2}); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(scanAll(t, db)); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("records after the upgrade: %v, want [1 2]", got)
	}
	if s := mustStats(t, db); s.Pending != 1 {
		t.Errorf("pending = %d, want 1", s.Pending)
	}
}

func TestSinkCursorCorrupt(t *testing.T) {
	db := openTest(t, nil)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSinks).Put([]byte("log"), []byte{1, 2, 3}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SinkCursors(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("SinkCursors on a 3-byte cursor: err = %v, want ErrCorrupt", err)
	}
	// Setting it again repairs it.
	if err := db.SetSinkCursors(map[string]uint64{"log": 5}); err != nil {
		t.Fatal(err)
	}
	if got := mustSinkCursors(t, db); got["log"] != 5 {
		t.Errorf("cursors = %v", got)
	}
}

func TestSinkCursorsAfterClose(t *testing.T) {
	db := openTest(t, nil)
	db.Close()
	if _, err := db.SinkCursors(); !errors.Is(err, ErrClosed) {
		t.Errorf("SinkCursors after Close: %v, want ErrClosed", err)
	}
	if err := db.SetSinkCursors(map[string]uint64{"a": 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetSinkCursors after Close: %v, want ErrClosed", err)
	}
}
