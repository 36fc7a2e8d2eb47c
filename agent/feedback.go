package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

const codeNoFeedback = "no_feedback"

// relayFaults are the relays whose feedback did not follow, with why. The
// dispatcher is its one writer; status reads it.
type relayFaults struct {
	mu sync.Mutex
	m  map[string]string
}

// set records (msg != "") or clears a relay's fault and says whether any
// relay is faulty now.
func (f *relayFaults) set(name, msg string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if msg == "" {
		delete(f.m, name)
	} else {
		if f.m == nil {
			f.m = map[string]string{}
		}
		f.m[name] = msg
	}
	return len(f.m) > 0
}

func (f *relayFaults) get(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[name]
}

// summary is every fault on one line, for last_error.
func (f *relayFaults) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, m := range f.m {
		s = append(s, m)
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

// confirm waits for a relay's feedback input to follow the state it was
// just driven to. Meanwhile input changes are handled as they come (their
// presses' toggles wait until after). A relay with no feedback input is
// confirmed at once. When the input does not follow in time, the relay is
// marked faulty (status, fault LED), a relay switched on is switched off
// again by the agent (cause feedback, an event), and the answer is
// no_feedback. A later switch that its input follows clears the fault.
func (d *dispatcher) confirm(ctx context.Context, name string, st relay.State) *cmdError {
	rc, ok := d.relayCfg[name]
	if !ok || rc.Feedback == "" {
		return nil
	}
	timeout := time.NewTimer(rc.FeedbackTimeout)
	defer timeout.Stop()
	for {
		if in, ok := d.inputState.get(rc.Feedback); ok && in.Active == st.On {
			if d.faults.get(name) != "" {
				d.log.Info("relay feedback follows again; fault cleared", "relay", name, "input", rc.Feedback)
				d.setFault(name, "")
			}
			return nil
		}
		select {
		case c := <-d.inputCh:
			d.onInput(ctx, c, true)
			continue
		case <-timeout.C:
		case <-ctx.Done():
			return nil // stopping: the next start shows the input's state
		}
		break
	}
	state := "off"
	if st.On {
		state = "on"
	}
	msg := fmt.Sprintf("relay %q was switched %s but its feedback input %q did not follow within %s: check the relay's contacts and the feedback wiring",
		name, state, rc.Feedback, rc.FeedbackTimeout)
	d.log.Error("relay feedback missing", "relay", name, "on", st.On, "input", rc.Feedback, "within", rc.FeedbackTimeout)
	d.setFault(name, msg)
	if st.On {
		d.switchOff(ctx, name, causeFeedback, "")
	}
	return &cmdError{Code: codeNoFeedback, Message: msg}
}

func (d *dispatcher) setFault(name, msg string) {
	faulty := d.faults.set(name, msg)
	if d.faultLED != nil {
		d.faultLED(faulty)
	}
}

// switchOff switches a relay off by the agent's own decision (cause): the
// off state is recorded before the line moves, and an event says so once
// it moved. It reports whether the relay is off.
func (d *dispatcher) switchOff(ctx context.Context, name, cause, input string) bool {
	cur, err := d.bank.State(name)
	if err != nil {
		return false
	}
	if !cur.On {
		return true
	}
	now := d.now()
	st := relay.State{On: false, Since: now}
	if !d.apply(ctx, store.Change{Relays: map[string]store.RelayState{name: store.RelayState(st)}}) {
		return false
	}
	if err := d.bank.Drive(name, st); err != nil {
		d.log.Error("relay did not switch off", "relay", name, "cause", cause, "err", err)
		d.apply(ctx, store.Change{Relays: map[string]store.RelayState{name: store.RelayState(cur)}})
		return false
	}
	d.log.Info("relay switched off by the agent", "relay", name, "cause", cause)
	d.switched(name, cause, true, false)
	d.relaySwitched(ctx, name, false, now, cause, input)
	return true
}
