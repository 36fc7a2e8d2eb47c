package periph

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/edge-agent/edge-agent/hw"
)

// ErrNoGPIO is wrapped by New on a machine without a GPIO character device.
var ErrNoGPIO = errors.New(`no GPIO character device found (/dev/gpiochip*): is this a Raspberry Pi? use [hw] backend = "sim" to run without hardware`)

// Backend hands out real GPIO lines. Use New. It is safe for concurrent use.
type Backend struct {
	byName   func(name string) gpio.PinIO
	chips    []chip
	describe string
	openIn   inputOpener

	mu      sync.Mutex
	claimed map[gpio.PinIO]string // real pin -> the pin name it was asked for by
}

var _ hw.Backend = (*Backend)(nil)

// chip is what the backend needs of a GPIO chip, real or fake.
type chip struct {
	name, label string // "gpiochip0", "pinctrl-bcm2711"
	lines       int
	line        func(offset int) gpio.PinIO // 0 <= offset < lines
}

var (
	initOnce  sync.Once
	initState *driverreg.State
	initErr   error
)

// New loads periph's drivers (once per process: chips must never be closed
// and reopened, docs/dependencies.md#periph-never-close-a-chip) and returns
// a backend over the GPIO chips found. On a machine without /dev/gpiochip*
// it fails with an error wrapping ErrNoGPIO.
func New() (*Backend, error) {
	initOnce.Do(func() { initState, initErr = driverreg.Init() })
	if initErr != nil {
		return nil, fmt.Errorf("periph: load drivers: %w", initErr)
	}
	drivers := describeDrivers(initState)
	// On a machine without GPIO, Init succeeds with the driver skipped and no
	// chips (docs/dependencies.md#periph-init-without-gpio). On other systems
	// gpioioctl makes a dummy chip.
	if len(gpioioctl.Chips) == 0 || !haveChardev {
		if devs, _ := filepath.Glob("/dev/gpiochip*"); haveChardev && len(devs) > 0 {
			// They exist but none opened: most likely permissions.
			return nil, fmt.Errorf("GPIO character devices %s exist but none could be opened (does this user have access, e.g. the gpio group?) (periph: %s)",
				strings.Join(devs, " "), drivers)
		}
		return nil, fmt.Errorf("%w (periph: %s)", ErrNoGPIO, drivers)
	}
	var chips []chip
	var desc []string
	for _, c := range gpioioctl.Chips {
		chips = append(chips, chip{
			name:  c.Name(),
			label: c.Label(),
			lines: c.LineCount(),
			line: func(offset int) gpio.PinIO {
				if l := c.ByNumber(offset); l != nil {
					return l
				}
				return nil // an untyped nil, not a nil *GPIOLine in an interface
			},
		})
		desc = append(desc, fmt.Sprintf("%s %q %d lines", c.Name(), c.Label(), c.LineCount()))
	}
	d := "periph: " + drivers + "; chips: " + strings.Join(desc, ", ")
	return newBackend(gpioreg.ByName, chips, d, openChardevInput), nil
}

// newBackend is New with its lookups and its way to open inputs injected,
// for tests over fake pins.
func newBackend(byName func(string) gpio.PinIO, chips []chip, describe string, openIn inputOpener) *Backend {
	return &Backend{byName: byName, chips: chips, describe: describe, openIn: openIn, claimed: make(map[gpio.PinIO]string)}
}

// Describe is one line for the start-up log: the drivers periph loaded or
// skipped, and the chips with their labels and line counts.
func (b *Backend) Describe() string { return b.describe }

// Output makes pin an output at initialHigh in one kernel request (see the
// package comment) and holds the line for the life of the process.
func (b *Backend) Output(pin string, initialHigh bool) (hw.Output, error) {
	p, err := b.lookup(pin)
	if err != nil {
		return nil, err
	}
	line := realPin(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	if by, busy := b.claimed[line]; busy {
		return nil, fmt.Errorf("GPIO pin %q: line busy (already in use as %q)", pin, by)
	}
	d, err := open(p, initialHigh)
	if err != nil {
		return nil, fmt.Errorf("GPIO pin %q: make output: %w", pin, err)
	}
	b.claimed[line] = pin
	return &output{pin: pin, d: d}, nil
}

// Input requests pin as an input with bias and edges on both sides
// (openChardevInput); Close gives the line back.
func (b *Backend) Input(pin string, bias hw.Bias) (hw.Input, error) {
	p, err := b.lookup(pin)
	if err != nil {
		return nil, err
	}
	line := realPin(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	if by, busy := b.claimed[line]; busy {
		return nil, fmt.Errorf("GPIO pin %q: line busy (already in use as %q)", pin, by)
	}
	src, err := b.openIn(p, bias)
	if err != nil {
		return nil, fmt.Errorf("GPIO pin %q: make input: %w", pin, err)
	}
	b.claimed[line] = pin
	in := &input{pin: pin, src: src, edges: make(chan hw.Edge, hw.EdgeBuffer), done: make(chan struct{})}
	in.release = func() {
		b.mu.Lock()
		delete(b.claimed, line)
		b.mu.Unlock()
	}
	go func() {
		defer close(in.done)
		src.run(in.edges)
	}()
	return in, nil
}

// lookup resolves a pin name; a missing pin wraps hw.ErrNoSuchPin.
func (b *Backend) lookup(pin string) (gpio.PinIO, error) {
	if n, off, ok := hw.ParsePin(pin); ok {
		name := "gpiochip" + strconv.Itoa(n)
		for _, c := range b.chips {
			if c.name != name {
				continue
			}
			// Check the range here: gpioioctl's ByNumber logs when it is out.
			if off >= c.lines {
				return nil, fmt.Errorf("%w %q: %s (%s) has lines 0..%d", hw.ErrNoSuchPin, pin, c.name, c.label, c.lines-1)
			}
			if p := c.line(off); p != nil {
				return p, nil
			}
			break
		}
		return nil, fmt.Errorf("%w %q: no such line; chips here: %s", hw.ErrNoSuchPin, pin, b.chipList())
	}
	// gpioreg.ByName returns nil when there is no such line
	// (docs/dependencies.md#periph-init-without-gpio).
	if p := b.byName(pin); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q: no line of that name (names are as the device tree gives them, e.g. \"GPIO17\"; unnamed lines are \"gpiochipN:OFFSET\"); chips here: %s",
		hw.ErrNoSuchPin, pin, b.chipList())
}

func (b *Backend) chipList() string {
	if len(b.chips) == 0 {
		return "none"
	}
	var s []string
	for _, c := range b.chips {
		s = append(s, fmt.Sprintf("%s (%s, %d lines)", c.name, c.label, c.lines))
	}
	return strings.Join(s, ", ")
}

// realPin follows gpioreg aliases (and other wrappers) to the pin itself.
func realPin(p gpio.PinIO) gpio.PinIO {
	for {
		r, ok := p.(gpio.RealPin)
		if !ok {
			return p
		}
		p = r.Real()
	}
}

// driver writes a level to a line that is already an output.
type driver interface {
	set(high bool) error
}

// open makes p an output at initialHigh. A gpioioctl line is requested from
// the kernel with its initial value in the same ioctl; any other pin gets
// Out(level), all that gpio.PinOut offers.
func open(p gpio.PinIO, initialHigh bool) (driver, error) {
	if l, ok := realPin(p).(*gpioioctl.GPIOLine); ok {
		path, err := chipPath(l)
		if err != nil {
			return nil, err
		}
		return requestOutput(path, l.Number(), initialHigh)
	}
	d := pinOut{p}
	if err := d.set(initialHigh); err != nil {
		return nil, err
	}
	return d, nil
}

// chipPath finds the device file of the chip that owns l.
func chipPath(l *gpioioctl.GPIOLine) (string, error) {
	for _, c := range gpioioctl.Chips {
		if n := l.Number(); n < c.LineCount() && c.Lines()[n] == l {
			return c.Path(), nil
		}
	}
	return "", fmt.Errorf("line %d (%s) belongs to no known chip", l.Number(), l.Name())
}

// pinOut drives a pin through gpio.PinOut. Never Read: on periph that turns
// an output into an input (docs/dependencies.md#periph-read-on-an-output).
type pinOut struct{ p gpio.PinOut }

func (d pinOut) set(high bool) error { return d.p.Out(gpio.Level(high)) }

// output is one line handed out.
type output struct {
	pin string
	mu  sync.Mutex // one write at a time on the line
	d   driver
}

func (o *output) Set(high bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.d.set(high); err != nil {
		return fmt.Errorf("set GPIO pin %q: %w", o.pin, err)
	}
	return nil
}

func (o *output) Pin() string { return o.pin }

// inputSource is an input line and the reader of its edges.
type inputSource interface {
	read() (bool, error)
	// run sends every edge to edges until stop, then closes edges.
	run(edges chan<- hw.Edge)
	// stop releases the line and makes run return.
	stop()
}

// inputOpener requests a pin as an input.
type inputOpener func(p gpio.PinIO, bias hw.Bias) (inputSource, error)

// openChardevInput requests a gpioioctl line from the kernel's character
// device with edge events (requestInput: the reader sleeps in Go's poller
// until the kernel queues an edge). New uses it: every pin here is such a
// line, since gpioioctl is the only driver this package loads.
func openChardevInput(p gpio.PinIO, bias hw.Bias) (inputSource, error) {
	l, ok := realPin(p).(*gpioioctl.GPIOLine)
	if !ok {
		return nil, fmt.Errorf("%s is not a line of a GPIO character device", p)
	}
	path, err := chipPath(l)
	if err != nil {
		return nil, err
	}
	return requestInput(path, l.Number(), bias)
}

// openPinInput makes any gpio.PinIn an input: In(pull, BothEdges) and a
// WaitForEdge loop, all that interface offers. New does not use it: calls
// through gpio.PinIn would link periph's own edge reader for gpioioctl
// lines (with encoding/binary's reflection, about 14 KB of ARM code) which
// openChardevInput makes unneeded. Backends over other pins (the tests'
// fakes) do.
func openPinInput(p gpio.PinIO, bias hw.Bias) (inputSource, error) {
	pull := gpio.Float
	switch bias {
	case hw.BiasUp:
		pull = gpio.PullUp
	case hw.BiasDown:
		pull = gpio.PullDown
	}
	if err := p.In(pull, gpio.BothEdges); err != nil {
		return nil, err
	}
	return &pinIn{p: p, stopped: make(chan struct{})}, nil
}

// pinIn reads a pin through gpio.PinIn. WaitForEdge cannot be interrupted,
// so the loop waits in slices of pinInWait and looks for stop in between.
type pinIn struct {
	p       gpio.PinIn
	stopped chan struct{}
}

const pinInWait = 50 * time.Millisecond

func (q *pinIn) read() (bool, error) { return bool(q.p.Read()), nil }

func (q *pinIn) run(edges chan<- hw.Edge) {
	defer close(edges)
	for {
		select {
		case <-q.stopped:
			return
		default:
		}
		if q.p.WaitForEdge(pinInWait) {
			send(edges, hw.Edge{High: bool(q.p.Read()), At: time.Now()})
		}
	}
}

func (q *pinIn) stop() { close(q.stopped) }

// send queues e unless the consumer is EdgeBuffer edges behind: the reader
// never blocks (hw.Input's promise).
func send(edges chan<- hw.Edge, e hw.Edge) {
	select {
	case edges <- e:
	default:
	}
}

// input is one line handed out as an input; its reader goroutine owns the
// sends on edges and closes it.
type input struct {
	pin     string
	src     inputSource
	edges   chan hw.Edge
	done    chan struct{} // closed when the reader has returned
	once    sync.Once
	release func() // gives the line back to the backend
}

func (in *input) Read() (bool, error) {
	select {
	case <-in.done:
		return false, fmt.Errorf("read GPIO pin %q: input closed", in.pin)
	default:
	}
	high, err := in.src.read()
	if err != nil {
		return false, fmt.Errorf("read GPIO pin %q: %w", in.pin, err)
	}
	return high, nil
}

func (in *input) Edges() <-chan hw.Edge { return in.edges }

func (in *input) Pin() string { return in.pin }

// Close stops the reader, waits until it has returned (so no edge comes
// after Close) and gives the line back.
func (in *input) Close() error {
	in.once.Do(func() {
		in.src.stop()
		<-in.done
		in.release()
	})
	return nil
}

// describeDrivers says which periph drivers loaded, were skipped or failed.
func describeDrivers(s *driverreg.State) string {
	if s == nil {
		return "no driver state"
	}
	var loaded, skipped, failed []string
	for _, d := range s.Loaded {
		loaded = append(loaded, d.String())
	}
	for _, f := range s.Skipped {
		skipped = append(skipped, f.String())
	}
	for _, f := range s.Failed {
		failed = append(failed, f.String())
	}
	d := "drivers loaded: " + listOrNone(loaded) + "; skipped: " + listOrNone(skipped) + "; failed: " + listOrNone(failed)
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(d)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
