package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/store"
)

// An oversize message through a real broker: acknowledged, stored as a
// marker with its topic, size and first bytes, counted in status; the
// messages after it are stored as usual and the agent stays connected.
func TestOversizeMessageStoredAsMarker(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = relaysConfig
	r.writeConfig(map[string]string{"max_message_size": `"64KiB"`})
	r.startAgent()
	r.waitConnected()
	pub := r.publisher("cloud-big")

	big := append([]byte(`{"id":"huge","method":"relay.set","params":{"relay":"pump","on":true},"pad":"`), bytes.Repeat([]byte("x"), 5<<20)...)
	big = append(big, `"}`...)
	if err := agenttest.PublishQoS1(pub, r.notifyTopic(), big, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	r.send(pub, "after the big one")
	st := r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.Inbox.Total >= 2 && s.Outbox.Pending == 0 })
	if st.Ingest == nil || st.Ingest.Oversize != 1 || st.Ingest.Refused != 1 {
		t.Errorf("status ingest %+v: want oversize 1, refused 1", st.Ingest)
	}
	if !st.Connected || st.State != "ok" {
		t.Errorf("after an oversize message: connected %v, state %s", st.Connected, st.State)
	}
	if st.Relays["pump"].On {
		t.Error("an oversize command switched the relay")
	}
	recs, err := r.export()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	m := recs[0]
	if !m.Oversize || m.Size != int64(len(big)) || m.Topic != r.notifyTopic() || m.Payload == nil || !strings.HasPrefix(*m.Payload, `{"id":"huge"`) || len(*m.Payload) > 1024 {
		t.Errorf("marker record: oversize %v size %d topic %q payload %d bytes", m.Oversize, m.Size, m.Topic, len(deref(m.Payload)))
	}
	if recs[1].Payload == nil || *recs[1].Payload != "after the big one" {
		t.Errorf("record after the marker: %+v", recs[1])
	}
	if code, out, _ := cli("inbox", "show", fmt.Sprint(m.Seq), "-config", r.cfgPath); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("size:        %d bytes, over max_message_size: only the first 256 are stored", len(big))) {
		t.Errorf("inbox show of the marker: exit %d\n%s", code, out)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// A retained command is stored and refused, never executed: neither when it
// arrives on the first subscription, nor after a restart with an empty
// store (the documented recovery from a damaged database), when the broker
// sends it again.
func TestRetainedCommandNeverRuns(t *testing.T) {
	r := newCommandRig(t)
	pub := r.publisher("cloud-retain")
	tok := pub.Publish(r.notifyTopic(), 1, true, []byte(`{"id":"ret-1","method":"relay.set","params":{"relay":"lamp","on":true}}`))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish retained: %v", tok.Error())
	}
	rep := r.replies()
	p := r.startAgent()
	r.waitConnected()
	check := func(when string) {
		t.Helper()
		st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.Inbox.Total >= 1 && s.Inbox.Pending == 0 })
		if st.Relays["lamp"].On {
			t.Fatalf("%s: a retained relay.set switched the lamp", when)
		}
		recs, err := r.export()
		if err != nil || len(recs) != 1 || !recs[0].Retained {
			t.Fatalf("%s: records %+v, %v: want the retained message stored once, marked retained", when, recs, err)
		}
	}
	check("first subscription")
	if got := rep.wait("ret-1"); errCode(got) != "bad_command" {
		t.Fatalf("reply to a retained command: %v", got)
	}
	p.stop(10 * time.Second)

	// The damaged-database recovery: the store moved aside.
	db := filepath.Join(r.dataDir(), store.FileName)
	if err := os.Rename(db, db+".corrupt"); err != nil {
		t.Fatal(err)
	}
	r.startAgent()
	r.waitConnected()
	check("after a restart with an empty store")
}
