package agentstatus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
)

// Status reads the fields the rigs check from the document the agent
// really writes (agent.Status), so a renamed field fails here rather than
// as a rig's check that never sees its value.
func TestStatusReadsTheAgentsDocument(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	since := until.Add(-time.Hour)
	doc := agent.Status{
		Version: "v1.2.3", State: "backlog", Connected: true, LastError: "broker unreachable", Uptime: "1m0s",
		Inbox:  agent.InboxStatus{Total: 42},
		Relays: map[string]agent.RelayStatus{"pump": {On: true, Until: &until}, "lamp": {}},
		LEDs:   map[string]string{"status": "backlog"},
		Inputs: map[string]agent.InputStatus{"door": {Active: true, Since: since}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "v1.2.3" || st.State != "backlog" || !st.Connected || st.LastError != "broker unreachable" || st.Uptime != "1m0s" || st.Inbox.Total != 42 {
		t.Errorf("scalars: %+v\nfrom %s", st, b)
	}
	if p := st.Relays["pump"]; !p.On || p.Until == nil || !p.Until.Equal(until) {
		t.Errorf("relays.pump = %+v\nfrom %s", p, b)
	}
	if l, ok := st.Relays["lamp"]; !ok || l.On || l.Until != nil {
		t.Errorf("relays.lamp = %+v, %v\nfrom %s", l, ok, b)
	}
	if st.LEDs["status"] != "backlog" {
		t.Errorf("leds = %v", st.LEDs)
	}
	if d := st.Inputs["door"]; !d.Active || d.Since == nil || !d.Since.Equal(since) {
		t.Errorf("inputs.door = %+v\nfrom %s", d, b)
	}
}

func TestWaitAccepts(t *testing.T) {
	asked := 0
	get := func() (Status, error) {
		asked++
		switch {
		case asked == 1:
			return Status{}, errors.New("not up yet")
		case asked < 4:
			return Status{State: "connecting"}, nil
		}
		return Status{State: "ok", Connected: true}, nil
	}
	st, err := Wait(get, time.Millisecond, nil, 10*time.Second, "connected agent", func(s Status) bool { return s.Connected })
	if err != nil || st.State != "ok" || asked != 4 {
		t.Errorf("Wait = %+v, %v after %d asks; want state ok after 4", st, err, asked)
	}
}

func TestWaitGivesUp(t *testing.T) {
	get := func() (Status, error) { return Status{State: "auth", LastError: "CONNACK 5"}, nil }
	_, err := Wait(get, time.Millisecond, nil, 30*time.Millisecond, "connected agent", func(s Status) bool { return s.Connected })
	if err == nil || !strings.Contains(err.Error(), "no connected agent within 30ms") || !strings.Contains(err.Error(), `state auth, connected false, last_error "CONNACK 5"`) {
		t.Errorf("err = %v", err)
	}
	failing := func() (Status, error) { return Status{}, errors.New("ssh: connection refused") }
	_, err = Wait(failing, time.Millisecond, nil, 30*time.Millisecond, "connected agent", func(Status) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "no connected agent within 30ms: ssh: connection refused") {
		t.Errorf("err = %v", err)
	}
}

// A closed gone ends the wait at once, however long d is.
func TestWaitGone(t *testing.T) {
	gone := make(chan struct{})
	close(gone)
	get := func() (Status, error) { return Status{State: "connecting"}, nil }
	done := make(chan error, 1)
	go func() {
		_, err := Wait(get, time.Hour, gone, time.Hour, "connected agent", func(s Status) bool { return s.Connected })
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrGone) {
			t.Errorf("err = %v, want ErrGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait went on after gone was closed")
	}
}
