package agent

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/led"
)

// conditions are the ways a part can report each state's condition; a
// state may have several reporters (auth: the broker and the account
// service).
// A reporter's later report replaces its earlier one (the broker refused,
// then became unreachable: only the latter holds).
var conditions = []struct {
	name, reporter, state string
	set                   func(h *health)
}{
	{"disk full", "writer", led.StateStorage, func(h *health) { h.setStorage(errors.New("no space left on device")) }},
	{"broker refused the password", "broker", led.StateAuth, func(h *health) { h.setDisconnected(time.Now(), "refused", true) }},
	{"account service refused the login", "account", led.StateAuth, func(h *health) { h.setBootstrap("login refused", true) }},
	{"account service unreachable", "account", led.StateBootstrap, func(h *health) { h.setBootstrap("unreachable", false) }},
	{"broker unreachable", "broker", led.StateConnecting, func(h *health) { h.setDisconnected(time.Now(), "connection refused", false) }},
	{"commands pending", "backlog", led.StateBacklog, func(h *health) { h.setBacklog(3) }},
}

// connectedHealth is a health with nothing wrong: connected, no backlog.
func connectedHealth() *health {
	h := newHealth(time.Now())
	h.setConnected(time.Now())
	return h
}

// TestSeverityTable walks every pair of conditions: the state shown (to
// the LEDs through subscribe, and in the snapshot status reads) is the one
// the status LED's table ranks more severe.
func TestSeverityTable(t *testing.T) {
	order := led.States()
	rank := func(s string) int { return slices.Index(order, s) }
	if rank(led.StateConfig) != 0 || order[len(order)-1] != led.StateOK {
		t.Fatalf("the LED table's order %v does not run from config to ok", order)
	}
	for _, a := range conditions {
		for _, b := range conditions {
			h := connectedHealth()
			var pushed string
			h.subscribe(func(s string) { pushed = s })
			a.set(h)
			b.set(h)
			want := a.state
			if rank(b.state) < rank(a.state) || a.reporter == b.reporter {
				want = b.state
			}
			if got := h.snapshot().State; got != want {
				t.Errorf("%s + %s: state %q, want %q (the table's order: %v)", a.name, b.name, got, want, order)
			}
			if pushed != want {
				t.Errorf("%s + %s: the LEDs were told %q, want %q", a.name, b.name, pushed, want)
			}
		}
	}
}

// Each condition, cleared, gives the state back: nothing sticks.
func TestConditionsClear(t *testing.T) {
	h := connectedHealth()
	for _, c := range conditions {
		c.set(h)
	}
	h.setStorage(nil)
	h.setBootstrap("", false)
	h.setConnected(time.Now())
	h.setBacklog(0)
	if got := h.snapshot().State; got != led.StateOK {
		t.Fatalf("state %q after every condition cleared, want ok", got)
	}
}

// A change is pushed to subscribers at once and only once.
func TestHealthPushesChanges(t *testing.T) {
	h := connectedHealth()
	var got []string
	h.subscribe(func(s string) { got = append(got, s) })
	h.setBacklog(1)
	h.setBacklog(2) // still backlog: no push
	h.setBacklog(0)
	if want := []string{led.StateOK, led.StateBacklog, led.StateOK}; !slices.Equal(got, want) {
		t.Fatalf("pushed %v, want %v", got, want)
	}
}
