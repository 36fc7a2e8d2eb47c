package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestParseProbe(t *testing.T) {
	// A report as the control channel returned it in a run (tabs for newlines).
	text := "initial 3 1\tedge 3 0 1796298373337152352 0\tedge 3 1 1796298373388591952 1\tfinal 3 1\tclosed 3 27194\treopened 3\t"
	p, err := parseProbe(text)
	if err != nil {
		t.Fatal(err)
	}
	if p.initial[3] != 1 || p.final[3] != 1 || !p.reopened[3] || p.closed[3] != 27194*time.Microsecond || len(p.errs) != 0 {
		t.Errorf("parsed %+v", p)
	}
	want := []probeEdge{{3, 0, time.Unix(0, 1796298373337152352), 0}, {3, 1, time.Unix(0, 1796298373388591952), 1}}
	if fmt.Sprint(p.edges) != fmt.Sprint(want) {
		t.Errorf("edges %v, want %v", p.edges, want)
	}
	p, err = parseProbe("initial 3 1\terror line 3: Edges still open 2 s after Close")
	if err != nil || len(p.errs) != 1 || !strings.Contains(p.errs[0], "still open") {
		t.Errorf("error line: %+v, %v", p, err)
	}
	for _, bad := range []string{"edge 3 0 x 0", "edge 3 0", "initial 3", "weird 1 2", "closed 3 1 2"} {
		if _, err := parseProbe(bad); err == nil {
			t.Errorf("parseProbe(%q): no error", bad)
		}
	}
}

// The inputs board shares no line between outputs and inputs, leaves the
// power button's line (the probe's) alone, toggles a relay it has, and
// its config is TOML with the [[input]] keys of the product's design.
func TestInputsBoardAndConfig(t *testing.T) {
	seen := map[int]string{}
	use := func(name string, off int) {
		if off < 0 || off > 7 || off == powerButtonLine {
			t.Errorf("%s on line %d", name, off)
		}
		if o, dup := seen[off]; dup {
			t.Errorf("%s and %s share line %d", name, o, off)
		}
		seen[off] = name
	}
	for _, p := range inputsBoard {
		use(p.name, p.offset)
	}
	toggles := 0
	for _, in := range inputsInputs {
		use(in.name, in.offset)
		if in.level(false) != in.idle {
			t.Errorf("input %s rests at %d, which is not inactive", in.name, in.idle)
		}
		if in.toggles != "" {
			toggles++
			if p := pinByName(in.toggles); p.led {
				t.Errorf("%s toggles LED %s", in.name, p.name)
			}
		}
	}
	if toggles == 0 {
		t.Error("no input toggles a relay")
	}
	// The relays are the default board's, on the same lines: the checks'
	// relay helpers (relays(), pinByName) serve both boots.
	if fmt.Sprint(relaysOf(inputsBoard)) != fmt.Sprint(relays()) {
		t.Errorf("inputs board relays %v, default %v", relaysOf(inputsBoard), relays())
	}
	var doc struct {
		LEDs  map[string]any `toml:"leds"`
		Relay []struct {
			Name string `toml:"name"`
		} `toml:"relay"`
		Input []struct {
			Name      string `toml:"name"`
			Pin       string `toml:"pin"`
			Pull      string `toml:"pull"`
			ActiveLow bool   `toml:"active_low"`
			Debounce  string `toml:"debounce"`
			Toggles   string `toml:"toggles"`
		} `toml:"input"`
	}
	cfg := inputsConfig("hil-arm64", 34567)
	if err := toml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatalf("config is not TOML: %v\n%s", err, cfg)
	}
	if len(doc.Relay) != 4 || len(doc.LEDs) != 2 || doc.LEDs["status"] != "gpiochip@CHIP@:5" || len(doc.Input) != len(inputsInputs) {
		t.Fatalf("relays %d, leds %v, inputs %d:\n%s", len(doc.Relay), doc.LEDs, len(doc.Input), cfg)
	}
	for i, in := range inputsInputs {
		got := doc.Input[i]
		if got.Name != in.name || got.Pin != fmt.Sprintf("gpiochip@CHIP@:%d", in.offset) || got.Pull != in.pull ||
			got.ActiveLow != in.activeLow || got.Debounce != in.debounce || got.Toggles != in.toggles {
			t.Errorf("input %d = %+v, want %+v", i, got, in)
		}
	}
	if strings.Contains(agentConfig("hil-arm64", 34567), "[[input]]") {
		t.Error("the default config has inputs: today's agent would refuse it")
	}
}
