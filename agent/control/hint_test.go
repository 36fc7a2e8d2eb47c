package control

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/hw/led"
)

// Every pattern led test plays has a one-line hint; nothing else has one.
func TestHintForEveryPattern(t *testing.T) {
	for _, name := range led.PlayOrder() {
		h := Hint(name)
		if h == "" || strings.Contains(h, "\n") {
			t.Errorf("Hint(%q) = %q, want one line", name, h)
		}
	}
	if len(hints) != len(led.PlayOrder()) {
		t.Errorf("%d hints for %d patterns", len(hints), len(led.PlayOrder()))
	}
	if Hint("nonsense") != "" {
		t.Error("a hint for an unknown state")
	}
}
