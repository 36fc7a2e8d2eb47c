package led

import (
	"slices"
	"testing"
	"time"
)

func TestStatesInSeverityOrder(t *testing.T) {
	want := []string{"config", "storage", "auth", "bootstrap", "connecting", "backlog", "ok"}
	if got := States(); !slices.Equal(got, want) {
		t.Errorf("States() = %v, want %v", got, want)
	}
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, "ok"},
		{[]string{"backlog", "connecting"}, "connecting"},
		{[]string{"ok", "config", "storage"}, "config"},
		{[]string{"auth", "bootstrap", "nonsense"}, "auth"},
	} {
		if got := worst(c.in...); got != c.want {
			t.Errorf("worst(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Each pattern as the table in docs/design.md#status-leds describes it:
// period, lit time, flash count, frequency.
func TestPatternsMatchTheDesign(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		state   string
		period  time.Duration // 0: steady
		flashes int           // on-steps per period
		onTime  time.Duration // total lit per period
	}{
		{"ok", 0, 1, 0},
		{"backlog", 2000 * ms, 1, 1800 * ms},
		{"connecting", 1000 * ms, 1, 500 * ms},
		{"auth", 250 * ms, 1, 125 * ms},
		{"bootstrap", 2000 * ms, 2, 300 * ms},
		{"storage", 2000 * ms, 3, 450 * ms},
		{"config", 100 * ms, 1, 50 * ms},
	} {
		p, ok := patternFor(c.state)
		if !ok || p.Name != c.state || p.Look == "" {
			t.Fatalf("patternFor(%q) = %+v, %t", c.state, p, ok)
		}
		if c.period == 0 {
			if !p.steady() || !p.Steps[0].On {
				t.Errorf("%s: %v, want steady on", c.state, p.Steps)
			}
			continue
		}
		var on time.Duration
		n := 0
		for i, s := range p.Steps {
			if s.D <= 0 {
				t.Errorf("%s: step %d has D %v", c.state, i, s.D)
			}
			if i > 0 && s.On == p.Steps[i-1].On {
				t.Errorf("%s: steps %d and %d are both on=%t", c.state, i-1, i, s.On)
			}
			if s.On {
				on += s.D
				n++
			}
		}
		if got := p.period(); got != c.period {
			t.Errorf("%s: period %v, want %v", c.state, got, c.period)
		}
		if n != c.flashes || on != c.onTime {
			t.Errorf("%s: %d flashes lit %v per period, want %d lit %v", c.state, n, on, c.flashes, c.onTime)
		}
		if !p.Steps[0].On {
			t.Errorf("%s: starts dark; a new state must show at once", c.state)
		}
	}
	if _, ok := patternFor("nonsense"); ok {
		t.Error(`patternFor("nonsense") ok`)
	}
	// Callers get a copy.
	p, _ := patternFor("connecting")
	p.Steps[0].D = time.Hour
	if q, _ := patternFor("connecting"); q.Steps[0].D != 500*ms {
		t.Error("patternFor returned the package's own steps")
	}
	if id := identifyPattern(); id.period() != 200*ms {
		t.Errorf("identify period %v, want 200ms (5 Hz)", id.period())
	}
}

func TestFaultOn(t *testing.T) {
	for _, s := range States() {
		want := s == "auth" || s == "storage" || s == "config"
		if got := FaultOn(s); got != want {
			t.Errorf("FaultOn(%q) = %t, want %t", s, got, want)
		}
	}
}

// at keeps to the clock: a wake-up late by several steps lands in the right
// step with the right next change.
func TestPatternAtIsClockBased(t *testing.T) {
	p, _ := patternFor("storage") // on 150, off 250, on 150, off 250, on 150, off 1050
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	for _, c := range []struct {
		at   time.Duration
		on   bool
		next time.Duration
	}{
		{0, true, 150 * ms},
		{149 * ms, true, 150 * ms},
		{150 * ms, false, 400 * ms},
		{500 * ms, true, 550 * ms},
		{950 * ms, false, 2000 * ms},
		{2000 * ms, true, 2150 * ms},
		{10*time.Second + 420*ms, true, 10*time.Second + 550*ms},
	} {
		on, next := p.at(t0, t0.Add(c.at))
		if on != c.on || !next.Equal(t0.Add(c.next)) {
			t.Errorf("at %v: %t, next %v; want %t, next %v", c.at, on, next.Sub(t0), c.on, c.next)
		}
	}
}
