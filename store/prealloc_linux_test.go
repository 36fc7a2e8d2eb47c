package store

import (
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// hwmAndHole returns the high-water mark in bytes and the first hole in
// the file at or after it (the file's size if none).
func hwmAndHole(t *testing.T, db *DB) (hwm, hole, size int64) {
	t.Helper()
	if err := db.bolt.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	hole, err = unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	if err != nil {
		t.Fatal(err)
	}
	return hwm, hole, st.Size()
}

// TestCommitsWriteIntoAllocatedBlocks: after the first commit, the file has
// blocks (no hole) well beyond bbolt's high-water mark, and small commits
// neither grow the file nor find a hole above the mark, also across steps
// of growth. Without preallocation bbolt's ftruncate leaves holes there.
func TestCommitsWriteIntoAllocatedBlocks(t *testing.T) {
	db := openTest(t, nil)
	mustAppend(t, db, msg("t", 150, false))
	hwm, hole, size := hwmAndHole(t, db)
	if hole < hwm+preallocLow {
		t.Fatalf("after the first commit: first hole at %d, high-water mark %d: want blocks up to at least %d", hole, hwm, hwm+preallocLow)
	}
	for i := range 100 {
		mustAppend(t, db, msg("t", 150, false))
		if h, hole2, size2 := hwmAndHole(t, db); size2 != size || hole2 < h {
			t.Fatalf("commit %d: file size %d → %d, first hole %d below the high-water mark %d", i, size, size2, hole2, h)
		}
	}
	// Grow through several steps in large commits: the allocated space
	// stays ahead of the mark.
	big := make([]Message, 500)
	for i := range big {
		big[i] = msg("t", 1000, false)
	}
	for range 10 {
		mustAppend(t, db, big...)
		if h, hole, _ := hwmAndHole(t, db); hole < h {
			t.Fatalf("first hole %d below the high-water mark %d", hole, h)
		}
	}
}

// TestPreallocationStopsAtMaxSize: zeros are never written beyond MaxSize,
// so that a file at its bound still opens under it.
func TestPreallocationStopsAtMaxSize(t *testing.T) {
	const maxSize = 1 << 20
	dir := t.TempDir()
	db := openAt(t, dir, &Options{MaxSize: maxSize, RetainBytes: 1 << 30, RetainRecords: 1 << 30})
	for range 20 {
		if _, err := db.Append([]Message{msg("t", 20000, false)}); err != nil {
			break // at MaxSize: bbolt refuses, as before
		}
	}
	if _, _, size := hwmAndHole(t, db); size > maxSize {
		t.Fatalf("file is %d bytes, MaxSize %d", size, maxSize)
	}
}
