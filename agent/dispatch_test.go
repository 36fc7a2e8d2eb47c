package agent

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

type brokenLine struct{ fail bool }

func (l *brokenLine) Set(bool) error {
	if l.fail {
		return errors.New("gpio write: input/output error")
	}
	return nil
}

// TestRelayHardwareErrorReplies: a relay whose line cannot be written gets
// a hardware reply, its recorded state stays what it was, and the id is
// remembered with that reply.
func TestRelayHardwareErrorReplies(t *testing.T) {
	db := openTestStore(t)
	line := &brokenLine{}
	cfgs := []relay.Config{{Name: "pump", Pin: "P1"}}
	boot := relay.BootStates(cfgs, nil, time.Now())
	bank, err := relay.Open(cfgs, func(string, bool) (relay.Line, error) { return line, nil }, boot)
	if err != nil {
		t.Fatal(err)
	}
	line.fail = true
	d := &dispatcher{db: db, bank: bank, log: quietLogger(), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: time.Now}
	seqs, err := db.Append([]store.Message{{Topic: "n", Pending: true,
		Payload: []byte(`{"id":"h1","method":"relay.set","params":{"relay":"pump","on":true}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	d.drain(context.Background())

	out, err := db.Outbox(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d replies, want 1", len(out))
	}
	var rep struct {
		ID    string
		OK    bool
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(out[0].Payload, &rep); err != nil {
		t.Fatalf("reply %s: %v", out[0].Payload, err)
	}
	if rep.ID != "h1" || rep.OK || rep.Error.Code != codeHardware {
		t.Fatalf("reply %s", out[0].Payload)
	}
	if st, _ := bank.State("pump"); st.On {
		t.Fatal("bank says on after a failed write")
	}
	rs, err := db.Relays()
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := rs["pump"]; !ok || st.On {
		t.Fatalf("store has pump %+v (recorded %v) after a failed write, want recorded off", st, ok)
	}
	c, ok, err := db.LookupCommand("h1")
	if err != nil || !ok || !c.Done || c.Seq != seqs[0] {
		t.Fatalf("command %+v %v %v", c, ok, err)
	}
	st, err := db.Stats()
	if err != nil || st.Pending != 0 {
		t.Fatalf("stats %+v, %v: want the record handled", st, err)
	}
}
