package main

import (
	"fmt"
	"slices"
	"time"
)

// The analyses below read the levels QEMU traced on one line (events from
// onLine) and say in words what was wrong. They are pure, so the unit tests
// hold them to their meaning without a VM.

// straight checks that a line that showed before goes to want without
// passing through anything else: every level it showed in the window is
// want (the trace prints changes only, so that is at most one change), and
// it ends at want. A relay that must stay put (before == want) may not
// change at all; a glitch, e.g. 1→0→1 for a line that is held high, fails.
func straight(before int, evs []event, want int) error {
	for i, e := range evs {
		if e.Level != want {
			return fmt.Errorf("showed %s: passed through %d (change %d of %d, at %s), want %s",
				levels(before, evs), e.Level, i+1, len(evs), e.At.Format("15:04:05.000000"), wantStraight(before, want))
		}
	}
	if len(evs) == 0 && before != want {
		return fmt.Errorf("stayed at %d, want %s", before, wantStraight(before, want))
	}
	return nil
}

func wantStraight(before, want int) string {
	if before == want {
		return fmt.Sprintf("%d throughout (no change)", want)
	}
	return fmt.Sprintf("%d→%d once", before, want)
}

// pulse checks that a line that showed before, and should rest at rest,
// showed exactly one pulse away from rest and back, and returns its width.
// A pulse the wrong way (a line resting at the other level) fails.
func pulse(before, rest int, evs []event) (time.Duration, error) {
	if before != rest || len(evs) != 2 || evs[0].Level == rest || evs[1].Level != rest {
		return 0, fmt.Errorf("showed %s, want one pulse %d→%d→%d", levels(before, evs), rest, 1-rest, rest)
	}
	return evs[1].At.Sub(evs[0].At), nil
}

// within reports whether d is want ± tol.
func within(d, want, tol time.Duration) bool {
	return d >= want-tol && d <= want+tol
}

// blinkStats describes a blinking line: its changes, the intervals
// between them, and how they sat on the pattern's grid.
type blinkStats struct {
	Changes       int
	Min, Max, Avg time.Duration // intervals between consecutive changes
	Early, Late   time.Duration // extremes of the on-grid changes against the grid
	Stall         time.Duration // how late the one tolerated stall made a change; 0 if none
	Missed        int           // changes the stall swallowed
}

func (s blinkStats) String() string {
	st := ""
	if s.Stall > 0 {
		st = fmt.Sprintf("; one stall tolerated: a change %s late, %d missed", ms(s.Stall), s.Missed)
	}
	return fmt.Sprintf("%d changes, intervals %s..%s (mean %s), on the grid %s..%s%s",
		s.Changes, us(s.Min), us(s.Max), us(s.Avg), us(s.Early), us(s.Late), st)
}

// blink checks that evs is an even blink with half-period half, as the
// agent's LED panel makes one: it computes each level from the pattern's
// start whenever it wakes, so every change belongs to a cell of the grid
// start + k·half, goes to that cell's level, and comes a little after the
// cell begins; a late wake-up delays one change without shifting the
// next. The grid is fitted through the median change. Every change must
// go to its cell's level (so no two share a cell), and each must
// come at most tol late (tol/2 early) against the grid, except for one
// stall: one change later than that, or up to maxSkip changes missed
// before it (the host descheduled QEMU, say). And at least minChanges.
// A wrong period drifts off the grid and fails, so does a second stall.
func blink(evs []event, half, tol time.Duration, minChanges, maxSkip int) (blinkStats, error) {
	var st blinkStats
	st.Changes = len(evs)
	if len(evs) < minChanges {
		return st, fmt.Errorf("%d level changes, want at least %d (a %s-%s blink)", len(evs), minChanges, ms(half), ms(half))
	}
	var sum time.Duration
	for i := 1; i < len(evs); i++ {
		d := evs[i].At.Sub(evs[i-1].At)
		if i == 1 || d < st.Min {
			st.Min = d
		}
		st.Max = max(st.Max, d)
		sum += d
		if evs[i].Level == evs[i-1].Level {
			return st, fmt.Errorf("change %d repeats level %d (the trace prints changes only: a lost event?)", i+1, evs[i].Level)
		}
	}
	if len(evs) > 1 {
		st.Avg = sum / time.Duration(len(evs)-1)
	}
	// The grid through the median change: phases against a grid through
	// the first change, rounded to the nearest cell.
	t0 := evs[0].At
	phases := make([]time.Duration, len(evs))
	for i, e := range evs {
		el := e.At.Sub(t0)
		phases[i] = el - floorDiv(el+half/2, half)*half
	}
	sorted := slices.Clone(phases)
	slices.Sort(sorted)
	start := t0.Add(sorted[len(sorted)/2])
	var cell0, prev time.Duration
	stalls := 0
	for i, e := range evs {
		el := e.At.Sub(start)
		cell := floorDiv(el+tol/2, half) // up to tol/2 early still counts for the cell
		late := el - cell*half
		if i == 0 {
			cell0 = cell
		}
		if want := evs[0].Level ^ int((cell-cell0)&1); e.Level != want {
			return st, fmt.Errorf("change %d of %d (at %s) goes to %d, where the %s grid says %d",
				i+1, len(evs), e.At.Format("15:04:05.000000"), e.Level, ms(half), want)
		}
		// Two changes in one cell cannot both go to its level (they
		// alternate), so the check above has caught a blink too fast.
		missed := 0
		if i > 0 {
			missed = int(cell-prev) - 1
		}
		prev = cell
		if late <= tol && missed == 0 {
			if i == 0 || late < st.Early {
				st.Early = late
			}
			st.Late = max(st.Late, late)
			continue
		}
		stalls++
		if stalls > 1 {
			return st, fmt.Errorf("change %d of %d (at %s) is %s off the %s grid after %d missed: a second stall (one is tolerated: %s late, %d missed), want every change within %s late",
				i+1, len(evs), e.At.Format("15:04:05.000000"), ms(late), ms(half), missed, ms(st.Stall), st.Missed, ms(tol))
		}
		if missed > maxSkip {
			return st, fmt.Errorf("change %d of %d (at %s) comes after %d missed changes, want at most %d",
				i+1, len(evs), e.At.Format("15:04:05.000000"), missed, maxSkip)
		}
		st.Stall, st.Missed = max(late, time.Microsecond), missed
	}
	return st, nil
}

// floorDiv is a/b rounded toward minus infinity.
func floorDiv(a, b time.Duration) time.Duration {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// skew is the largest time between the i-th changes of lines that blink
// together; an error if they did not change the same number of times (at
// most one apart, for a window cut mid-change) or not to the same levels.
func skew(lines map[string][]event) (time.Duration, error) {
	var worst time.Duration
	var refName string
	var ref []event
	for name, evs := range lines {
		if ref == nil || name < refName {
			refName, ref = name, evs
		}
	}
	for name, evs := range lines {
		if d := len(evs) - len(ref); d < -1 || d > 1 {
			return 0, fmt.Errorf("%s changed %d times, %s %d: not together", name, len(evs), refName, len(ref))
		}
		for i := 0; i < len(evs) && i < len(ref); i++ {
			if evs[i].Level != ref[i].Level {
				return 0, fmt.Errorf("change %d: %s went to %d, %s to %d: not together", i+1, name, evs[i].Level, refName, ref[i].Level)
			}
			d := evs[i].At.Sub(ref[i].At)
			if d < 0 {
				d = -d
			}
			worst = max(worst, d)
		}
	}
	return worst, nil
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

// us is d to the 0.1 ms, for timings compared with a tolerance.
func us(d time.Duration) string {
	return d.Round(100 * time.Microsecond).String()
}
