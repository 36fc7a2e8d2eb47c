// Package pl061trace reads QEMU's trace of the virt board's PL061 GPIO
// controller: the levels it put out and the inputs driven from outside,
// stamped with the host's clock. make hil and make system read the lines
// of a real kernel's GPIO through it.
package pl061trace

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is one line of QEMU's trace of the board's PL061: a level the
// controller put out on one of its 8 lines (pl061_set_output), the
// controller's reset (pl061_reset, Line -1), or, with Input set, a level
// the rig drove on an input line from outside (pl061_input_change, printed
// as QEMU applies it, before the guest can see it).
//
// QEMU prints a pl061_set_output only when a line's level changes, from the
// vCPU thread, during the guest's MMIO write: so the trace is the sequence
// of levels a scope on the pins would see, stamped with the host's clock.
type Event struct {
	At    time.Time
	Dev   string // QOM path of the PL061, e.g. /machine/unattached/device[6]
	Line  int    // 0..7; -1 for a reset
	Level int    // 0 or 1
	Input bool   // pl061_input_change: kept apart from the outputs (vm.inputs)
}

func (e Event) Reset() bool { return e.Line < 0 }

func (e Event) String() string {
	if e.Reset() {
		return fmt.Sprintf("%s reset %s", e.At.Format("15:04:05.000000"), e.Dev)
	}
	return fmt.Sprintf("%s line %d = %d", e.At.Format("15:04:05.000000"), e.Line, e.Level)
}

// Parse parses one line QEMU's "log" trace backend wrote. With
// `-msg timestamp=on` (QEMU 7.2, Debian 12) a line reads
//
//	7777@1795765306.916160:pl061_set_output /machine/unattached/device[6] setting output 0 to 0
//	7777@1795765306.916114:pl061_reset /machine/unattached/device[6] reset
//	7777@1796298373.012999:pl061_input_change /machine/unattached/device[7] input 6 changed to 0
//
// (thread id @ host gettimeofday); without it the "TID@SEC.USEC:" prefix is
// missing and arrived, when the line was read, stands in. ok is false for
// any other line (QEMU's own messages share stderr).
func Parse(s string, arrived time.Time) (e Event, ok bool) {
	s = strings.TrimRight(s, "\r\n")
	at := arrived
	if i := strings.IndexByte(s, ':'); i > 0 {
		if ts, ok := parseStamp(s[:i]); ok {
			at, s = ts, s[i+1:]
		}
	}
	name, rest, _ := strings.Cut(s, " ")
	switch name {
	case "pl061_set_output":
		// "<dev> setting output <line> to <level>"
		f := strings.Fields(rest)
		if len(f) != 6 || f[1] != "setting" || f[2] != "output" || f[4] != "to" {
			return Event{}, false
		}
		line, err1 := strconv.Atoi(f[3])
		level, err2 := strconv.Atoi(f[5])
		if err1 != nil || err2 != nil || line < 0 || line > 7 || (level != 0 && level != 1) {
			return Event{}, false
		}
		return Event{At: at, Dev: f[0], Line: line, Level: level}, true
	case "pl061_input_change":
		// "<dev> input <line> changed to <level>"
		f := strings.Fields(rest)
		if len(f) != 6 || f[1] != "input" || f[3] != "changed" || f[4] != "to" {
			return Event{}, false
		}
		line, err1 := strconv.Atoi(f[2])
		level, err2 := strconv.Atoi(f[5])
		if err1 != nil || err2 != nil || line < 0 || line > 7 || (level != 0 && level != 1) {
			return Event{}, false
		}
		return Event{At: at, Dev: f[0], Line: line, Level: level, Input: true}, true
	case "pl061_reset":
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "reset" {
			return Event{}, false
		}
		return Event{At: at, Dev: f[0], Line: -1}, true
	}
	return Event{}, false
}

// parseStamp reads "TID@SEC.USEC".
func parseStamp(s string) (time.Time, bool) {
	tid, ts, ok := strings.Cut(s, "@")
	if !ok || !digits(tid) {
		return time.Time{}, false
	}
	sec, usec, ok := strings.Cut(ts, ".")
	if !ok || !digits(sec) || len(usec) != 6 || !digits(usec) {
		return time.Time{}, false
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(usec, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(a, b*1000), true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Timeline collects the events of one VM run as they are read; safe for
// concurrent use (one reader goroutine appends, the checks look).
type Timeline struct {
	mu     sync.Mutex
	events []Event
}

func (tl *Timeline) Add(e Event) {
	tl.mu.Lock()
	tl.events = append(tl.events, e)
	tl.mu.Unlock()
}

// All returns a copy of every Event so far, in trace order.
func (tl *Timeline) All() []Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]Event(nil), tl.events...)
}

// OnLine returns the set_output events of line in [from, to] (a zero to
// means no end), in order.
func OnLine(evs []Event, line int, from, to time.Time) []Event {
	var out []Event
	for _, e := range evs {
		if e.Line != line || e.At.Before(from) || (!to.IsZero() && e.At.After(to)) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// LevelAt is the level line showed at t: the last Event on it at or
// before t. ok is false if the trace has none.
func LevelAt(evs []Event, line int, t time.Time) (level int, ok bool) {
	for _, e := range evs {
		if e.At.After(t) {
			break
		}
		if e.Line == line {
			level, ok = e.Level, true
		}
	}
	return level, ok
}

// LastReset is the time of the last pl061_reset in evs (zero if none).
func LastReset(evs []Event) time.Time {
	var t time.Time
	for _, e := range evs {
		if e.Reset() {
			t = e.At
		}
	}
	return t
}

// Levels formats the levels of evs as "0→1→0", starting with from's level
// if from >= 0.
func Levels(from int, evs []Event) string {
	var b strings.Builder
	if from >= 0 {
		b.WriteString(strconv.Itoa(from))
	}
	for _, e := range evs {
		if b.Len() > 0 {
			b.WriteString("→")
		}
		b.WriteString(strconv.Itoa(e.Level))
	}
	if b.Len() == 0 {
		return "(no change)"
	}
	return b.String()
}
