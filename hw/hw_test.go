package hw_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/sim"
)

func TestLevel(t *testing.T) {
	for _, c := range []struct{ on, activeLow, high bool }{
		{on: true, activeLow: false, high: true},
		{on: false, activeLow: false, high: false},
		{on: true, activeLow: true, high: false},
		{on: false, activeLow: true, high: true},
	} {
		if got := hw.Level(c.on, c.activeLow); got != c.high {
			t.Errorf("Level(on=%t, activeLow=%t) = %t, want %t", c.on, c.activeLow, got, c.high)
		}
	}
}

func TestParsePin(t *testing.T) {
	for _, c := range []struct {
		in           string
		chip, offset int
		ok           bool
	}{
		{"gpiochip0:17", 0, 17, true},
		{"gpiochip4:0", 4, 0, true},
		{"gpiochip12:511", 12, 511, true},
		{"GPIO17", 0, 0, false},
		{"gpiochip0", 0, 0, false},
		{"gpiochip0:", 0, 0, false},
		{"gpiochip:3", 0, 0, false},
		{"gpiochip0:-1", 0, 0, false},
		{"gpiochip0:+1", 0, 0, false},
		{"gpiochip0: 1", 0, 0, false},
		{"gpiochip0:1:2", 0, 0, false},
		{"gpiochip0:0x10", 0, 0, false},
		{"gpiochip0:99999999999999999999", 0, 0, false},
		{"/dev/gpiochip0:1", 0, 0, false},
		{"", 0, 0, false},
	} {
		chip, off, ok := hw.ParsePin(c.in)
		if chip != c.chip || off != c.offset || ok != c.ok {
			t.Errorf("ParsePin(%q) = %d, %d, %t; want %d, %d, %t", c.in, chip, off, ok, c.chip, c.offset, c.ok)
		}
	}
}

func TestSwitch(t *testing.T) {
	s := sim.New(nil)
	for _, c := range []struct {
		pin       string
		activeLow bool
		want      []bool // levels for: open on, Set(off), Set(on)
	}{
		{"GPIO17", false, []bool{true, false, true}},
		{"GPIO18", true, []bool{false, true, false}},
	} {
		sw, err := hw.OpenSwitch(s, c.pin, c.activeLow, true)
		if err != nil {
			t.Fatal(err)
		}
		if sw.Pin() != c.pin {
			t.Errorf("switch on %q: Pin() = %q", c.pin, sw.Pin())
		}
		if err := sw.Set(false); err != nil {
			t.Fatal(err)
		}
		if err := sw.Set(true); err != nil {
			t.Fatal(err)
		}
		var got []bool
		for _, tr := range s.Transitions() {
			if tr.Pin == c.pin {
				got = append(got, tr.High)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s activeLow=%t: levels %v, want %v", c.pin, c.activeLow, got, c.want)
		}
	}
	if _, err := hw.OpenSwitch(s, "GPIO99", false, false); !errors.Is(err, hw.ErrNoSuchPin) {
		t.Errorf("OpenSwitch(GPIO99) err = %v, want ErrNoSuchPin", err)
	}
}
