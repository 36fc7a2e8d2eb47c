package control

import (
	"os"
	"path/filepath"
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

// The technician's card carries, for each state, the same "check first"
// words `led test` and `status` print.
func TestCardCarriesTheHints(t *testing.T) {
	card, err := os.ReadFile(filepath.Join("..", "..", "docs", "technician-card.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range led.States() {
		row := "| `" + s + "` |"
		i := strings.Index(string(card), row)
		if i < 0 {
			t.Errorf("the card has no row for %s", s)
			continue
		}
		line, _, _ := strings.Cut(string(card[i:]), "\n")
		if !strings.HasSuffix(line, "| "+Hint(s)+" |") {
			t.Errorf("the card's %s row does not end with the hint %q:\n%s", s, Hint(s), line)
		}
	}
}
