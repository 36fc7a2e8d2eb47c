package led

import (
	"errors"
	"time"

	"github.com/edge-agent/edge-agent/hw"
)

// ErrClosed is returned by Panel.Play on a closed panel.
var ErrClosed = errors.New("led: panel closed")

// ErrBusy is returned by Panel.Play while another Play runs on the panel.
var ErrBusy = errors.New("led: a test is already playing")

// PlayOrder is the order Play shows things in: the states as the table in
// docs/design.md#status-leds lists them (ok first, config last), then
// "activity" (the activity LED flashing as for messages) and "identify" (all
// LEDs blinking together).
func PlayOrder() []string {
	return []string{StateOK, StateBacklog, StateConnecting, StateAuth, StateBootstrap, StateStorage, StateConfig,
		activityDemo.Name, identify.Name}
}

// Look is how name (a state, "activity" or "identify") looks on the LEDs,
// in the words of the table in docs/design.md#status-leds; "" for an unknown
// name.
func Look(name string) string {
	switch name {
	case activityDemo.Name:
		return activityDemo.Look
	case identify.Name:
		return identify.Look
	}
	if i := stateIndex(name); i >= 0 {
		return byState[i].Look
	}
	return ""
}

// Play is `edge-agent led test` on LEDs no Panel owns: for each name of
// PlayOrder it calls announce (if not nil) and then shows it for each: a
// state on the status LED and the fault LED as a Panel would; "activity" on
// the activity LED alone (a 50 ms flash every 500 ms); "identify" on all of
// them. It returns when done, every LED off, with the first LED write error
// (it plays on regardless). A nil clock is the real one. On LEDs a running
// Panel owns, use Panel.Play.
func Play(l LEDs, clock Clock, each time.Duration, announce func(state string)) error {
	if clock == nil {
		clock = RealClock()
	}
	return play([nLEDs]*hw.Switch{l.Status, l.Activity, l.Fault}, clock, each, announce, nil)
}

// Play is Play on the panel's own LEDs: the panel lends them for the test
// and then shows its current state again, the pattern from its start. It
// blocks until done. Requests made meanwhile (SetState, Identify) take
// effect afterwards; flashes are absorbed. Close cuts a test short.
func (p *Panel) Play(each time.Duration, announce func(state string)) error {
	return p.PlayUntil(nil, each, announce)
}

// PlayUntil is Play that a close of stop also cuts short (nil: only
// Close does): a daemon that is stopping ends a running `led test`
// without closing the panel under it.
func (p *Panel) PlayUntil(stop <-chan struct{}, each time.Duration, announce func(state string)) error {
	if !p.playing.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer p.playing.Store(false)
	l := loan{ready: make(chan struct{}), back: make(chan struct{})}
	select {
	case p.lend <- l:
	case <-p.stopped:
		return ErrClosed
	}
	defer close(l.back)
	<-l.ready // the goroutine has let go of the LEDs until l.back closes
	cut := p.done
	if stop != nil {
		either, finished := make(chan struct{}), make(chan struct{})
		defer close(finished)
		go func() {
			defer close(either)
			select {
			case <-stop:
			case <-p.done:
			case <-finished:
			}
		}()
		cut = either
	}
	return play(p.leds, p.clock, each, announce, cut)
}

// play shows PlayOrder on leds; a close of stop cuts it short.
func play(leds [nLEDs]*hw.Switch, clock Clock, each time.Duration, announce func(string), stop <-chan struct{}) error {
	out := outputs{leds: leds}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	defer func() { keep(out.drive([nLEDs]bool{}, true)) }()
	for _, name := range PlayOrder() {
		if announce != nil {
			announce(name)
		}
		start := clock.Now()
		end := start.Add(each)
		for now := start; now.Before(end); now = clock.Now() {
			var on [nLEDs]bool
			var next time.Time
			switch name {
			case activityDemo.Name:
				on[iActivity], next = activityDemo.at(start, now)
			case identify.Name:
				lvl, n := identify.at(start, now)
				on, next = [nLEDs]bool{lvl, lvl, lvl}, n
			default:
				pat := &byState[stateIndex(name)]
				on[iStatus], next = pat.at(start, now)
				on[iFault] = FaultOn(name)
			}
			keep(out.drive(on, false))
			if !sleep(clock, now, earliest(next, end), stop) {
				return first
			}
		}
	}
	return first
}

// sleep waits on clock until until; false if stop closed first.
func sleep(clock Clock, now, until time.Time, stop <-chan struct{}) bool {
	t := clock.NewTimer(until.Sub(now))
	select {
	case <-t.C():
		return true
	case <-stop:
		t.Stop()
		return false
	}
}
