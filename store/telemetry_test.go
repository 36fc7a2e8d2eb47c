package store

import "testing"

// An unsent summary is replaced by the next, in the outbox's count too,
// across a reopen; replies queued around it stay.
func TestReplaceTelemetry(t *testing.T) {
	dir := t.TempDir()
	db := openAt(t, dir, nil)
	if _, err := db.Apply(Change{Outbox: []OutMsg{{Topic: "reply", Payload: []byte("r1")}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"t1", "t2"} {
		if err := db.ReplaceTelemetry(OutMsg{Topic: "tele", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir, nil)
	if err := db.ReplaceTelemetry(OutMsg{Topic: "tele", Payload: []byte("t3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(Change{Outbox: []OutMsg{{Topic: "reply", Payload: []byte("r2")}}}); err != nil {
		t.Fatal(err)
	}
	got := outboxPayloads(t, db)
	if want := "r1 t3 r2"; got != want {
		t.Fatalf("outbox %q, want %q", got, want)
	}
	if n, _ := db.OutboxLen(); n != 3 {
		t.Fatalf("outbox count %d, want 3", n)
	}
	// Sent (acknowledged and deleted): the next one replaces nothing.
	msgs, _ := db.Outbox(0, 10)
	if err := db.DeleteOutbox(msgs[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceTelemetry(OutMsg{Topic: "tele", Payload: []byte("t4")}); err != nil {
		t.Fatal(err)
	}
	if got, want := outboxPayloads(t, db), "r1 r2 t4"; got != want {
		t.Fatalf("outbox %q, want %q", got, want)
	}
	if n, _ := db.OutboxLen(); n != 3 {
		t.Fatalf("outbox count %d, want 3", n)
	}
}

func outboxPayloads(t *testing.T, db *DB) string {
	t.Helper()
	msgs, err := db.Outbox(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for i, m := range msgs {
		if i > 0 {
			s += " "
		}
		s += string(m.Payload)
	}
	return s
}
