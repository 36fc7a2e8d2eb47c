package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// events is a cloud-side subscriber to the event topic with a persistent
// session, so events published while it is away (the broker down) reach
// it when it connects again.
type events struct {
	r    *rig
	opts *mqtt.ClientOptions
	c    mqtt.Client
	mu   sync.Mutex
	got  []map[string]any
}

func (r *rig) events() *events {
	r.t.Helper()
	e := &events{r: r}
	o, err := agenttest.ClientOptions(r.broker.URL, r.pki, "cloud", "cloud-pass", "events-"+r.device)
	if err != nil {
		r.t.Fatal(err)
	}
	o.SetCleanSession(false)
	// Before Connect: a resumed session's messages come before the SUBACK.
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		var v map[string]any
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			r.t.Errorf("event is not JSON: %q", m.Payload())
			return
		}
		e.mu.Lock()
		e.got = append(e.got, v)
		e.mu.Unlock()
	})
	e.opts = o
	e.connect()
	tok := e.c.Subscribe("/sys/"+r.device+"/thing/event", 1, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		r.t.Fatalf("subscribe events: %v", tok.Error())
	}
	r.t.Cleanup(func() { e.c.Disconnect(100) })
	return e
}

func (e *events) connect() {
	e.r.t.Helper()
	c, err := agenttest.Connect(e.opts)
	if err != nil {
		e.r.t.Fatalf("events subscriber: %v", err)
	}
	e.c = c
}

// waitN returns the first n events, waiting up to 20 s.
func (e *events) waitN(n int) []map[string]any {
	e.r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		if len(e.got) >= n {
			out := append([]map[string]any(nil), e.got...)
			e.mu.Unlock()
			return out
		}
		e.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.r.t.Fatalf("%d events within 20 s, want %d: %v", len(e.got), n, e.got)
	return nil
}

// simInput drives an input through the running daemon, as the CLI does,
// and returns the time just before.
func (r *rig) simInput(name, state string) time.Time {
	r.t.Helper()
	before := time.Now()
	if code, _, stderr := cli("sim", "input", name, state, "-config", r.cfgPath); code != 0 {
		r.t.Fatalf("sim input %s %s: exit %d: %s", name, state, code, stderr)
	}
	return before
}

const inputsConfig = `
[[relay]]
name = "lamp"
pin = "GPIO17"

[[input]]
name = "button"
pin = "GPIO5"
pull = "up"
active_low = true
debounce = "20ms"
toggles = "lamp"

[[input]]
name = "door"
pin = "GPIO6"
pull = "up"
active_low = true
`

// With the broker down, a press still toggles its relay (no broker is
// needed) and every change is kept; after the reconnect the events arrive
// in order, numbered, each with the time of its own edge, not of the
// reconnect.
func TestInputEventsWhileOfflineArriveAfterReconnect(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{Persistence: true, Dir: t.TempDir()})
	r.extra = inputsConfig
	r.writeConfig(nil)
	r.startAgent()
	st := r.waitConnected()
	if in, ok := st.Inputs["door"]; !ok || in.Active {
		t.Fatalf("inputs at start %+v, want door inactive (pulled up, active low)", st.Inputs)
	}
	ev := r.events()
	ev.c.Disconnect(100) // its session stays on the broker

	if err := r.broker.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(15*time.Second, func(s agent.Status) bool { return !s.Connected })

	type step struct {
		input, state string
		at           time.Time
	}
	steps := []step{{input: "door", state: "active"}, {input: "button", state: "active"}, {input: "button", state: "inactive"}, {input: "door", state: "inactive"}}
	for i := range steps {
		steps[i].at = r.simInput(steps[i].input, steps[i].state)
		// Each change is seen (debounced) before the next.
		want := steps[i].state == "active"
		r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Inputs[steps[i].input].Active == want })
	}
	st = r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Relays["lamp"].On })
	if st.Connected {
		t.Fatal("connected while the broker is down")
	}
	reconnect := time.Now()
	if err := r.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitConnected()
	ev.connect()

	got := ev.waitN(5)
	want := []struct{ key, name, field string }{
		{"input", "door", "active"}, {"input", "button", "active"}, {"relay", "lamp", "on"},
		{"input", "button", "active"}, {"input", "door", "active"},
	}
	wantVal := []bool{true, true, true, false, false}
	stepOf := []int{0, 1, 1, 2, 3}
	var lastSeq float64
	for i, w := range want {
		e := got[i]
		if e[w.key] != w.name || e[w.field] != wantVal[i] {
			t.Errorf("event %d = %v, want %s %q %s=%t", i, e, w.key, w.name, w.field, wantVal[i])
		}
		seq, _ := e["seq"].(float64)
		if seq <= lastSeq {
			t.Errorf("event %d seq %v after %v: not in order", i, e["seq"], lastSeq)
		}
		lastSeq = seq
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["at"]))
		if err != nil {
			t.Errorf("event %d at %v: %v", i, e["at"], err)
			continue
		}
		if s := steps[stepOf[i]]; at.Before(s.at) || !at.Before(reconnect) {
			t.Errorf("event %d at %v: want the time of its edge (after %v), before the reconnect at %v", i, at, s.at, reconnect)
		}
	}
	if got[2]["cause"] != "input" || got[2]["input"] != "button" {
		t.Errorf("relay event %v, want cause input, input button", got[2])
	}
}

// A relay whose feedback contact does not follow: the command is answered
// no_feedback, the relay is switched off again and shows a fault in
// status, and the fault LED lights; when the contact follows, the next
// command succeeds and the fault clears.
func TestRelayFeedbackMissing(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = `
[leds]
status = "GPIO27"
fault = "GPIO24"

[[relay]]
name = "pump"
pin = "GPIO17"
feedback = "contact"
feedback_timeout = "1s"

[[input]]
name = "contact"
pin = "GPIO6"
pull = "down"
debounce = "10ms"
`
	r.writeConfig(nil)
	r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-feedback")
	r.send(pub, `{"id":"fb-1","method":"relay.set","params":{"relay":"pump","on":true}}`)
	got := rep.wait("fb-1")
	if got["ok"] != false || !strings.Contains(fmt.Sprint(got["error"]), "no_feedback") {
		t.Fatalf("reply %v, want no_feedback", got)
	}
	// The fault LED on while the status LED says ok (once the reply and
	// the event, a moment of backlog, are acknowledged).
	st := r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.LEDs["fault"] == "on" && s.State == "ok" })
	if p := st.Relays["pump"]; p.On || !strings.Contains(p.Fault, "contact") {
		t.Errorf("pump %+v, want off with a fault naming its contact", p)
	}
	if st.State != "ok" || !strings.Contains(st.LastError, "pump") {
		t.Errorf("state %q last_error %q: want ok (the link is fine) and the fault in last_error", st.State, st.LastError)
	}

	// Now the contact follows (wired): the relay closes it.
	r.send(pub, `{"id":"fb-2","method":"relay.set","params":{"relay":"pump","on":true}}`)
	r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Relays["pump"].On })
	r.simInput("contact", "active")
	if got := rep.wait("fb-2"); got["ok"] != true {
		t.Fatalf("reply %v, want ok", got)
	}
	st = r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.LEDs["fault"] == "off" })
	if p := st.Relays["pump"]; !p.On || p.Fault != "" {
		t.Errorf("pump %+v, want on without a fault", p)
	}
}

// offline = "off" switches the relay off once the broker has been gone
// for offline_after, and a restart inside the window keeps counting from
// when the link was lost: the relay goes off at that time, not a full
// window after the restart.
func TestOfflinePolicySurvivesRestart(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{Persistence: true, Dir: t.TempDir()})
	r.extra = `
[[relay]]
name = "heater"
pin = "GPIO18"
power_on = "restore"
offline = "off"
offline_after = "6s"

[[relay]]
name = "fan"
pin = "GPIO19"
power_on = "restore"
`
	r.writeConfig(nil)
	p := r.startAgent()
	r.waitConnected()
	ev := r.events()
	for _, name := range []string{"heater", "fan"} {
		if code, _, stderr := cli("relay", "set", name, "on", "-config", r.cfgPath); code != 0 {
			t.Fatalf("relay set %s on: %s", name, stderr)
		}
	}
	ev.c.Disconnect(100)
	lost := time.Now()
	if err := r.broker.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(15*time.Second, func(s agent.Status) bool { return !s.Connected })
	time.Sleep(2 * time.Second)
	if err, _ := p.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	r.startAgent()
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return !s.Relays["heater"].On })
	off := time.Now()
	if off.Before(lost.Add(6 * time.Second)) {
		t.Errorf("heater off %v after the broker went: before offline_after", off.Sub(lost))
	}
	if !off.Before(restart.Add(6 * time.Second)) {
		t.Errorf("heater off %v after the restart: the window started again at the restart", off.Sub(restart))
	}
	if !st.Relays["fan"].On {
		t.Error("fan (offline = keep) was switched off")
	}
	if err := r.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitConnected()
	ev.connect()
	got := ev.waitN(1)
	if got[0]["relay"] != "heater" || got[0]["on"] != false || got[0]["cause"] != "offline" {
		t.Errorf("event %v, want heater off, cause offline", got[0])
	}
}
