package main

import (
	"strings"
	"testing"
	"time"
)

var arrived = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func TestParseTrace(t *testing.T) {
	for _, c := range []struct {
		name, line string
		ok         bool
		want       event
	}{
		{"set_output with the log backend's stamp",
			"7777@1795765306.916160:pl061_set_output /machine/unattached/device[6] setting output 5 to 1\n", true,
			event{At: time.Unix(1795765306, 916160000), Dev: "/machine/unattached/device[6]", Line: 5, Level: 1}},
		{"reset",
			"7777@1795765306.916114:pl061_reset /machine/unattached/device[6] reset", true,
			event{At: time.Unix(1795765306, 916114000), Dev: "/machine/unattached/device[6]", Line: -1}},
		{"no stamp (timestamp=off): the arrival time stands in",
			"pl061_set_output /machine/unattached/device[6] setting output 0 to 0", true,
			event{At: arrived, Dev: "/machine/unattached/device[6]", Line: 0}},
		{"input change (driven through qtest)",
			"28472@1796298373.012999:pl061_input_change /machine/unattached/device[7] input 6 changed to 0", true,
			event{At: time.Unix(1796298373, 12999000), Dev: "/machine/unattached/device[7]", Line: 6, Level: 0, Input: true}},
		{"input change out of range", "1@1.000000:pl061_input_change /m input 9 changed to 1", false, event{}},
		{"input change truncated", "1@1.000000:pl061_input_change /m input 2 changed", false, event{}},
		{"other trace event", "7777@1795765306.916114:pl061_update /m GPIODIR 0x1 GPIODATA 0x0 pullups 0x0 floating 0x0", false, event{}},
		{"QEMU message", "qemu-system-aarch64: terminating on signal 9", false, event{}},
		{"line out of range", "1@1.000000:pl061_set_output /m setting output 8 to 1", false, event{}},
		{"level not 0/1", "1@1.000000:pl061_set_output /m setting output 2 to 2", false, event{}},
		{"truncated", "1@1.000000:pl061_set_output /m setting output 2", false, event{}},
		{"bad stamp is not a stamp", "x@1.0:pl061_set_output /m setting output 2 to 1", false, event{}},
		{"empty", "", false, event{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := parseTrace(c.line, arrived)
			if ok != c.ok {
				t.Fatalf("parseTrace(%q) ok = %v, want %v", c.line, ok, c.ok)
			}
			if ok && (!got.At.Equal(c.want.At) || got.Dev != c.want.Dev || got.Line != c.want.Line || got.Level != c.want.Level || got.Input != c.want.Input) {
				t.Errorf("parseTrace(%q) = %+v, want %+v", c.line, got, c.want)
			}
		})
	}
}

// A trace as QEMU 7.2 printed it in a run where the agent used periph's
// own Out() (the negative control): the PL061 reset, the valve and heater
// lines driven high at boot, then a restart of the agent that drove the
// held lines low for ~40 µs before setting them high again.
const glitchTrace = `24952@1795766000.000000:pl061_reset /machine/unattached/device[7] reset
24952@1795766000.000039:pl061_set_output /machine/unattached/device[7] setting output 0 to 0
24952@1795766000.000041:pl061_set_output /machine/unattached/device[7] setting output 1 to 0
24952@1795766000.000042:pl061_set_output /machine/unattached/device[7] setting output 2 to 0
24952@1795766000.000043:pl061_set_output /machine/unattached/device[7] setting output 3 to 0
24952@1795766000.000043:pl061_set_output /machine/unattached/device[7] setting output 4 to 0
24952@1795766000.000044:pl061_set_output /machine/unattached/device[7] setting output 5 to 0
24952@1795766000.000045:pl061_set_output /machine/unattached/device[7] setting output 6 to 0
24952@1795766000.000045:pl061_set_output /machine/unattached/device[7] setting output 7 to 0
24975@1795766003.006314:pl061_set_output /machine/unattached/device[7] setting output 1 to 1
24975@1795766003.007344:pl061_set_output /machine/unattached/device[7] setting output 4 to 1
qemu-system-aarch64: a stray message
30685@1795766010.560302:pl061_set_output /machine/unattached/device[7] setting output 1 to 0
30685@1795766010.560343:pl061_set_output /machine/unattached/device[7] setting output 1 to 1
30685@1795766010.560570:pl061_set_output /machine/unattached/device[7] setting output 4 to 0
30685@1795766010.560604:pl061_set_output /machine/unattached/device[7] setting output 4 to 1
`

func parseAll(t *testing.T, s string) []event {
	t.Helper()
	var evs []event
	for _, l := range strings.Split(s, "\n") {
		if e, ok := parseTrace(l, arrived); ok {
			evs = append(evs, e)
		}
	}
	return evs
}

func TestRecordedTraceBootAndRestart(t *testing.T) {
	evs := parseAll(t, glitchTrace)
	if len(evs) != 15 {
		t.Fatalf("parsed %d events, want 15", len(evs))
	}
	reset := lastReset(evs)
	if !reset.Equal(time.Unix(1795766000, 0)) {
		t.Fatalf("lastReset = %v", reset)
	}
	boot := time.Unix(1795766005, 0) // before the restart
	// At boot: valve (line 1) goes straight from the reset's 0 to 1: passes.
	line1 := onLine(evs, 1, reset, boot)
	if err := straight(line1[0].Level, line1[1:], 1); err != nil {
		t.Errorf("boot, line 1: %v", err)
	}
	// The restart: line 1 is held high, the trace shows 1→0→1: fails.
	restart := time.Unix(1795766010, 0)
	before, ok := levelAt(evs, 1, restart)
	if !ok || before != 1 {
		t.Fatalf("levelAt(line 1, before restart) = %d, %v; want 1", before, ok)
	}
	err := straight(before, onLine(evs, 1, restart, time.Time{}), 1)
	if err == nil || !strings.Contains(err.Error(), "1→0→1") || !strings.Contains(err.Error(), "passed through 0") {
		t.Errorf("restart glitch on line 1: err = %v, want it named (1→0→1, passed through 0)", err)
	}
	// Line 2 never moved after reset.
	if got := onLine(evs, 2, reset.Add(time.Millisecond), time.Time{}); len(got) != 0 {
		t.Errorf("line 2 events after reset: %v", got)
	}
}

func TestLevelAtAndOnLine(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	evs := []event{
		{At: at(0), Line: -1},
		{At: at(0), Line: 1, Level: 0},
		{At: at(10), Line: 1, Level: 1},
		{At: at(20), Line: 2, Level: 1},
		{At: at(30), Line: 1, Level: 0},
	}
	if _, ok := levelAt(evs, 5, at(100)); ok {
		t.Error("levelAt of a line with no event reported a level")
	}
	for _, c := range []struct {
		ms, want int
	}{{0, 0}, {9, 0}, {10, 1}, {29, 1}, {30, 0}, {99, 0}} {
		if got, _ := levelAt(evs, 1, at(c.ms)); got != c.want {
			t.Errorf("levelAt(line 1, %d ms) = %d, want %d", c.ms, got, c.want)
		}
	}
	if got := onLine(evs, 1, at(5), at(30)); len(got) != 2 || got[0].Level != 1 || got[1].Level != 0 {
		t.Errorf("onLine(1, 5..30 ms) = %v, want the changes at 10 and 30 ms", got)
	}
	if got := onLine(evs, 1, at(5), time.Time{}); len(got) != 2 {
		t.Errorf("onLine with no end = %v", got)
	}
	if got := levels(1, onLine(evs, 1, at(5), at(30))); got != "1→1→0" {
		t.Errorf("levels = %q", got)
	}
}
