package sim_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/hwtest"
	"github.com/edge-agent/edge-agent/hw/sim"
)

func driven(s *sim.Sim) func(string) []bool {
	return func(pin string) []bool {
		var out []bool
		for _, t := range s.Transitions() {
			if t.Pin == pin {
				out = append(out, t.High)
			}
		}
		return out
	}
}

func TestConformance(t *testing.T) {
	hwtest.Conformance(t, hwtest.Harness{
		New: func(t *testing.T) hwtest.Board {
			s := sim.New(nil)
			return hwtest.Board{Backend: s, Driven: driven(s), Drive: func(pin string, high bool) {
				if err := s.SetInput(pin, high); err != nil {
					t.Fatal(err)
				}
			}}
		},
		Pins:    []string{"GPIO17", "gpiochip0:27", "GPIO0", "GPIO27", "gpiochip0:0", "gpiochip0:53"},
		Missing: []string{"GPIO28", "gpiochip0:54", "gpiochip1:0", "GPIO-1", "GPIO017", "gpio17", "", "pump", "gpiochip0:007"},
	})
}

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func TestTransitionsAreStampedAndOrdered(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk := &fakeNow{t: t0}
	s := sim.New(clk.Now)
	var seen []sim.Transition
	s.OnTransition(func(tr sim.Transition) {
		seen = append(seen, tr)
		_ = s.Levels() // a callback may look at the board
	})

	a, err := s.Output("GPIO17", true)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	b, err := s.Output("GPIO27", false)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(500 * time.Millisecond)
	if err := a.Set(false); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(true); err != nil {
		t.Fatal(err)
	}

	want := []sim.Transition{
		{Pin: "GPIO17", High: true, At: t0, Initial: true},
		{Pin: "GPIO27", High: false, At: t0.Add(time.Second), Initial: true},
		{Pin: "GPIO17", High: false, At: t0.Add(1500 * time.Millisecond)},
		{Pin: "GPIO27", High: true, At: t0.Add(1500 * time.Millisecond)},
	}
	if got := s.Transitions(); !slices.Equal(got, want) {
		t.Errorf("Transitions() =\n%v\nwant\n%v", got, want)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("OnTransition saw\n%v\nwant\n%v", seen, want)
	}
	if got, want := s.Levels(), map[string]bool{"GPIO17": false, "GPIO27": true}; !mapsEqual(got, want) {
		t.Errorf("Levels() = %v, want %v", got, want)
	}
	if got := s.Describe(); !strings.Contains(got, "sim") || !strings.Contains(got, "GPIO17") {
		t.Errorf("Describe() = %q, want the backend and the pins in use", got)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMissingPinListsTheBoard(t *testing.T) {
	_, err := sim.New(nil).Output("GPIO40", false)
	if !errors.Is(err, hw.ErrNoSuchPin) {
		t.Fatalf("err = %v, want ErrNoSuchPin", err)
	}
	for _, want := range []string{`"GPIO40"`, "GPIO0..GPIO27", "gpiochip0:0..gpiochip0:53"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLogIsBounded(t *testing.T) {
	s := sim.New(nil)
	o, err := s.Output("GPIO5", false)
	if err != nil {
		t.Fatal(err)
	}
	n := sim.MaxTransitions + 2500
	for i := 1; i < n; i++ { // plus the initial level: n transitions in all
		if err := o.Set(i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Transitions()
	if len(got) != sim.MaxTransitions {
		t.Fatalf("kept %d transitions, want %d", len(got), sim.MaxTransitions)
	}
	// The oldest kept is transition number n-MaxTransitions (0-based), the
	// newest is n-1; odd numbers are high.
	first, last := n-sim.MaxTransitions, n-1
	if got[0].High != (first%2 == 1) || got[len(got)-1].High != (last%2 == 1) || got[0].Initial {
		t.Errorf("kept %v … %v, want transitions %d … %d", got[0], got[len(got)-1], first, last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].High == got[i-1].High {
			t.Fatalf("log out of order at %d: %v then %v", i, got[i-1], got[i])
		}
	}
}
