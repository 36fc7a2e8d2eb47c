package periph

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"

	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/hwtest"
)

// fakePin is a gpio.PinIO like gpiotest.Pin (level in L, edges through a
// channel) that records every level driven and fails the test on anything
// that would turn a periph output into an input: Read and WaitForEdge on a
// line not made an input, In on a line that was driven
// (docs/dependencies.md#periph-read-on-an-output). gpiotest itself is not
// used: it needs github.com/jonboulle/clockwork, which go.mod does not have
// (docs/dependencies.md#periph-gpiotest-fakes).
type fakePin struct {
	t   *testing.T
	N   string
	Num int

	mu     sync.Mutex
	L      gpio.Level
	driven []bool
	input  bool // made an input by In, and not driven since
	edges  chan struct{}
}

func (p *fakePin) String() string   { return fmt.Sprintf("%s(%d)", p.N, p.Num) }
func (p *fakePin) Halt() error      { return nil }
func (p *fakePin) Name() string     { return p.N }
func (p *fakePin) Number() int      { return p.Num }
func (p *fakePin) Function() string { return "Out" }
func (p *fakePin) Func() pin.Func   { return gpio.OUT }

// In makes the line an input; the pull sets its level, as on a wire nothing
// drives.
func (p *fakePin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.driven) > 0 {
		p.t.Errorf("%s.In called: an output must never be made an input", p)
		return errors.New("fakePin: In on an output")
	}
	if edge != gpio.BothEdges {
		p.t.Errorf("%s.In(%s, %s): want both edges", p, pull, edge)
	}
	p.input = true
	p.L = pull == gpio.PullUp
	return nil
}

func (p *fakePin) isInput(what string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.input {
		p.t.Errorf("%s.%s called on a line that is not an input (on periph it turns an output into one)", p, what)
	}
	return p.input
}

func (p *fakePin) Read() gpio.Level {
	if !p.isInput("Read") {
		return gpio.Low
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.L
}

func (p *fakePin) WaitForEdge(d time.Duration) bool {
	if !p.isInput("WaitForEdge") {
		return false
	}
	select {
	case <-p.edges:
		return true
	case <-time.After(d):
		return false
	}
}

// drive sets the input's wire to l and hands the edge to WaitForEdge.
func (p *fakePin) drive(l bool) {
	p.mu.Lock()
	p.L = gpio.Level(l)
	p.mu.Unlock()
	select {
	case p.edges <- struct{}{}:
	case <-time.After(5 * time.Second):
		p.t.Errorf("%s: edge to %t not taken by a WaitForEdge within 5s", p, l)
	}
}

func (p *fakePin) Pull() gpio.Pull        { return gpio.PullNoChange }
func (p *fakePin) DefaultPull() gpio.Pull { return gpio.PullNoChange }
func (p *fakePin) PWM(gpio.Duty, physic.Frequency) error {
	p.t.Errorf("%s.PWM called", p)
	return errors.New("fakePin: PWM")
}
func (p *fakePin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.L = l
	p.input = false
	p.driven = append(p.driven, bool(l))
	return nil
}

func (p *fakePin) levels() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.driven)
}

// fakeBoard registers fake lines in gpioreg (global: names are unregistered
// when the test ends) and builds a backend over them. chip0 has 32 lines;
// the named ones are lines 17, 22 and 27, like a Pi's.
type fakeBoard struct {
	*Backend
	pins map[string]*fakePin // by registered name and by "gpiochip0:N"
}

// Registered names carry a prefix so that they cannot clash with a real
// line's name in the process-wide registry.
const prefix = "EATEST_"

func newFakeBoard(t *testing.T) *fakeBoard {
	t.Helper()
	fb := &fakeBoard{pins: make(map[string]*fakePin)}
	lines := make([]*fakePin, 32)
	for i := range lines {
		lines[i] = &fakePin{t: t, N: fmt.Sprintf("chip0-line%d", i), Num: i, edges: make(chan struct{})}
		fb.pins[fmt.Sprintf("gpiochip0:%d", i)] = lines[i]
	}
	for _, n := range []int{17, 22, 27} {
		p := lines[n]
		p.N = fmt.Sprintf("%sGPIO%d", prefix, n)
		if err := gpioreg.Register(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := gpioreg.Unregister(p.N); err != nil {
				t.Error(err)
			}
		})
		fb.pins[p.N] = p
	}
	chips := []chip{{
		name: "gpiochip0", label: "pinctrl-fake", lines: len(lines),
		line: func(off int) gpio.PinIO { return lines[off] },
	}}
	fb.Backend = newBackend(gpioreg.ByName, chips, "periph (fake pins)", openPinInput)
	return fb
}

func (fb *fakeBoard) driven(pin string) []bool {
	if p, ok := fb.pins[pin]; ok {
		return p.levels()
	}
	return nil
}

func TestConformance(t *testing.T) {
	hwtest.Conformance(t, hwtest.Harness{
		New: func(t *testing.T) hwtest.Board {
			fb := newFakeBoard(t)
			return hwtest.Board{Backend: fb.Backend, Driven: fb.driven, Drive: func(pin string, high bool) { fb.pins[pin].drive(high) }}
		},
		Pins:    []string{prefix + "GPIO17", prefix + "GPIO27", "gpiochip0:5", "gpiochip0:31"},
		Missing: []string{prefix + "GPIO18", "GPIO17x", "gpiochip0:32", "gpiochip1:0", ""},
	})
}

// The backend New makes takes inputs only from the character device: a pin
// of another driver is refused, naming it.
func TestChardevInputRefusesOtherPins(t *testing.T) {
	fb := newFakeBoard(t)
	b := newBackend(gpioreg.ByName, fb.chips, "periph (fake pins, chardev inputs)", openChardevInput)
	in, err := b.Input("gpiochip0:3", hw.BiasUp)
	if err == nil {
		in.Close()
		t.Fatal("Input on a fake pin through the character device succeeded")
	}
	for _, want := range []string{`"gpiochip0:3"`, "chip0-line3(3) is not a line of a GPIO character device"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q lacks %q", err, want)
		}
	}
	// The refused request left the line free.
	if in, err := b.Input("gpiochip0:3", hw.BiasUp); err == nil || strings.Contains(err.Error(), "busy") {
		t.Errorf("second Input: %v, want the same refusal, not busy", err)
		if in != nil {
			in.Close()
		}
	}
}

func TestNameLookupDrivesThatLine(t *testing.T) {
	fb := newFakeBoard(t)
	o, err := fb.Output(prefix+"GPIO22", true)
	if err != nil {
		t.Fatal(err)
	}
	p := fb.pins[prefix+"GPIO22"]
	if p.L != gpio.High {
		t.Errorf("after Output(high) the line is %s", p.L)
	}
	if err := o.Set(false); err != nil {
		t.Fatal(err)
	}
	if p.L != gpio.Low {
		t.Errorf("after Set(false) the line is %s", p.L)
	}
	for name, other := range fb.pins {
		if other != p && len(other.levels()) > 0 {
			t.Errorf("line %s was driven too: %v", name, other.levels())
		}
	}
}

func TestAliasResolvesAndSharesTheLine(t *testing.T) {
	fb := newFakeBoard(t)
	alias := prefix + "RELAY1"
	if err := gpioreg.RegisterAlias(alias, prefix+"GPIO17"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpioreg.Unregister(alias) })

	if _, err := fb.Output(alias, true); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.driven(prefix+"GPIO17"), []bool{true}; !slices.Equal(got, want) {
		t.Errorf("through alias drove %v, want %v", got, want)
	}
	// The same line by its name and by chip:offset is busy now.
	for _, pin := range []string{prefix + "GPIO17", "gpiochip0:17"} {
		if _, err := fb.Output(pin, false); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("Output(%q) after the alias took the line: err = %v, want busy", pin, err)
		}
	}
}

func TestMissingPinErrors(t *testing.T) {
	fb := newFakeBoard(t)
	for _, c := range []struct{ pin, want string }{
		{"GPIO99", `"GPIO99": no line of that name`},
		{"gpiochip0:40", `"gpiochip0:40": gpiochip0 (pinctrl-fake) has lines 0..31`},
		{"gpiochip3:1", `"gpiochip3:1": no such line; chips here: gpiochip0 (pinctrl-fake, 32 lines)`},
	} {
		_, err := fb.Output(c.pin, false)
		if !errors.Is(err, hw.ErrNoSuchPin) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Output(%q) err = %v, want ErrNoSuchPin with %q", c.pin, err, c.want)
		}
	}
}

func TestActiveLowSwitch(t *testing.T) {
	fb := newFakeBoard(t)
	sw, err := hw.OpenSwitch(fb, prefix+"GPIO27", true, false) // off, active low: high
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Set(true); err != nil {
		t.Fatal(err)
	}
	if err := sw.Set(false); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.driven(prefix+"GPIO27"), []bool{true, false, true}; !slices.Equal(got, want) {
		t.Errorf("active-low off, on, off drove %v, want %v", got, want)
	}
}

// TestNoGPIOHere runs the real driver: on a machine without
// /dev/gpiochip* (a build host, qemu-user) New must say so clearly.
func TestNoGPIOHere(t *testing.T) {
	if chips, _ := filepath.Glob("/dev/gpiochip*"); len(chips) > 0 {
		b, err := New()
		if err != nil {
			t.Fatalf("New() with %v: %v", chips, err)
		}
		t.Logf("Describe: %s", b.Describe())
		return
	}
	b, err := New()
	if err == nil {
		t.Fatalf("New() = %v on a machine without GPIO, want an error", b.Describe())
	}
	if !errors.Is(err, ErrNoGPIO) {
		t.Errorf("New() err = %v, want ErrNoGPIO", err)
	}
	for _, want := range []string{"/dev/gpiochip*", `backend = "sim"`, "ioctl-gpio"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() err %q lacks %q", err, want)
		}
	}
	if strings.ContainsAny(err.Error(), "\n") {
		t.Errorf("New() err %q is not one line", err)
	}
	// Init runs once: a second New gives the same answer, not a re-init.
	if _, err2 := New(); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second New() = %v, want %v", err2, err)
	}
}
