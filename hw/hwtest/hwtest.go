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

	"github.com/edge-agent/edge-agent/hw"
)

// Board is one fresh backend under test.
type Board struct {
	Backend hw.Backend
	// Driven lists every level pin was driven to since it was handed out, in
	// order, starting with the level it was made an output with.
	Driven func(pin string) []bool
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
}
