package agent

import (
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/hw/led"
)

// health is the one source of truth for the agent's state. Parts report
// conditions as they change (the session its connection and the account
// service, the writer the store, whoever changes the backlog its size);
// one severity table, the status LED's (led.States: config, storage, auth,
// bootstrap, connecting, backlog, ok), turns them into the state that the
// LEDs, `status` and the agent.status reply all show. Nothing polls for
// it: a change is pushed to the subscribers (the panel) as it happens.
//
// A mutex guards it because reports and reads come from many goroutines
// (control-socket connections at arbitrary times) and each is short.
type health struct {
	mu sync.Mutex

	// cause holds, per state name, why that condition holds; a state
	// with no entry does not hold. "connecting" is derived from connected
	// and "backlog" from backlog, so every condition goes through the
	// same table.
	cause map[string]string

	connected bool
	since     time.Time // when connected last changed
	broker    string    // where the session connects (bootstrap can change it)
	connErr   string    // the last connection error, free of secrets
	backlog   int       // pending commands and unacknowledged replies
	connects  int       // connections made since the start, for metrics

	shown   string               // the state last pushed to onState
	onState []func(state string) // called, outside the lock, when the state changes
	onLink  []func()             // called, outside the lock, when connected changes
}

// watchLink calls fn whenever the connection comes or goes. fn must not
// block (a doorbell's poke).
func (h *health) watchLink(fn func()) {
	h.mu.Lock()
	h.onLink = append(h.onLink, fn)
	h.mu.Unlock()
}

// isConnected reports whether the session is connected now.
func (h *health) isConnected() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected
}

func newHealth(now time.Time) *health {
	h := &health{since: now, cause: map[string]string{}}
	h.shown = h.stateLocked()
	return h
}

// subscribe calls fn with the state now and on every change. fn must not
// block (the panel's SetState only pokes its goroutine).
func (h *health) subscribe(fn func(state string)) {
	h.mu.Lock()
	h.onState = append(h.onState, fn)
	state := h.shown
	h.mu.Unlock()
	fn(state)
}

// update runs fn under the lock, then pushes the state if it changed.
func (h *health) update(fn func()) {
	h.mu.Lock()
	wasConnected := h.connected
	fn()
	state := h.stateLocked()
	changed := state != h.shown
	h.shown = state
	subs := h.onState
	var links []func()
	if h.connected != wasConnected {
		links = h.onLink
	}
	h.mu.Unlock()
	if changed {
		for _, f := range subs {
			f(state)
		}
	}
	for _, f := range links {
		f()
	}
}

func (h *health) set(state, cause string) {
	if cause == "" {
		delete(h.cause, state)
	} else {
		h.cause[state] = cause
	}
}

func (h *health) setConnected(now time.Time) {
	h.update(func() {
		if !h.connected {
			h.since = now
			h.connects++
		}
		h.connected, h.connErr = true, ""
		h.set(led.StateAuth+".broker", "")
	})
}

// setDisconnected records a lost or failed connection and why. auth marks a
// refusal that retrying with the same credentials will not cure.
func (h *health) setDisconnected(now time.Time, cause string, auth bool) {
	h.update(func() {
		if h.connected {
			h.since = now
		}
		h.connected, h.connErr = false, cause
		if auth {
			h.set(led.StateAuth+".broker", cause)
		} else {
			h.set(led.StateAuth+".broker", "")
		}
	})
}

func (h *health) setBroker(url string) {
	h.update(func() { h.broker = url })
}

// setBootstrap records why the account service gave no credentials ("" =
// it did); refused marks a refusal of the login itself (state auth).
func (h *health) setBootstrap(cause string, refused bool) {
	h.update(func() {
		h.set(led.StateBootstrap, "")
		h.set(led.StateAuth+".bootstrap", "")
		switch {
		case cause == "":
		case refused:
			h.set(led.StateAuth+".bootstrap", cause)
		default:
			h.set(led.StateBootstrap, cause)
		}
	})
}

// setStorage records that the store cannot write (nil: it can again).
func (h *health) setStorage(err error) {
	h.update(func() {
		if err == nil {
			h.set(led.StateStorage, "")
		} else {
			h.set(led.StateStorage, err.Error())
		}
	})
}

// setBacklog records how many commands and replies are still pending.
func (h *health) setBacklog(n int) {
	h.update(func() { h.backlog = n })
}

// holds says whether the condition shown as state holds, and why.
func (h *health) holds(state string) (bool, string) {
	switch state {
	case led.StateConnecting:
		return !h.connected, h.connErr
	case led.StateBacklog:
		return h.backlog > 0, ""
	case led.StateAuth:
		// Two reporters: the broker's refusal and the account service's.
		if c := h.cause[led.StateAuth+".broker"]; c != "" {
			return true, c
		}
		c := h.cause[led.StateAuth+".bootstrap"]
		return c != "", c
	}
	c := h.cause[state]
	return c != "", c
}

// stateLocked is the severity table at work: the first state, most severe
// first, whose condition holds; ok when none does.
func (h *health) stateLocked() string {
	for _, s := range led.States() {
		if ok, _ := h.holds(s); ok {
			return s
		}
	}
	return led.StateOK
}

// healthSnapshot is a copy of health taken under its lock.
type healthSnapshot struct {
	State     string
	Connected bool
	Broker    string
	Since     time.Time
	// LastError is the cause of the most severe condition that has one,
	// or the last connection error.
	LastError string
}

func (h *health) snapshot() healthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := healthSnapshot{State: h.stateLocked(), Connected: h.connected, Broker: h.broker, Since: h.since}
	for _, st := range led.States() {
		if ok, c := h.holds(st); ok && c != "" {
			s.LastError = c
			break
		}
	}
	if s.LastError == "" {
		s.LastError = h.connErr
	}
	return s
}

// reconnects is how many connections the session made after the first.
func (h *health) reconnects() int {
	h.mu.Lock()
	n := max(h.connects, 1) - 1
	h.mu.Unlock()
	return n
}
