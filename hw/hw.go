package hw

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Output is one GPIO line driven as an output. It is never read back: on
// periph a Read turns the line into an input
// (docs/dependencies.md#periph-read-on-an-output), so callers keep the state
// in software. Implementations are safe for concurrent use.
type Output interface {
	// Set drives the line high or low.
	Set(high bool) error
	// Pin is the pin name as configured ("GPIO17", "gpiochip0:17").
	Pin() string
}

// Bias is an input line's pull resistor.
type Bias int

const (
	BiasNone Bias = iota
	BiasUp
	BiasDown
)

func (b Bias) String() string {
	switch b {
	case BiasNone:
		return "none"
	case BiasUp:
		return "up"
	case BiasDown:
		return "down"
	}
	return "Bias(" + strconv.Itoa(int(b)) + ")"
}

// Edge is one level change of an input line as seen by the kernel (or the sim).
type Edge struct {
	High bool      // the level after the edge
	At   time.Time // wall-clock time of the edge (kernel timestamp where the hardware gives one)
}

// EdgeBuffer is how many edges an Input's channel holds before further ones
// are dropped.
const EdgeBuffer = 64

// Input is one GPIO line requested as an input with edge detection on both
// edges. Implementations are safe for concurrent use.
type Input interface {
	// Read returns the line's current electrical level.
	Read() (high bool, err error)
	// Edges delivers every edge in order. It is buffered (EdgeBuffer); when
	// the consumer falls behind, further edges are dropped, never blocking
	// the reader (the consumer re-Reads the level after its debounce window,
	// so a dropped edge loses no final state). Closed when the input is
	// closed.
	Edges() <-chan Edge
	// Pin is the pin name as configured.
	Pin() string
	// Close releases the line and ends its reader. The pin can be handed
	// out again afterwards. A second Close does nothing.
	Close() error
}

// Backend hands out GPIO lines.
type Backend interface {
	// Output makes pin an output driven at initialHigh in the same request, so
	// the line never shows the other level on the way (no glitch at boot).
	// A pin that does not exist on this board is an error naming it that
	// wraps ErrNoSuchPin. A pin already handed out is an error too.
	Output(pin string, initialHigh bool) (Output, error)
	// Input requests pin as an input with bias and edge detection on both
	// edges. A missing pin wraps ErrNoSuchPin; a pin already handed out (as
	// input or output) is an error naming it.
	Input(pin string, bias Bias) (Input, error)
	// Describe is one line for the start-up log: which driver loaded and
	// which chips/lines it found.
	Describe() string
}

// ErrNoSuchPin is wrapped by Backend.Output and Backend.Input when the board has no such line.
var ErrNoSuchPin = errors.New("no such GPIO pin")

// Level is the electrical level for a logical state: high for on, unless the
// load is wired active-low.
func Level(on, activeLow bool) (high bool) {
	return on != activeLow
}

// Switch is a logical on/off over an Output, with active-low wiring handled
// in software. It keeps no state of its own: it is as concurrency-safe as its
// Output.
type Switch struct {
	out       Output
	activeLow bool
}

// NewSwitch wraps o. With activeLow, on drives the line low.
func NewSwitch(o Output, activeLow bool) *Switch {
	return &Switch{out: o, activeLow: activeLow}
}

// OpenSwitch asks b for pin as an output that starts in the logical state
// initialOn (the level computed with activeLow), and wraps it in a Switch.
func OpenSwitch(b Backend, pin string, activeLow, initialOn bool) (*Switch, error) {
	o, err := b.Output(pin, Level(initialOn, activeLow))
	if err != nil {
		return nil, err
	}
	return NewSwitch(o, activeLow), nil
}

// Set switches the load on or off.
func (s *Switch) Set(on bool) error {
	return s.out.Set(Level(on, s.activeLow))
}

// Pin is the configured pin name of the underlying Output.
func (s *Switch) Pin() string { return s.out.Pin() }

// ParsePin splits a "gpiochipN:OFFSET" pin (decimal N and OFFSET, no sign, no
// spaces) into its chip number and line offset. For anything else, such as a
// line name like "GPIO17", isChipOffset is false and the pin is a name.
func ParsePin(s string) (chip int, offset int, isChipOffset bool) {
	rest, ok := strings.CutPrefix(s, "gpiochip")
	if !ok {
		return 0, 0, false
	}
	n, off, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, 0, false
	}
	c, ok1 := parseDecimal(n)
	o, ok2 := parseDecimal(off)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return c, o, true
}

// parseDecimal accepts only ASCII digits (strconv.Atoi would take "+1").
func parseDecimal(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
