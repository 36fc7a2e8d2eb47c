package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/hw/led"
)

// playingActs announces every pattern as a panel's Play does.
type playingActs struct{ fakeActs }

func (a *playingActs) LEDTest(_ time.Duration, announce func(string)) error {
	for _, name := range led.PlayOrder() {
		announce(name)
	}
	return nil
}

// led test prints, for each pattern, how it looks and what a technician
// checks first when it shows.
func TestCLILEDTestPrintsHints(t *testing.T) {
	t.Parallel()
	cfg := fakeDaemon(t, nil, &playingActs{})
	code, out, errOut := cli("led", "test", "-each", "10ms", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range led.PlayOrder() {
		want := name + strings.Repeat(" ", 12-len(name)) + led.Look(name) + "\n" +
			strings.Repeat(" ", 12) + "check first: " + control.Hint(name) + "\n"
		if !strings.Contains(out, want) {
			t.Errorf("led test output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"check first: nothing to fix on site: call the operator (was the unit just reconfigured or updated?); with a shell: edge-agent config check",
		"check first: call the operator; do not swap the SD card unasked",
		"check first: network cable seated and its port lights on",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("led test output lacks %q:\n%s", want, out)
		}
	}
}
