package main

import (
	"strings"
	"testing"
	"time"
)

var base = time.Unix(1795766000, 0)

// changes builds the events of one line: each step is (ms after base, level).
func changes(line int, steps ...[2]float64) []event {
	var out []event
	for _, s := range steps {
		out = append(out, event{At: base.Add(time.Duration(s[0] * float64(time.Millisecond))), Line: line, Level: int(s[1])})
	}
	return out
}

func TestStraight(t *testing.T) {
	for _, c := range []struct {
		name         string
		before, want int
		evs          []event
		errHas       string // "" = must pass
	}{
		{"held, no change", 1, 1, nil, ""},
		{"one change to want", 0, 1, changes(1, [2]float64{5, 1}), ""},
		{"glitch on a held line", 1, 1, changes(1, [2]float64{5, 0}, [2]float64{5.04, 1}), "showed 1→0→1: passed through 0"},
		{"glitch on the way: periph's Out() from low", 0, 1, changes(1, [2]float64{5, 0}, [2]float64{6, 1}), "passed through 0"},
		{"stayed at the wrong level", 0, 1, nil, "stayed at 0, want 0→1 once"},
		{"went the wrong way", 1, 1, changes(1, [2]float64{5, 0}), "passed through 0"},
		{"moved when it should not", 0, 0, changes(1, [2]float64{5, 1}, [2]float64{9, 0}), "want 0 throughout (no change)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := straight(c.before, c.evs, c.want)
			if c.errHas == "" {
				if err != nil {
					t.Errorf("straight = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("straight = %v, want an error with %q", err, c.errHas)
			}
		})
	}
}

func TestPulse(t *testing.T) {
	w, err := pulse(0, 0, changes(6, [2]float64{10, 1}, [2]float64{61.5, 0}))
	if err != nil || w != 51500*time.Microsecond {
		t.Errorf("pulse = %v, %v; want 51.5ms", w, err)
	}
	for _, c := range []struct {
		name         string
		before, rest int
		evs          []event
	}{
		{"no pulse", 0, 0, nil},
		{"stuck on", 0, 0, changes(6, [2]float64{10, 1})},
		{"two pulses", 0, 0, changes(6, [2]float64{10, 1}, [2]float64{60, 0}, [2]float64{110, 1}, [2]float64{160, 0})},
		{"inverted: resting at the other level", 1, 0, changes(6, [2]float64{10, 0}, [2]float64{60, 1})},
	} {
		if _, err := pulse(c.before, c.rest, c.evs); err == nil || !strings.Contains(err.Error(), "want one pulse") {
			t.Errorf("%s: pulse err = %v, want one naming the pulse wanted", c.name, err)
		}
	}
}

// evenBlink is n changes every half ms, starting at level first.
func evenBlink(line, n int, half float64, first int) []event {
	var steps [][2]float64
	for i := 0; i < n; i++ {
		steps = append(steps, [2]float64{float64(i) * half, float64((first + i) % 2)})
	}
	return changes(line, steps...)
}

func TestBlink(t *testing.T) {
	half := 100 * time.Millisecond
	tol := 40 * time.Millisecond
	check := func(evs []event) (blinkStats, error) { return blink(evs, half, tol, 14, 4) }
	shift := func(e []event, i int, d time.Duration) []event {
		e[i].At = e[i].At.Add(d)
		return e
	}

	st, err := check(evenBlink(5, 20, 100, 0))
	if err != nil || st.Changes != 20 || st.Min != half || st.Max != half || st.Avg != half || st.Stall != 0 || st.Late != 0 {
		t.Errorf("even 5 Hz: %v, %v", st, err)
	}
	for _, c := range []struct {
		name   string
		evs    []event
		stall  bool
		missed int
	}{
		// A late wake-up: 118 ms, then 82 ms, the grid holds.
		{"one change 35 ms late", shift(evenBlink(5, 20, 100, 0), 7, 35*time.Millisecond), false, 0},
		{"the first change 30 ms late", shift(evenBlink(5, 20, 100, 1), 0, 30*time.Millisecond), false, 0},
		{"one change 70 ms late: the one stall", shift(evenBlink(5, 20, 100, 0), 7, 70*time.Millisecond), true, 0},
		// As seen under host load: 420 ms without the guest, 4 changes
		// missed, the next 14 ms after its cell began.
		{"four changes missed", func() []event {
			e := evenBlink(5, 24, 100, 1)
			e = append(e[:10:10], e[14:]...)
			e[10].At = e[10].At.Add(14 * time.Millisecond)
			return e
		}(), true, 4},
		{"two missed and the next 60 ms late", func() []event {
			e := evenBlink(5, 22, 100, 0)
			e = append(e[:8:8], e[10:]...)
			e[8].At = e[8].At.Add(60 * time.Millisecond)
			return e
		}(), true, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := check(c.evs)
			if err != nil || (st.Stall > 0) != c.stall || st.Missed != c.missed {
				t.Errorf("blink = %v, %v; want ok, stall %v, %d missed", st, err, c.stall, c.missed)
			}
		})
	}
	for _, c := range []struct {
		name   string
		evs    []event
		errHas string
	}{
		{"4 Hz (auth) is not 5 Hz", evenBlink(5, 20, 125, 0), "a second stall"},
		{"10 Hz (config) is not 5 Hz", evenBlink(5, 40, 50, 0), "where the 100ms grid says"},
		{"2.5 Hz is not 5 Hz", evenBlink(5, 20, 200, 0), "where the 100ms grid says"},
		{"a 2.5% slow blink drifts off the grid", evenBlink(5, 20, 102.5, 0), "a second stall"},
		{"two late changes", shift(shift(evenBlink(5, 20, 100, 0), 4, 50*time.Millisecond), 12, 50*time.Millisecond), "a second stall"},
		{"six changes missed", func() []event {
			e := evenBlink(5, 26, 100, 0)
			return append(e[:10:10], e[16:]...)
		}(), "after 6 missed changes, want at most 4"},
		{"too few changes", evenBlink(5, 10, 100, 0), "10 level changes, want at least 14"},
		{"a change to the wrong level", func() []event {
			e := evenBlink(5, 20, 100, 0)
			for i := 10; i < len(e); i++ {
				e[i].At = e[i].At.Add(100 * time.Millisecond) // a cell passes with no change...
			}
			e = append(e[:10:10], append([]event{{At: e[9].At.Add(100 * time.Millisecond), Line: 5, Level: e[9].Level}}, e[10:]...)...)
			return e
		}(), "repeats level"},
		{"a level change that breaks the pattern's phase", func() []event {
			e := evenBlink(5, 20, 100, 0)
			for i := 10; i < len(e); i++ {
				e[i].At = e[i].At.Add(100 * time.Millisecond) // one half-period held too long
			}
			return e
		}(), "where the 100ms grid says"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := check(c.evs)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("blink err = %v, want one with %q", err, c.errHas)
			}
		})
	}
}

func TestSkew(t *testing.T) {
	a := evenBlink(5, 20, 100, 0)
	b := evenBlink(6, 19, 100, 0)
	for i := range b {
		b[i].At = b[i].At.Add(700 * time.Microsecond)
	}
	sk, err := skew(map[string][]event{"status": a, "activity": b})
	if err != nil || sk != 700*time.Microsecond {
		t.Errorf("skew = %v, %v; want 700µs", sk, err)
	}
	if _, err := skew(map[string][]event{"status": a, "activity": evenBlink(6, 10, 100, 0)}); err == nil || !strings.Contains(err.Error(), "not together") {
		t.Errorf("10 vs 20 changes: err = %v", err)
	}
	if _, err := skew(map[string][]event{"status": a, "fault": evenBlink(7, 20, 100, 1)}); err == nil || !strings.Contains(err.Error(), "not together") {
		t.Errorf("opposite phases: err = %v", err)
	}
}

func TestWithin(t *testing.T) {
	if !within(1489*time.Millisecond, 1500*time.Millisecond, 100*time.Millisecond) || within(1601*time.Millisecond, 1500*time.Millisecond, 100*time.Millisecond) {
		t.Error("within is wrong at its edges")
	}
}

// Two changes in one cell: a burst faster than the pattern goes to the
// wrong level for the cell.
func TestBlinkTooFast(t *testing.T) {
	e := evenBlink(5, 20, 100, 0)
	extra := []event{{At: e[9].At.Add(10 * time.Millisecond), Line: 5, Level: 1 - e[9].Level}, {At: e[9].At.Add(20 * time.Millisecond), Line: 5, Level: e[9].Level}}
	e = append(e[:10:10], append(extra, e[10:]...)...)
	if _, err := blink(e, 100*time.Millisecond, 40*time.Millisecond, 14, 4); err == nil || !strings.Contains(err.Error(), "change 11 of 22") {
		t.Errorf("blink err = %v, want change 11 named", err)
	}
}
