package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestApplyIsOneTransaction(t *testing.T) {
	db := openTest(t, nil)
	seqs, err := db.Append([]Message{{Topic: "t", Payload: []byte(`{"id":"c1"}`), Pending: true}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids, err := db.Apply(Change{
		Relays:  map[string]RelayState{"pump": {On: true, Since: now, Deadline: now.Add(time.Minute)}},
		Command: &CommandChange{ID: "c1", Command: Command{Seq: seqs[0], Done: true, Reply: []byte(`{"ok":true}`)}},
		Handled: seqs,
		Outbox:  []OutMsg{{Topic: "r", Payload: []byte(`{"ok":true}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("outbox ids %v", ids)
	}
	rel, _ := db.Relays()
	if got := rel["pump"]; !got.On || !got.Since.Equal(now) || !got.Deadline.Equal(now.Add(time.Minute)) {
		t.Fatalf("relay %+v", got)
	}
	c, ok, _ := db.LookupCommand("c1")
	if !ok || !c.Done || c.Seq != seqs[0] || string(c.Reply) != `{"ok":true}` {
		t.Fatalf("command %+v %v", c, ok)
	}
	if st, _ := db.Stats(); st.Pending != 0 {
		t.Fatalf("pending %d after Apply marked it handled", st.Pending)
	}
	out, _ := db.Outbox(0, 10)
	if len(out) != 1 || out[0].Topic != "r" || !bytes.Equal(out[0].Payload, []byte(`{"ok":true}`)) {
		t.Fatalf("outbox %+v", out)
	}
	if n, _ := db.OutboxLen(); n != 1 {
		t.Fatalf("outbox len %d", n)
	}
	if err := db.DeleteOutbox(ids[0], ids[0], 99); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.OutboxLen(); n != 0 {
		t.Fatalf("outbox len %d after delete", n)
	}
	// No deadline round-trips as the zero time.
	db.Apply(Change{Relays: map[string]RelayState{"pump": {On: false, Since: now}}})
	if rel, _ := db.Relays(); !rel["pump"].Deadline.IsZero() || rel["pump"].On {
		t.Fatalf("relay %+v", rel["pump"])
	}
}

func TestApplyFailsWhole(t *testing.T) {
	db := openTest(t, nil)
	// An empty command id fails the transaction: nothing else of it lands.
	_, err := db.Apply(Change{
		Relays:  map[string]RelayState{"pump": {On: true}},
		Command: &CommandChange{ID: ""},
		Outbox:  []OutMsg{{Topic: "r"}},
	})
	if err == nil {
		t.Fatal("Apply with an empty command id succeeded")
	}
	if rel, _ := db.Relays(); len(rel) != 0 {
		t.Fatalf("relay state written by a failed Apply: %v", rel)
	}
	if n, _ := db.OutboxLen(); n != 0 {
		t.Fatal("outbox written by a failed Apply")
	}
}

func TestCommandsPrunedOldestFirst(t *testing.T) {
	db := openTest(t, &Options{MaxCommands: 5})
	for i := 1; i <= 8; i++ {
		if _, err := db.Apply(Change{Command: &CommandChange{ID: fmt.Sprint("c", i), Command: Command{Seq: uint64(i), Done: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Updating a remembered id does not count it twice.
	db.Apply(Change{Command: &CommandChange{ID: "c8", Command: Command{Seq: 8, Done: true}}})
	for i := 1; i <= 8; i++ {
		_, ok, _ := db.LookupCommand(fmt.Sprint("c", i))
		if want := i > 3; ok != want {
			t.Errorf("c%d remembered=%v, want %v", i, ok, want)
		}
	}
}

func TestPendingSeqs(t *testing.T) {
	db := openTest(t, nil)
	seqs, _ := db.Append([]Message{{Pending: true}, {}, {Pending: true}, {Pending: true}})
	markHandled(t, db, seqs[2])
	got, _ := db.PendingSeqs(0, 10)
	if fmt.Sprint(got) != fmt.Sprint([]uint64{seqs[0], seqs[3]}) {
		t.Fatalf("pending %v", got)
	}
	got, _ = db.PendingSeqs(seqs[0], 10)
	if fmt.Sprint(got) != fmt.Sprint([]uint64{seqs[3]}) {
		t.Fatalf("pending after %d: %v", seqs[0], got)
	}
}

func TestCredentialsCache(t *testing.T) {
	dir := t.TempDir()
	db := openAt(t, dir, nil)
	if b, err := db.Credentials(); err != nil || b != nil {
		t.Fatalf("new store: %q %v", b, err)
	}
	if err := db.SetCredentials([]byte(`{"u":"x"}`)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openAt(t, dir, nil)
	if b, _ := db.Credentials(); string(b) != `{"u":"x"}` {
		t.Fatalf("after reopen: %q", b)
	}
	db.SetCredentials(nil)
	if b, _ := db.Credentials(); b != nil {
		t.Fatalf("after delete: %q", b)
	}
}
