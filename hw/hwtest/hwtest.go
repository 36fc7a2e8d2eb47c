// Package hwtest holds the conformance test every hw.Backend passes: the sim
// board and the periph backend (over fake pins) run the same checks, so what
// the agent relies on holds on both.
package hwtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw"
)

// Board is one fresh backend under test.
type Board struct {
	Backend hw.Backend
	// Driven lists every level pin was driven to since it was handed out, in
	// order, starting with the level it was made an output with.
	Driven func(pin string) []bool
	// Drive sets the wire of a pin handed out as an input to a level
	// different from its current one, as a button or a contact would.
	Drive func(pin string, high bool)
}

// Harness describes a backend to the conformance test.
type Harness struct {
	// New returns a fresh backend on which no pin has been handed out. It is
	// called at most once per (sub)test t.
	New func(t *testing.T) Board
	// Pins exist on the board (at least two, distinct lines).
	Pins []string
	// Missing do not exist on the board.
	Missing []string
}

// Conformance checks the hw.Backend promises on h.
func Conformance(t *testing.T, h Harness) {
	t.Helper()
	if len(h.Pins) < 2 || len(h.Missing) < 1 {
		t.Fatalf("hwtest: harness needs 2 pins and 1 missing pin, has %q and %q", h.Pins, h.Missing)
	}

	for _, initial := range []bool{false, true} {
		t.Run(fmt.Sprintf("initial level %t in the same call", initial), func(t *testing.T) {
			b := h.New(t)
			for _, pin := range h.Pins {
				o, err := b.Backend.Output(pin, initial)
				if err != nil {
					t.Fatalf("Output(%q, %t): %v", pin, initial, err)
				}
				if got := o.Pin(); got != pin {
					t.Errorf("Pin() = %q, want %q", got, pin)
				}
				// Exactly one level so far: the line never showed the other one.
				if got, want := b.Driven(pin), []bool{initial}; !slices.Equal(got, want) {
					t.Errorf("Output(%q, %t) drove %v, want %v", pin, initial, got, want)
				}
			}
		})
	}

	t.Run("Set drives the level", func(t *testing.T) {
		b := h.New(t)
		pin := h.Pins[0]
		o, err := b.Backend.Output(pin, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []bool{true, false, true, true} {
			if err := o.Set(l); err != nil {
				t.Fatalf("Set(%t): %v", l, err)
			}
		}
		if got, want := b.Driven(pin), []bool{false, true, false, true, true}; !slices.Equal(got, want) {
			t.Errorf("driven %v, want %v", got, want)
		}
		if got := b.Driven(h.Pins[1]); len(got) != 0 {
			t.Errorf("untouched pin %q driven %v", h.Pins[1], got)
		}
	})

	t.Run("Switch handles active low", func(t *testing.T) {
		b := h.New(t)
		hi, err := hw.OpenSwitch(b.Backend, h.Pins[0], false, true)
		if err != nil {
			t.Fatal(err)
		}
		lo, err := hw.OpenSwitch(b.Backend, h.Pins[1], true, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*hw.Switch{hi, lo} {
			if err := s.Set(false); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := b.Driven(h.Pins[0]), []bool{true, false}; !slices.Equal(got, want) {
			t.Errorf("active-high on, off drove %v, want %v", got, want)
		}
		if got, want := b.Driven(h.Pins[1]), []bool{false, true}; !slices.Equal(got, want) {
			t.Errorf("active-low on, off drove %v, want %v", got, want)
		}
	})

	t.Run("missing pin is named", func(t *testing.T) {
		b := h.New(t)
		for _, pin := range h.Missing {
			o, err := b.Backend.Output(pin, false)
			if err == nil {
				t.Fatalf("Output(%q) = %v, want an error", pin, o)
			}
			if !errors.Is(err, hw.ErrNoSuchPin) {
				t.Errorf("Output(%q) error %q does not wrap ErrNoSuchPin", pin, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", pin)) {
				t.Errorf("Output(%q) error %q does not name the pin", pin, err)
			}
		}
	})

	t.Run("pin in use", func(t *testing.T) {
		b := h.New(t)
		if _, err := b.Backend.Output(h.Pins[0], false); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Backend.Output(h.Pins[0], true); err == nil {
			t.Errorf("second Output(%q) succeeded, want an error", h.Pins[0])
		} else if errors.Is(err, hw.ErrNoSuchPin) {
			t.Errorf("second Output(%q) = %v, want busy, not missing", h.Pins[0], err)
		}
		if got, want := b.Driven(h.Pins[0]), []bool{false}; !slices.Equal(got, want) {
			t.Errorf("the refused request drove %v, want %v", got, want)
		}
	})

	t.Run("Describe is one line", func(t *testing.T) {
		b := h.New(t)
		d := b.Backend.Describe()
		if d == "" || strings.ContainsAny(d, "\r\n") {
			t.Errorf("Describe() = %q, want one non-empty line", d)
		}
	})

	t.Run("concurrent Set", func(t *testing.T) {
		b := h.New(t)
		outs := make([]hw.Output, len(h.Pins))
		for i, pin := range h.Pins {
			o, err := b.Backend.Output(pin, false)
			if err != nil {
				t.Fatal(err)
			}
			outs[i] = o
		}
		var wg sync.WaitGroup
		for _, o := range outs {
			for range 4 {
				wg.Go(func() {
					for i := range 50 {
						if err := o.Set(i%2 == 0); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		for _, pin := range h.Pins {
			if got, want := len(b.Driven(pin)), 1+4*50; got != want {
				t.Errorf("%s driven %d times, want %d", pin, got, want)
			}
		}
	})

	inputs(t, h)
}

// edgeWait bounds every wait for an edge: a lost edge fails the test
// instead of hanging it. No speed is asserted.
const edgeWait = 5 * time.Second

func nextEdge(t *testing.T, in hw.Input) (hw.Edge, bool) {
	t.Helper()
	select {
	case e, ok := <-in.Edges():
		return e, ok
	case <-time.After(edgeWait):
		t.Fatalf("%s: no edge and no close within %v", in.Pin(), edgeWait)
		return hw.Edge{}, false
	}
}

func noEdge(t *testing.T, in hw.Input) {
	t.Helper()
	select {
	case e, ok := <-in.Edges():
		t.Errorf("%s: unexpected edge %+v (open %t)", in.Pin(), e, ok)
	default:
	}
}

func wantLevel(t *testing.T, in hw.Input, want bool) {
	t.Helper()
	got, err := in.Read()
	if err != nil {
		t.Fatalf("%s: Read: %v", in.Pin(), err)
	}
	if got != want {
		t.Errorf("%s: Read = %t, want %t", in.Pin(), got, want)
	}
}

func inputs(t *testing.T, h Harness) {
	for _, c := range []struct {
		bias hw.Bias
		high bool
	}{{hw.BiasUp, true}, {hw.BiasDown, false}, {hw.BiasNone, false}} {
		t.Run(fmt.Sprintf("input pull %s starts %t", c.bias, c.high), func(t *testing.T) {
			b := h.New(t)
			in, err := b.Backend.Input(h.Pins[0], c.bias)
			if err != nil {
				t.Fatalf("Input(%q, %s): %v", h.Pins[0], c.bias, err)
			}
			defer in.Close()
			if got := in.Pin(); got != h.Pins[0] {
				t.Errorf("Pin() = %q, want %q", got, h.Pins[0])
			}
			if n := cap(in.Edges()); n < hw.EdgeBuffer {
				t.Errorf("Edges() holds %d, want at least %d", n, hw.EdgeBuffer)
			}
			wantLevel(t, in, c.high)
			noEdge(t, in)
		})
	}

	t.Run("input edges in order with their levels", func(t *testing.T) {
		b := h.New(t)
		t0 := time.Now()
		in, err := b.Backend.Input(h.Pins[0], hw.BiasDown)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		other, err := b.Backend.Input(h.Pins[1], hw.BiasUp)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		level, last := false, t0
		for i := range 6 {
			level = !level
			b.Drive(h.Pins[0], level)
			e, ok := nextEdge(t, in)
			if !ok {
				t.Fatal("Edges closed while open")
			}
			if e.High != level {
				t.Errorf("edge %d: High = %t, want %t", i, e.High, level)
			}
			// Stamped at the edge: not before the previous one, and not
			// after it was received. (1 ms of slack for clock granularity.)
			if e.At.Before(last.Add(-time.Millisecond)) || e.At.After(time.Now().Add(time.Millisecond)) {
				t.Errorf("edge %d at %v: want between %v and now", i, e.At, last)
			}
			last = e.At
			wantLevel(t, in, level)
		}
		noEdge(t, in)
		noEdge(t, other) // the other input saw nothing
		wantLevel(t, other, true)
	})

	t.Run("input missing pin is named", func(t *testing.T) {
		b := h.New(t)
		for _, pin := range h.Missing {
			in, err := b.Backend.Input(pin, hw.BiasUp)
			if err == nil {
				in.Close()
				t.Fatalf("Input(%q) succeeded, want an error", pin)
			}
			if !errors.Is(err, hw.ErrNoSuchPin) || !strings.Contains(err.Error(), fmt.Sprintf("%q", pin)) {
				t.Errorf("Input(%q) error %q: want ErrNoSuchPin naming the pin", pin, err)
			}
		}
	})

	t.Run("input pin in use", func(t *testing.T) {
		b := h.New(t)
		if _, err := b.Backend.Output(h.Pins[0], false); err != nil {
			t.Fatal(err)
		}
		in, err := b.Backend.Input(h.Pins[1], hw.BiasUp)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		busy := func(what, pin string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s(%q) on a pin in use succeeded", what, pin)
			} else if errors.Is(err, hw.ErrNoSuchPin) || !strings.Contains(err.Error(), fmt.Sprintf("%q", pin)) {
				t.Errorf("%s(%q) error %q: want busy, naming the pin", what, pin, err)
			}
		}
		_, err = b.Backend.Input(h.Pins[0], hw.BiasUp)
		busy("Input", h.Pins[0], err)
		_, err = b.Backend.Input(h.Pins[1], hw.BiasUp)
		busy("Input", h.Pins[1], err)
		_, err = b.Backend.Output(h.Pins[1], true)
		busy("Output", h.Pins[1], err)
		if got, want := b.Driven(h.Pins[0]), []bool{false}; !slices.Equal(got, want) {
			t.Errorf("the refused Input drove %v, want %v", got, want)
		}
		if got := b.Driven(h.Pins[1]); len(got) != 0 {
			t.Errorf("the refused Output drove the input's line: %v", got)
		}
		wantLevel(t, in, true)
	})

	t.Run("input Close ends Edges and gives the pin back", func(t *testing.T) {
		b := h.New(t)
		in, err := b.Backend.Input(h.Pins[0], hw.BiasUp)
		if err != nil {
			t.Fatal(err)
		}
		b.Drive(h.Pins[0], false)
		if e, _ := nextEdge(t, in); e.High {
			t.Errorf("edge %+v, want low", e)
		}
		if err := in.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// Closed by the time Close returns: no edge comes after it.
		select {
		case e, ok := <-in.Edges():
			if ok {
				t.Errorf("edge %+v after Close", e)
			}
		default:
			t.Error("Edges still open after Close returned")
		}
		if _, err := in.Read(); err == nil {
			t.Error("Read after Close succeeded")
		}
		if err := in.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		again, err := b.Backend.Input(h.Pins[0], hw.BiasUp)
		if err != nil {
			t.Fatalf("Input after Close: %v", err)
		}
		if err := again.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Backend.Output(h.Pins[0], true); err != nil {
			t.Fatalf("Output after the input was closed: %v", err)
		}
	})

	t.Run("input consumer behind: edges dropped, never blocking", func(t *testing.T) {
		b := h.New(t)
		in, err := b.Backend.Input(h.Pins[0], hw.BiasDown)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		level := false
		for range 3 * hw.EdgeBuffer {
			level = !level
			b.Drive(h.Pins[0], level)
		}
		wantLevel(t, in, level)
		// Whatever was queued: at most the buffer, and the one edge a reader
		// may hold between taking it and queueing it as the drain frees room.
		n := 0
	drain:
		for {
			select {
			case <-in.Edges():
				n++
			case <-time.After(200 * time.Millisecond):
				break drain
			}
		}
		if n == 0 || n > cap(in.Edges())+1 {
			t.Errorf("%d edges queued of %d, want 1..%d", n, 3*hw.EdgeBuffer, cap(in.Edges())+1)
		}
		// The reader is still alive.
		b.Drive(h.Pins[0], !level)
		if e, ok := nextEdge(t, in); !ok || e.High != !level {
			t.Errorf("edge after the burst %+v (open %t), want High %t", e, ok, !level)
		}
	})

	t.Run("input concurrent Read and Close", func(t *testing.T) {
		b := h.New(t)
		in, err := b.Backend.Input(h.Pins[0], hw.BiasUp)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					_, _ = in.Read() // an error once closed is fine
				}
			})
		}
		wg.Go(func() { _ = in.Close() })
		wg.Wait()
		if _, ok := <-in.Edges(); ok {
			t.Error("Edges open after Close")
		}
	})
}
