package sim

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/hw"
)

// MaxTransitions is how many transitions the log keeps; older ones are
// dropped first.
const MaxTransitions = 10000

const (
	namedLines = 28 // GPIO0..GPIO27, the Pi header
	chipLines  = 54 // gpiochip0:0..gpiochip0:53
)

// Transition is one level a pin was driven to.
type Transition struct {
	Pin     string
	High    bool
	At      time.Time
	Initial bool // the level the line was made an output with
}

func (t Transition) String() string {
	lvl := "low"
	if t.High {
		lvl = "high"
	}
	if t.Initial {
		lvl += " (initial)"
	}
	return t.Pin + " " + lvl + " at " + t.At.Format(time.RFC3339Nano)
}

// Sim is the simulated board. Use New.
type Sim struct {
	now func() time.Time

	// cbMu is held across a change and its callback, so callbacks see
	// transitions in log order while mu is free for Levels and Transitions.
	cbMu   sync.Mutex
	mu     sync.Mutex
	levels map[string]bool
	inputs map[string]*input // the inputs handed out, by pin
	order  []string          // pins in the order they were handed out
	log    ring
	onT    func(Transition)
}

// New makes a board whose transitions are stamped with now (nil: time.Now).
func New(now func() time.Time) *Sim {
	if now == nil {
		now = time.Now
	}
	return &Sim{now: now, levels: make(map[string]bool), inputs: make(map[string]*input)}
}

var _ hw.Backend = (*Sim)(nil)

// Output makes pin an output at initialHigh.
func (s *Sim) Output(pin string, initialHigh bool) (hw.Output, error) {
	if !exists(pin) {
		return nil, fmt.Errorf("%w %q: the sim board has GPIO0..GPIO%d and gpiochip0:0..gpiochip0:%d",
			hw.ErrNoSuchPin, pin, namedLines-1, chipLines-1)
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	if _, busy := s.levels[pin]; busy {
		s.mu.Unlock()
		return nil, fmt.Errorf("GPIO pin %q: line busy (already in use)", pin)
	}
	s.order = append(s.order, pin)
	t, fn := s.drive(pin, initialHigh, true)
	s.mu.Unlock()
	if fn != nil {
		fn(t)
	}
	return &output{sim: s, pin: pin}, nil
}

// Input makes pin an input whose level starts at its pull's (up: high; down
// and none: low, as if nothing drove the wire). SetInput changes it.
func (s *Sim) Input(pin string, bias hw.Bias) (hw.Input, error) {
	if !exists(pin) {
		return nil, fmt.Errorf("%w %q: the sim board has GPIO0..GPIO%d and gpiochip0:0..gpiochip0:%d",
			hw.ErrNoSuchPin, pin, namedLines-1, chipLines-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.levels[pin]; busy {
		return nil, fmt.Errorf("GPIO pin %q: line busy (already in use)", pin)
	}
	in := &input{sim: s, pin: pin, edges: make(chan hw.Edge, hw.EdgeBuffer)}
	s.order = append(s.order, pin)
	s.levels[pin] = bias == hw.BiasUp
	s.inputs[pin] = in
	return in, nil
}

// SetInput drives the input on pin to a level, as a wire would. A change of
// level is an edge on the input's channel, stamped with the board's clock;
// the same level again is none. It fails if pin is not an input handed out.
func (s *Sim) SetInput(pin string, high bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.inputs[pin]
	if !ok {
		return fmt.Errorf("sim: GPIO pin %q is not an input in use (inputs: %s)", pin, s.inputList())
	}
	if s.levels[pin] == high {
		return nil
	}
	s.levels[pin] = high
	// Sent under s.mu, which Close takes too: never on a closed channel.
	select {
	case in.edges <- hw.Edge{High: high, At: s.now()}:
	default: // the consumer is behind: dropped, it re-Reads the level
	}
	return nil
}

func (s *Sim) inputList() string {
	var p []string
	for pin := range s.inputs {
		p = append(p, pin)
	}
	if len(p) == 0 {
		return "none"
	}
	sort.Strings(p)
	return strings.Join(p, ", ")
}

type input struct {
	sim   *Sim
	pin   string
	edges chan hw.Edge
}

func (in *input) Read() (bool, error) {
	s := in.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inputs[in.pin] != in {
		return false, fmt.Errorf("read GPIO pin %q: input closed", in.pin)
	}
	return s.levels[in.pin], nil
}

func (in *input) Edges() <-chan hw.Edge { return in.edges }

func (in *input) Pin() string { return in.pin }

func (in *input) Close() error {
	s := in.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inputs[in.pin] != in {
		return nil
	}
	delete(s.inputs, in.pin)
	delete(s.levels, in.pin)
	s.order = slices.DeleteFunc(s.order, func(p string) bool { return p == in.pin })
	close(in.edges)
	return nil
}

// Describe names the backend and its lines, and the pins in use.
func (s *Sim) Describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := fmt.Sprintf("sim: simulated board, lines GPIO0..GPIO%d and gpiochip0:0..gpiochip0:%d, no hardware is driven",
		namedLines-1, chipLines-1)
	if len(s.order) > 0 {
		d += "; in use: " + strings.Join(s.order, ", ")
	}
	return d
}

// Levels is the current level of each pin handed out, outputs and inputs
// (true = high).
func (s *Sim) Levels() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, len(s.levels))
	for k, v := range s.levels {
		m[k] = v
	}
	return m
}

// Pins lists the pins handed out, sorted.
func (s *Sim) Pins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := append([]string(nil), s.order...)
	sort.Strings(p)
	return p
}

// Transitions is a copy of the log of levels outputs were driven to, oldest
// first. Inputs are not in it: their edges go to their channel.
func (s *Sim) Transitions() []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.all()
}

// OnTransition sets fn to be called synchronously, in order, for every later
// transition (nil: none). fn may call Levels and Transitions but must not
// drive a line of the same Sim (that would deadlock).
func (s *Sim) OnTransition(fn func(Transition)) {
	s.mu.Lock()
	s.onT = fn
	s.mu.Unlock()
}

// drive sets and logs a level; s.mu is held. It returns the transition and
// the callback to call once s.mu is released.
func (s *Sim) drive(pin string, high, initial bool) (Transition, func(Transition)) {
	t := Transition{Pin: pin, High: high, At: s.now(), Initial: initial}
	s.levels[pin] = high
	s.log.add(t)
	return t, s.onT
}

func (s *Sim) set(pin string, high bool) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	t, fn := s.drive(pin, high, false)
	s.mu.Unlock()
	if fn != nil {
		fn(t)
	}
}

type output struct {
	sim *Sim
	pin string
}

func (o *output) Set(high bool) error {
	o.sim.set(o.pin, high)
	return nil
}

func (o *output) Pin() string { return o.pin }

// exists reports whether the sim board has pin.
func exists(pin string) bool {
	if chip, off, ok := hw.ParsePin(pin); ok {
		return chip == 0 && off < chipLines && pin == "gpiochip0:"+strconv.Itoa(off)
	}
	n, ok := strings.CutPrefix(pin, "GPIO")
	if !ok {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i >= 0 && i < namedLines && n == strconv.Itoa(i)
}

// ring is a bounded log of transitions.
type ring struct {
	buf   []Transition
	start int // index of the oldest entry once full
}

func (r *ring) add(t Transition) {
	if len(r.buf) < MaxTransitions {
		r.buf = append(r.buf, t)
		return
	}
	r.buf[r.start] = t
	r.start = (r.start + 1) % MaxTransitions
}

func (r *ring) all() []Transition {
	out := make([]Transition, 0, len(r.buf))
	out = append(out, r.buf[r.start:]...)
	return append(out, r.buf[:r.start]...)
}
