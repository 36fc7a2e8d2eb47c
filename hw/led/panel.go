package led

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/hw"
)

// LEDs are the panel's LEDs; any may be nil (absent).
type LEDs struct {
	Status, Activity, Fault *hw.Switch
}

// Names of the LEDs in Panel.Patterns.
const (
	NameStatus   = "status"
	NameActivity = "activity"
	NameFault    = "fault"
)

const (
	iStatus = iota
	iActivity
	iFault
	nLEDs
)

var ledNames = [nLEDs]string{NameStatus, NameActivity, NameFault}

// Pattern names Panel.Patterns reports besides the state names.
const (
	ShowOn       = "on"
	ShowOff      = "off"
	ShowFlash    = "flash"
	ShowIdentify = "identify"
	ShowTest     = "test" // Panel.Play is playing every pattern
)

// Panel plays the agent's state on its LEDs. Use NewPanel; all methods are
// safe for concurrent use.
type Panel struct {
	clock Clock
	leds  [nLEDs]*hw.Switch

	wake         chan struct{} // cap 1: "look at the requests"
	flashPending atomic.Bool   // Flash was called since the panel last looked
	syncc        chan chan struct{}
	lend         chan loan // Panel.Play borrows the LEDs
	playing      atomic.Bool
	done         chan struct{}
	stopped      chan struct{}
	closeOnce    sync.Once

	mu        sync.Mutex
	wantState int           // index in byState
	identSeq  uint64        // bumped by every Identify call
	identFor  time.Duration // of the last Identify call
	fault     bool          // SetFault: a fault the state does not show
	shown     [nLEDs]string // what each LED shows now (Patterns)
	err       error
}

// NewPanel starts the one goroutine that owns l and shows "connecting" (the
// agent is starting) until SetState says otherwise. A nil clock is the real
// one. Close stops it.
func NewPanel(l LEDs, clock Clock) *Panel {
	if clock == nil {
		clock = RealClock()
	}
	p := &Panel{
		clock:     clock,
		leds:      [nLEDs]*hw.Switch{l.Status, l.Activity, l.Fault},
		wake:      make(chan struct{}, 1),
		syncc:     make(chan chan struct{}),
		lend:      make(chan loan),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
		wantState: stateIndex(StateConnecting),
	}
	e := &engine{p: p, state: -1, out: outputs{leds: p.leds}}
	// The first look happens here, so the LEDs show the state as soon as
	// NewPanel returns.
	e.step(clock.Now())
	go e.run()
	return p
}

// SetState shows state (a name from States) on the status and fault LEDs.
// Setting the state already shown changes nothing; a new state starts its
// pattern from the beginning. An unknown name is ignored and reported by Err.
func (p *Panel) SetState(state string) {
	i := stateIndex(state)
	p.mu.Lock()
	if i < 0 {
		p.err = fmt.Errorf("led: unknown state %q", state)
	} else {
		p.wantState = i
	}
	p.mu.Unlock()
	p.poke()
}

// Show is SetState, and returns the patterns as of that state: the status
// and fault LEDs show it (unless identify or the test holds them) from the
// goroutine's next step, a moment later, so a status document built from
// the returned map never says one state beside an LED showing another. It
// does not wait for the goroutine, which may be lent to Play.
func (p *Panel) Show(state string) map[string]string {
	p.SetState(state)
	m := p.Patterns()
	if i := stateIndex(state); i >= 0 {
		if s, ok := m[NameStatus]; ok && s != ShowIdentify && s != ShowTest {
			m[NameStatus] = byState[i].Name
		}
		if s, ok := m[NameFault]; ok && s != ShowIdentify && s != ShowTest {
			m[NameFault] = ShowOff
			if FaultOn(byState[i].Name) || p.faultSet() {
				m[NameFault] = ShowOn
			}
		}
	}
	return m
}

// SetFault lights the fault LED whatever the state (true) or leaves it to
// the state again (false): a relay whose feedback did not follow is a fault
// a technician must see, while the status LED goes on telling the
// connection's state.
func (p *Panel) SetFault(on bool) {
	p.mu.Lock()
	changed := p.fault != on
	p.fault = on
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

func (p *Panel) faultSet() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Flash flashes the activity LED for one message: FlashOn lit, then at least
// FlashGap dark. Calls while a flash is lit are absorbed by it; one call
// during the dark gap makes the next flash start when the gap ends. So a
// flood of messages shows as a 10 Hz blink, never as a stuck-on LED, and a
// message after a quiet spell always shows. Flash does not block or
// allocate.
func (p *Panel) Flash() {
	if p.leds[iActivity] == nil || p.flashPending.Load() {
		return // cheap path for a burst: a flash is already on its way
	}
	if p.flashPending.CompareAndSwap(false, true) {
		p.poke()
	}
}

// Identify makes all LEDs blink together (IdentifyPattern) for d from now,
// then go back to the current state, its pattern starting afresh. A new call
// replaces the running one; d <= 0 ends it.
func (p *Panel) Identify(d time.Duration) {
	p.mu.Lock()
	p.identSeq++
	p.identFor = d
	p.mu.Unlock()
	p.poke()
}

// Patterns is what each present LED shows now, by LED name ("status",
// "activity", "fault"): the status LED a state name; the activity LED "flash"
// while a flash is lit, else "off"; the fault LED "on" or "off"; every LED
// "identify" during Identify, "test" during Play, and "off" after Close.
func (p *Panel) Patterns() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]string, nLEDs)
	for i, sw := range p.leds {
		if sw != nil {
			m[ledNames[i]] = p.shown[i]
		}
	}
	return m
}

// Err is the last error: an LED that could not be written, or an unknown
// state passed to SetState. nil if there was none.
func (p *Panel) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close stops the goroutine and leaves every LED off, its safe state. It is
// safe to call more than once and from several goroutines; later SetState,
// Flash and Identify calls do nothing.
func (p *Panel) Close() {
	p.closeOnce.Do(func() { close(p.done) })
	<-p.stopped
}

// sync returns once the goroutine has looked at every request made before
// the call and at the clock as it is now (a fired timer included), and has
// armed its next timer. Tests use it to step a fake clock deterministically.
func (p *Panel) sync() {
	r := make(chan struct{})
	select {
	case p.syncc <- r:
		<-r
	case <-p.stopped:
	}
}

func (p *Panel) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// flash phases of the activity LED.
const (
	flashIdle = iota
	flashLit
	flashGap
)

// engine is the goroutine's state; only that goroutine touches it.
type engine struct {
	p *Panel

	state      int // index in byState; -1 before the first look
	stateStart time.Time

	identSeq   uint64
	identOn    bool
	identStart time.Time
	identEnd   time.Time

	flash    int
	flashEnd time.Time

	out outputs

	timer   Timer
	timerAt time.Time
}

func (e *engine) run() {
	p := e.p
	defer close(p.stopped)
	var replies []chan struct{}
	for {
		var tc <-chan time.Time
		if e.timer != nil {
			tc = e.timer.C()
		}
		select {
		case <-tc:
		case <-p.wake:
		case r := <-p.syncc:
			replies = append(replies, r)
		case l := <-p.lend:
			e.lent(l)
		case <-p.done:
			e.shutdown()
			return
		}
		e.step(p.clock.Now())
		for _, r := range replies {
			close(r)
		}
		replies = replies[:0]
	}
}

// loan is Panel.Play's request for the LEDs: the goroutine closes ready
// once it has let go of them, and waits until Play closes back.
type loan struct{ ready, back chan struct{} }

// lent hands the LEDs to Panel.Play until it gives them back, then shows the
// current state again from the start of its pattern. Play returns promptly
// once done is closed, so this wait is bounded by Close too.
func (e *engine) lent(l loan) {
	p := e.p
	if e.timer != nil {
		e.timer.Stop()
		e.timer, e.timerAt = nil, time.Time{}
	}
	p.mu.Lock()
	for i := range p.shown {
		p.shown[i] = ShowTest
	}
	p.mu.Unlock()
	close(l.ready)
	<-l.back
	// Play drove the LEDs (and left them off): write each again, restart
	// the state's pattern, drop flashes requested meanwhile.
	now := p.clock.Now()
	e.out.known = [nLEDs]bool{}
	e.stateStart = now
	if e.identOn && !now.Before(e.identEnd) {
		e.identOn = false // ran out during the test
	}
	e.flash = flashIdle
	p.flashPending.Store(false)
}

// step brings the LEDs to what they should show at now and arms the timer
// for the next change. Looking twice at the same instant changes nothing.
func (e *engine) step(now time.Time) {
	p := e.p
	p.mu.Lock()
	want, seq, identFor, fault := p.wantState, p.identSeq, p.identFor, p.fault
	p.mu.Unlock()

	if want != e.state {
		e.state, e.stateStart = want, now
	}
	if seq != e.identSeq {
		e.identSeq = seq
		switch {
		case identFor > 0:
			e.identOn, e.identStart, e.identEnd = true, now, now.Add(identFor)
		case e.identOn:
			e.identOn, e.stateStart = false, now
		}
	}
	if e.identOn && !now.Before(e.identEnd) {
		// Back to the state, its pattern from the start, as of the end.
		e.identOn, e.stateStart = false, e.identEnd
	}

	var on [nLEDs]bool
	var next time.Time
	var shown [nLEDs]string
	if e.identOn {
		lvl, n := identify.at(e.identStart, now)
		on = [nLEDs]bool{lvl, lvl, lvl}
		next = earliest(n, e.identEnd)
		shown = [nLEDs]string{ShowIdentify, ShowIdentify, ShowIdentify}
		// Identify overrides the activity LED: messages meanwhile are absorbed.
		e.flash = flashIdle
		p.flashPending.Store(false)
	} else {
		pat := &byState[e.state]
		on[iStatus], next = pat.at(e.stateStart, now)
		shown[iStatus] = pat.Name

		on[iActivity] = e.stepFlash(now)
		shown[iActivity] = ShowOff
		if on[iActivity] {
			shown[iActivity] = ShowFlash
		}
		if e.flash != flashIdle {
			next = earliest(next, e.flashEnd)
		}

		on[iFault] = FaultOn(pat.Name) || fault
		shown[iFault] = ShowOff
		if on[iFault] {
			shown[iFault] = ShowOn
		}
	}

	err := e.out.drive(on, false)
	p.mu.Lock()
	p.shown = shown
	if err != nil {
		p.err = err
	}
	p.mu.Unlock()
	e.arm(now, next)
}

// stepFlash moves the activity LED's flash along to now and says whether it
// is lit. Deadlines chain from the previous one, not from now.
func (e *engine) stepFlash(now time.Time) bool {
	p := e.p
	for {
		switch e.flash {
		case flashLit:
			if now.Before(e.flashEnd) {
				return true
			}
			// Requests made while lit were shown by this flash.
			p.flashPending.Store(false)
			e.flash, e.flashEnd = flashGap, e.flashEnd.Add(FlashGap)
		case flashGap:
			if now.Before(e.flashEnd) {
				return false
			}
			start := e.flashEnd
			e.flash = flashIdle
			if p.flashPending.Swap(false) {
				e.flash, e.flashEnd = flashLit, start.Add(FlashOn)
			}
		default: // idle
			if !p.flashPending.Swap(false) {
				return false
			}
			e.flash, e.flashEnd = flashLit, now.Add(FlashOn)
		}
	}
}

// outputs writes the LEDs, each only when its level changes.
type outputs struct {
	leds  [nLEDs]*hw.Switch
	known [nLEDs]bool // level is what the LED was last driven to
	level [nLEDs]bool
}

// drive writes the LEDs whose level changed (all of them with force) and
// returns the last write error.
func (o *outputs) drive(on [nLEDs]bool, force bool) error {
	var err error
	for i, sw := range o.leds {
		if sw == nil || (!force && o.known[i] && o.level[i] == on[i]) {
			continue
		}
		if werr := sw.Set(on[i]); werr != nil {
			err = fmt.Errorf("led %s: %w", ledNames[i], werr)
			o.known[i] = false // try again at the next look
			continue
		}
		o.known[i], o.level[i] = true, on[i]
	}
	return err
}

// arm sets the one timer for the next change (none if next is zero).
func (e *engine) arm(now, next time.Time) {
	if e.timer != nil && next.Equal(e.timerAt) {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.timerAt = next
	if !next.IsZero() {
		e.timer = e.p.clock.NewTimer(next.Sub(now))
	}
}

func (e *engine) shutdown() {
	if e.timer != nil {
		e.timer.Stop()
	}
	err := e.out.drive([nLEDs]bool{}, true)
	p := e.p
	p.mu.Lock()
	p.shown = [nLEDs]string{ShowOff, ShowOff, ShowOff}
	if err != nil {
		p.err = err
	}
	p.mu.Unlock()
}

// earliest of two deadlines, a zero one meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}
