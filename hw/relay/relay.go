// Package relay is the gateway's relays: named outputs with an on/off state,
// interlock groups, an automatic off after `for` or max_on, and a state
// after boot chosen by configuration (power_on).
//
// What it promises: two relays of one interlock group are never on
// together, not even for an instant (turning one on while another is on is
// refused with ErrInterlocked); a relay line becomes an output already at
// its boot level, never passing through the other one; the logical state is
// kept in software and a line is never read back
// (docs/dependencies.md#periph-read-on-an-output).
//
// A Bank is not safe for concurrent mutation: one goroutine (the agent's
// dispatcher) owns it and serialises every change, which is also what makes
// the interlock hold. States may be read from anywhere.
package relay

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/hw"
)

// Errors a caller branches on.
var (
	ErrUnknownRelay = errors.New("unknown relay")
	ErrInterlocked  = errors.New("interlocked")
)

// InterlockError says which relay of the group holds the interlock; it
// matches ErrInterlocked with errors.Is.
type InterlockError struct{ Relay, On, Group string }

func (e *InterlockError) Error() string {
	return fmt.Sprintf("%q is on, and %q shares its interlock group %q", e.On, e.Relay, e.Group)
}

// Is makes errors.Is(err, ErrInterlocked) hold.
func (e *InterlockError) Is(target error) bool { return target == ErrInterlocked }

// PowerOn policies.
const (
	PowerOnOff     = "off"
	PowerOnOn      = "on"
	PowerOnRestore = "restore"
)

// Config is one relay.
type Config struct {
	Name      string
	Pin       string
	ActiveLow bool
	PowerOn   string        // off | on | restore
	MaxOn     time.Duration // > 0: never on longer than this
	Interlock string        // group; "" = none
}

// State is a relay's logical state.
type State struct {
	On       bool
	Since    time.Time
	Deadline time.Time // switches off by itself then; zero = never
}

// Line is one GPIO output line; high is the electrical level.
type Line interface {
	Set(high bool) error
}

// Opener makes pin an output at initialHigh in one call.
type Opener func(pin string, initialHigh bool) (Line, error)

type relay struct {
	cfg  Config
	line Line
}

// Bank is the set of configured relays.
type Bank struct {
	relays map[string]*relay
	names  []string

	mu     sync.Mutex // guards states for readers; only the owner writes
	states map[string]State
}

// BootStates decides each relay's state at start from its power_on policy
// and the states saved before the restart (nil if none): on → on (with a
// max_on deadline from now), off → off, restore → the saved state, except
// that a deadline that passed while the agent was down means off.
func BootStates(cfgs []Config, saved map[string]State, now time.Time) map[string]State {
	out := make(map[string]State, len(cfgs))
	for _, c := range cfgs {
		prev, had := saved[c.Name]
		var st State
		switch c.PowerOn {
		case PowerOnOn:
			st = State{On: true, Since: now}
			if c.MaxOn > 0 {
				st.Deadline = now.Add(c.MaxOn)
			}
		case PowerOnRestore:
			if had && prev.On && (prev.Deadline.IsZero() || prev.Deadline.After(now)) {
				st = prev
			} else {
				st = State{On: false, Since: now}
				if had && !prev.On {
					st.Since = prev.Since
				}
			}
		default:
			st = State{On: false, Since: now}
		}
		if had && prev.On == st.On && !prev.Since.IsZero() {
			st.Since = prev.Since // unchanged across the restart
		}
		out[c.Name] = st
	}
	return out
}

// Open makes every relay's line an output at the level of its state in
// boot (from BootStates), each in one call, so no relay glitches at start.
func Open(cfgs []Config, open Opener, boot map[string]State) (*Bank, error) {
	b := &Bank{relays: map[string]*relay{}, states: map[string]State{}}
	for _, c := range cfgs {
		st := boot[c.Name]
		line, err := open(c.Pin, hw.Level(st.On, c.ActiveLow))
		if err != nil {
			return nil, fmt.Errorf("relay %q: %w", c.Name, err)
		}
		b.relays[c.Name] = &relay{cfg: c, line: line}
		b.names = append(b.names, c.Name)
		b.states[c.Name] = st
	}
	sort.Strings(b.names)
	return b, nil
}

// States returns a copy of every relay's state.
func (b *Bank) States() map[string]State {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]State, len(b.states))
	for k, v := range b.states {
		out[k] = v
	}
	return out
}

// State returns one relay's state.
func (b *Bank) State(name string) (State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.states[name]
	if !ok {
		return State{}, fmt.Errorf("%w: no relay named %q", ErrUnknownRelay, name)
	}
	return st, nil
}

// Plan computes the state that switching name on or off would give, without
// changing anything: the caller persists it, then Drives it. on with
// forDur > 0 sets a deadline; max_on caps any deadline. Turning a relay on
// while another relay of its interlock group is on fails with
// ErrInterlocked.
func (b *Bank) Plan(name string, on bool, forDur time.Duration, now time.Time) (State, error) {
	r, ok := b.relays[name]
	if !ok {
		return State{}, fmt.Errorf("%w: no relay named %q", ErrUnknownRelay, name)
	}
	b.mu.Lock()
	cur := b.states[name]
	var other string
	if on && r.cfg.Interlock != "" {
		for _, n := range b.names {
			o := b.relays[n]
			if n != name && o.cfg.Interlock == r.cfg.Interlock && b.states[n].On {
				other = n
				break
			}
		}
	}
	b.mu.Unlock()
	if other != "" {
		return State{}, &InterlockError{Relay: name, On: other, Group: r.cfg.Interlock}
	}
	st := State{On: on, Since: now}
	if on && cur.On {
		st.Since = cur.Since // already on: a new deadline, not a new start
	} else if !on && !cur.On {
		st.Since = cur.Since
	}
	if on {
		if forDur > 0 {
			st.Deadline = now.Add(forDur)
		}
		if r.cfg.MaxOn > 0 {
			limit := st.Since.Add(r.cfg.MaxOn)
			if st.Deadline.IsZero() || st.Deadline.After(limit) {
				st.Deadline = limit
			}
		}
	}
	return st, nil
}

// Drive sets the relay's line to st and records st. On a hardware error the
// recorded state is left as it was.
func (b *Bank) Drive(name string, st State) error {
	r, ok := b.relays[name]
	if !ok {
		return fmt.Errorf("%w: no relay named %q", ErrUnknownRelay, name)
	}
	if err := r.line.Set(hw.Level(st.On, r.cfg.ActiveLow)); err != nil {
		return fmt.Errorf("relay %q: %w", name, err)
	}
	b.mu.Lock()
	b.states[name] = st
	b.mu.Unlock()
	return nil
}

// NextDeadline returns the earliest deadline of a relay that is on, and
// which relay; ok is false when none is running.
func (b *Bank) NextDeadline() (name string, at time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.names {
		st := b.states[n]
		if st.On && !st.Deadline.IsZero() && (!ok || st.Deadline.Before(at)) {
			name, at, ok = n, st.Deadline, true
		}
	}
	return name, at, ok
}
