package agent

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// fakeInput is a line a test moves: each move is an edge, and Read gives
// the last level.
type fakeInput struct {
	high  atomic.Bool
	edges chan hw.Edge
}

func newFakeInput(high bool) *fakeInput {
	f := &fakeInput{edges: make(chan hw.Edge, 64)}
	f.high.Store(high)
	return f
}

func (f *fakeInput) move(high bool, at time.Time) {
	f.high.Store(high)
	f.edges <- hw.Edge{High: high, At: at}
}
func (f *fakeInput) Read() (bool, error)   { return f.high.Load(), nil }
func (f *fakeInput) Edges() <-chan hw.Edge { return f.edges }
func (f *fakeInput) Pin() string           { return "GPIO5" }
func (f *fakeInput) Close() error          { return nil }

// Bounces inside the debounce window are one change, stamped with the
// first edge; a glitch that settles back where it was is none.
func TestDebounceBouncesAreOneChange(t *testing.T) {
	in := newFakeInput(true) // pull-up, active low: released
	line := inputLine{cfg: config.Input{Name: "door", ActiveLow: true, Debounce: 30 * time.Millisecond}, line: in}
	out := make(chan inputChange, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); debounce(ctx, 3, line, false, out, quietLogger()) }()
	defer func() { cancel(); <-done }()

	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	// Pressed: the contact bounces five times within 2 ms and settles low.
	for i, high := range []bool{false, true, false, true, false} {
		in.move(high, t0.Add(time.Duration(i)*400*time.Microsecond))
	}
	c := <-out
	if c.input != 3 || !c.active || !c.at.Equal(t0) {
		t.Errorf("change %+v, want input 3 active at the first edge %v", c, t0)
	}
	// A glitch: up and back down inside the window.
	in.move(true, t0.Add(time.Second))
	in.move(false, t0.Add(time.Second+time.Millisecond))
	// Released for real.
	time.Sleep(100 * time.Millisecond)
	in.move(true, t0.Add(2*time.Second))
	c = <-out
	if c.active || !c.at.Equal(t0.Add(2*time.Second)) {
		t.Errorf("change %+v, want inactive at %v (the glitch made none)", c, t0.Add(2*time.Second))
	}
	select {
	case c := <-out:
		t.Errorf("extra change %+v", c)
	case <-time.After(100 * time.Millisecond):
	}
}

// recLine records the levels a relay line was driven to.
type recLine struct {
	mu     sync.Mutex
	levels []bool
}

func (l *recLine) Set(high bool) error {
	l.mu.Lock()
	l.levels = append(l.levels, high)
	l.mu.Unlock()
	return nil
}

// inputRig is a dispatcher with one relay ("lamp") and one input ("button",
// toggling the lamp), and optionally a feedback input, over a real store.
type inputRig struct {
	t      *testing.T
	db     *store.DB
	d      *dispatcher
	line   *recLine
	inputs chan inputChange
	fault  atomic.Bool
	now    time.Time
	mu     sync.Mutex
}

func newInputRig(t *testing.T, relayCfg config.Relay, inputs ...config.Input) *inputRig {
	t.Helper()
	r := &inputRig{t: t, db: openTestStore(t), line: &recLine{}, inputs: make(chan inputChange, 8),
		now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	relayCfg.Name = "lamp"
	cfgs := []relay.Config{{Name: "lamp", Pin: "GPIO17", MaxOn: relayCfg.MaxOn}}
	bank, err := relay.Open(cfgs, func(string, bool) (relay.Line, error) { return r.line, nil }, relay.BootStates(cfgs, nil, r.clock()))
	if err != nil {
		t.Fatal(err)
	}
	states := &inputStates{}
	for _, in := range inputs {
		states.set(in.Name, InputStatus{Since: r.clock()})
	}
	r.d = &dispatcher{db: r.db, bank: bank, log: quietLogger(), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: r.clock,
		relayCfg: map[string]config.Relay{"lamp": relayCfg}, relayNames: []string{"lamp"},
		inputs: inputs, inputCh: r.inputs, inputState: states, faults: &relayFaults{},
		faultLED: r.fault.Store, eventTopic: "ev",
		offline: offlinePolicy{done: map[string]bool{}}}
	return r
}

func (r *inputRig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *inputRig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// events are the event payloads in the outbox, oldest first, decoded.
func (r *inputRig) events() []map[string]any {
	r.t.Helper()
	out, err := r.db.Outbox(0, 100)
	if err != nil {
		r.t.Fatal(err)
	}
	var evs []map[string]any
	for _, m := range out {
		if m.Topic != "ev" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(m.Payload, &e); err != nil {
			r.t.Fatalf("event %s: %v", m.Payload, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func (r *inputRig) lampOn() bool {
	st, err := r.d.bank.State("lamp")
	if err != nil {
		r.t.Fatal(err)
	}
	return st.On
}

// A press toggles its relay with no broker at all, through the same
// records as a command; a release does nothing; each change and each
// switch is an event, numbered in order, with the press's own time.
func TestPressTogglesRelayOffline(t *testing.T) {
	r := newInputRig(t, config.Relay{}, config.Input{Name: "button", Toggles: "lamp"})
	ctx := context.Background()
	at := r.clock().Add(-5 * time.Millisecond)
	r.d.onInput(ctx, inputChange{input: 0, active: true, at: at}, false)
	if !r.lampOn() {
		t.Fatal("the press did not switch the lamp on")
	}
	r.d.onInput(ctx, inputChange{input: 0, active: false, at: at.Add(100 * time.Millisecond)}, false)
	if !r.lampOn() {
		t.Fatal("the release switched the lamp")
	}
	r.d.onInput(ctx, inputChange{input: 0, active: true, at: at.Add(time.Second)}, false)
	if r.lampOn() {
		t.Fatal("the second press did not switch the lamp off")
	}
	if got := r.line.levels; len(got) != 2 || !got[0] || got[1] {
		t.Errorf("lamp line driven %v, want [true false]", got)
	}
	saved, _ := r.db.Relays()
	if saved["lamp"].On {
		t.Error("the recorded state is on; the lamp is off")
	}
	evs := r.events()
	want := []struct {
		key   string
		val   any
		cause string
	}{{"input", "button", ""}, {"relay", "lamp", "input"}, {"input", "button", ""}, {"input", "button", ""}, {"relay", "lamp", "input"}}
	if len(evs) != len(want) {
		t.Fatalf("%d events %v, want %d", len(evs), evs, len(want))
	}
	for i, w := range want {
		e := evs[i]
		if e[w.key] != w.val || (w.cause != "" && e["cause"] != w.cause) || e["seq"] != float64(i+1) {
			t.Errorf("event %d = %v, want %s=%v cause %q seq %d", i, e, w.key, w.val, w.cause, i+1)
		}
	}
	if evs[0]["at"] != eventTime(at) || evs[0]["active"] != true {
		t.Errorf("first event %v, want active at %s", evs[0], eventTime(at))
	}
	if n, _ := r.db.EventSeq(); n != 5 {
		t.Errorf("recorded event seq %d, want 5", n)
	}
}

// A relay whose feedback input does not follow: the command fails with
// no_feedback, the relay is faulty in status and lights the fault LED, and
// a relay switched on is switched off again by the agent (an event, cause
// feedback). A later switch its input follows clears the fault.
func TestFeedbackMissingFailsCommand(t *testing.T) {
	r := newInputRig(t, config.Relay{Feedback: "contact", FeedbackTimeout: 50 * time.Millisecond},
		config.Input{Name: "contact"})
	ctx := context.Background()
	if _, err := r.db.Append([]store.Message{{Topic: "n", Pending: true,
		Payload: []byte(`{"id":"f1","method":"relay.set","params":{"relay":"lamp","on":true}}`)}}); err != nil {
		t.Fatal(err)
	}
	r.d.drain(ctx)
	reply := lastReply(t, r.db)
	if reply.OK || reply.Error.Code != codeNoFeedback {
		t.Fatalf("reply %+v, want no_feedback", reply)
	}
	if r.lampOn() {
		t.Error("the lamp is still on after its feedback never came")
	}
	if !r.fault.Load() || r.d.faults.get("lamp") == "" {
		t.Error("the relay is not marked faulty / the fault LED is dark")
	}
	evs := r.events()
	if len(evs) != 1 || evs[0]["relay"] != "lamp" || evs[0]["on"] != false || evs[0]["cause"] != causeFeedback {
		t.Errorf("events %v, want the lamp switched off, cause feedback", evs)
	}

	// The contact follows this time (it closes 10 ms after the switch).
	if _, err := r.db.Append([]store.Message{{Topic: "n", Pending: true,
		Payload: []byte(`{"id":"f2","method":"relay.set","params":{"relay":"lamp","on":true}}`)}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		r.inputs <- inputChange{input: 0, active: true, at: time.Now()}
	}()
	r.d.drain(ctx)
	if reply := lastReply(t, r.db); !reply.OK {
		t.Fatalf("reply %+v, want ok", reply)
	}
	if !r.lampOn() || r.fault.Load() || r.d.faults.get("lamp") != "" {
		t.Errorf("lamp on %t, fault LED %t, fault %q: want on, dark, none", r.lampOn(), r.fault.Load(), r.d.faults.get("lamp"))
	}
}

type replyDoc struct {
	ID    string
	OK    bool
	Error struct{ Code, Message string }
}

func lastReply(t *testing.T, db *store.DB) replyDoc {
	t.Helper()
	out, err := db.Outbox(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Topic == "r" {
			var rep replyDoc
			if err := json.Unmarshal(out[i].Payload, &rep); err != nil {
				t.Fatal(err)
			}
			return rep
		}
	}
	t.Fatal("no reply")
	return replyDoc{}
}

// offline = "off" switches the relay off once offline_after has passed
// since the link went, not before, once per spell; "keep" never does.
func TestOfflinePolicySwitchesOffAfterWindow(t *testing.T) {
	r := newInputRig(t, config.Relay{Offline: config.OfflineOff, OfflineAfter: 5 * time.Minute})
	ctx := context.Background()
	if _, err := r.d.setLocal(ctx, relayRequest{name: "lamp", on: true}); err != nil {
		t.Fatal(err)
	}
	connected := true
	r.d.offline.connected = func() bool { return connected }
	r.d.linkChanged(ctx)
	if next := r.d.applyOffline(ctx); !next.IsZero() || !r.lampOn() {
		t.Fatalf("connected: next %v, lamp on %t", next, r.lampOn())
	}
	connected = false
	lost := r.clock()
	r.d.linkChanged(ctx)
	if at, _ := r.db.OfflineSince(); !at.Equal(lost) {
		t.Errorf("recorded offline since %v, want %v", at, lost)
	}
	r.advance(5*time.Minute - time.Millisecond)
	if next := r.d.applyOffline(ctx); !next.Equal(lost.Add(5*time.Minute)) || !r.lampOn() {
		t.Fatalf("before the window: next %v, lamp on %t; want next at %v, on", next, r.lampOn(), lost.Add(5*time.Minute))
	}
	r.advance(time.Millisecond)
	r.d.applyOffline(ctx)
	if r.lampOn() {
		t.Fatal("still on after offline_after")
	}
	evs := r.events()
	if len(evs) != 1 || evs[0]["cause"] != causeOffline || evs[0]["at"] != eventTime(lost.Add(5*time.Minute)) {
		t.Errorf("events %v, want one off, cause offline, at %s", evs, eventTime(lost.Add(5*time.Minute)))
	}
	// Switched on again by hand while still offline: the policy acted
	// once in this spell and leaves it.
	if _, err := r.d.setLocal(ctx, relayRequest{name: "lamp", on: true}); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Hour)
	r.d.applyOffline(ctx)
	if !r.lampOn() {
		t.Error("the policy switched off again in the same spell")
	}
	// Back online: the record is cleared and a new spell counts afresh.
	connected = true
	r.d.linkChanged(ctx)
	if at, _ := r.db.OfflineSince(); !at.IsZero() {
		t.Errorf("offline since %v after reconnecting", at)
	}
}

// A restart inside the window keeps counting from when the link was lost
// (recorded before the restart), not from the restart; a recorded time in
// the future (the clock was set back) counts from the start.
func TestOfflineSinceSurvivesRestart(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	lost := start.Add(-4 * time.Minute)
	if got := offlineSince(lost, start); !got.Equal(lost) {
		t.Errorf("offlineSince(lost 4m ago) = %v, want %v", got, lost)
	}
	if got := offlineSince(time.Time{}, start); !got.Equal(start) {
		t.Errorf("offlineSince(none) = %v, want the start", got)
	}
	if got := offlineSince(start.Add(time.Hour), start); !got.Equal(start) {
		t.Errorf("offlineSince(future) = %v, want the start", got)
	}

	r := newInputRig(t, config.Relay{Offline: config.OfflineOff, OfflineAfter: 5 * time.Minute})
	ctx := context.Background()
	if _, err := r.d.setLocal(ctx, relayRequest{name: "lamp", on: true}); err != nil {
		t.Fatal(err)
	}
	r.d.offline.connected = func() bool { return false }
	r.d.offline.since = offlineSince(r.clock().Add(-4*time.Minute), r.clock())
	r.d.linkChanged(ctx) // still offline: nothing changes
	if next := r.d.applyOffline(ctx); !next.Equal(r.clock().Add(time.Minute)) {
		t.Errorf("next %v, want a minute after the restart", next)
	}
	r.advance(time.Minute)
	r.d.applyOffline(ctx)
	if r.lampOn() {
		t.Error("the lamp is on 5 minutes after the link was lost (1 after the restart)")
	}
}

// A relay the agent switches off at its deadline is an event with the
// cause: max_on when its max_on ran out, for when a command's for did.
func TestDeadlineEventsNameTheirCause(t *testing.T) {
	r := newInputRig(t, config.Relay{MaxOn: time.Hour})
	ctx := context.Background()
	if _, err := r.d.setLocal(ctx, relayRequest{name: "lamp", on: true, dur: time.Minute}); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Minute)
	r.d.expireDeadlines(ctx)
	if _, err := r.d.setLocal(ctx, relayRequest{name: "lamp", on: true}); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Hour)
	r.d.expireDeadlines(ctx)
	evs := r.events()
	if len(evs) != 2 || evs[0]["cause"] != causeFor || evs[1]["cause"] != causeMaxOn || evs[1]["on"] != false {
		t.Errorf("events %v, want off by for, then off by max_on", evs)
	}
}
