package store

import (
	"testing"
	"time"
)

// The event number and the offline mark survive a reopen (a restart), are
// written in the same transaction as the outbox entries they go with, and
// a Change without them leaves them alone.
func TestEventSeqAndOfflineSinceSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openAt(t, dir, nil)
	if n, err := db.EventSeq(); err != nil || n != 0 {
		t.Fatalf("fresh EventSeq = %d, %v", n, err)
	}
	if at, err := db.OfflineSince(); err != nil || !at.IsZero() {
		t.Fatalf("fresh OfflineSince = %v, %v", at, err)
	}
	lost := time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC)
	if _, err := db.Apply(Change{EventSeq: 7, Offline: &lost, Outbox: []OutMsg{{Topic: "e", Payload: []byte("{}")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(Change{Handled: nil}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openAt(t, dir, nil)
	if n, _ := db.EventSeq(); n != 7 {
		t.Errorf("EventSeq after reopen = %d, want 7", n)
	}
	if at, _ := db.OfflineSince(); !at.Equal(lost) {
		t.Errorf("OfflineSince after reopen = %v, want %v", at, lost)
	}
	// Connected again: the mark goes.
	if _, err := db.Apply(Change{Offline: &time.Time{}}); err != nil {
		t.Fatal(err)
	}
	if at, _ := db.OfflineSince(); !at.IsZero() {
		t.Errorf("OfflineSince after connecting = %v, want zero", at)
	}
}
