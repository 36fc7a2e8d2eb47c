package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	berrors "go.etcd.io/bbolt/errors"
)

func TestDiskFull(t *testing.T) {
	mnt := agenttest.SmallFS(t, 8<<20)
	// A filler file takes most of the space, so that the store fills the
	// rest quickly, and deleting it makes room again.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "data")
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	stored := map[uint64][]byte{} // every record whose Append returned nil
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		batch := make([]Message, 8)
		for j := range batch {
			batch[j] = Message{Topic: "edge/gw1/notify", Payload: bytes.Repeat([]byte(fmt.Sprintf("%d/%d;", i, j)), 2000)}
		}
		seqs, err := db.Append(batch)
		if err != nil {
			full = err
			break
		}
		for j, s := range seqs {
			stored[s] = batch[j].Payload
		}
	}
	if full == nil {
		t.Fatal("the file system never filled up")
	}
	if !errors.Is(full, syscall.ENOSPC) && !errors.Is(full, berrors.ErrMaxSizeReached) {
		t.Fatalf("Append on a full disk: err = %v, want ENOSPC or ErrMaxSizeReached", full)
	}
	t.Logf("full after %d records: %v", len(stored), full)

	// Still usable: reads work, and a failed Append changed nothing.
	if s := mustStats(t, db); s.Total != len(stored) {
		t.Errorf("Stats().Total = %d after the failed Append, want %d", s.Total, len(stored))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopens (and passes the check) while the disk is still full, with
	// every acknowledged record intact.
	db = openAt(t, dir, nil)
	recs := scanAll(t, db)
	if len(recs) != len(stored) {
		t.Errorf("after reopen %d records, want %d", len(recs), len(stored))
	}
	for _, r := range recs {
		if !bytes.Equal(r.Payload, stored[r.Seq]) {
			t.Errorf("record %d differs after reopen", r.Seq)
		}
	}

	// Room again: Append succeeds and numbering goes on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	seqs, err := db.Append([]Message{{Topic: "edge/gw1/notify", Payload: []byte("after")}})
	if err != nil {
		t.Fatalf("Append after freeing space: %v", err)
	}
	if want := uint64(len(stored) + 1); seqs[0] != want {
		t.Errorf("seq after the disk-full episode = %d, want %d", seqs[0], want)
	}
}
