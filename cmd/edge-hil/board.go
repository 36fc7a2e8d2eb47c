package main

import (
	"fmt"
	"strings"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// pin is one of the PL061's lines as the agent's config uses it.
type pin struct {
	name      string // relay name, or the LED ("status", "activity", "fault")
	offset    int    // PL061 line
	led       bool
	activeLow bool   // relays only; the LEDs are active high
	powerOn   string // relays: off | restore
}

// The board: QEMU's virt PL061 has 8 lines. Line 3 is wired to the power
// button (QEMU's gpio-key; the kernel's gpio-keys driver would claim it),
// so it is left alone. Four relays cover both wirings and both power_on
// policies that matter after a power cut; the three LEDs take the rest.
// Every line the agent drives is a line the trace shows, so no gpio-sim is
// needed (the checks need no input line and no more than 7 outputs).
var board = []pin{
	{name: "pump", offset: 0, powerOn: "off"},
	{name: "valve", offset: 1, activeLow: true, powerOn: "off"},
	{name: "lamp", offset: 2, powerOn: "restore"},
	{name: "heater", offset: 4, activeLow: true, powerOn: "restore"},
	{name: "status", offset: 5, led: true},
	{name: "activity", offset: 6, led: true},
	{name: "fault", offset: 7, led: true},
}

// powerButtonLine is the PL061 line QEMU's virt board wires to its power
// button. No config here takes it, so the kernel-level input check
// (gpioprobe) drives it: QEMU's gpio-key moves it only on system_powerdown,
// which the rig never sends, and the initramfs does not load gpio-keys.
const powerButtonLine = 3

// input is one of the PL061's lines as an [[input]] of the agent's config
// (docs/design.md#inputs-relay-feedback-and-safe-state).
type input struct {
	name      string
	offset    int
	pull      string // up | down | none
	activeLow bool
	debounce  string
	toggles   string // a relay's name, or ""
	idle      int    // the wire's resting level (the rig sets it: QEMU has no pulls)
}

// The input checks' board (boot config "inputs"): the same four relays,
// the status LED only, and two inputs on the activity and fault LEDs'
// lines, wired as a door contact and a push button would be (pulled up,
// closing to ground: active low). The button toggles the pump. Line 3 stays
// the power button's. A second config, booted on its own, rather than fewer
// LEDs for every check: the LED checks keep all three, and the input lines
// have never been outputs when the agent takes them (QEMU's PL061 ignores
// an input level set while a line is an output).
var (
	inputsBoard = []pin{
		{name: "pump", offset: 0, powerOn: "off"},
		{name: "valve", offset: 1, activeLow: true, powerOn: "off"},
		{name: "lamp", offset: 2, powerOn: "restore"},
		{name: "heater", offset: 4, activeLow: true, powerOn: "restore"},
		{name: "status", offset: 5, led: true},
	}
	inputsInputs = []input{
		{name: "door", offset: 6, pull: "up", activeLow: true, debounce: "20ms", idle: 1},
		{name: "button", offset: 7, pull: "up", activeLow: true, debounce: "20ms", toggles: "pump", idle: 1},
	}
)

func inputByName(name string) input {
	for _, in := range inputsInputs {
		if in.name == name {
			return in
		}
	}
	panic("no input " + name)
}

// level is the electrical level of in for a logical active/inactive.
func (in input) level(active bool) int {
	if active != in.activeLow {
		return 1
	}
	return 0
}

// idleLevels are the inputs' resting levels, set at QEMU's start.
func idleLevels(ins []input) map[int]int {
	m := map[int]int{}
	for _, in := range ins {
		m[in.offset] = in.idle
	}
	return m
}

// level is the electrical level of p for a logical on/off.
func (p pin) level(on bool) int {
	if on != p.activeLow {
		return 1
	}
	return 0
}

func (p pin) wiring() string {
	if p.activeLow {
		return "active low"
	}
	return "active high"
}

func pinByName(name string) pin {
	for _, p := range board {
		if p.name == name {
			return p
		}
	}
	panic("no pin " + name)
}

func relays() []pin { return relaysOf(board) }

func relaysOf(b []pin) []pin {
	var out []pin
	for _, p := range b {
		if !p.led {
			out = append(out, p)
		}
	}
	return out
}

// chipPlaceholder is replaced by the guest's init with the number of the
// PL061's gpiochip, which only the guest can know.
const chipPlaceholder = "@CHIP@"

// The agent's user on the rig's broker (throw-away, this run only).
const (
	agentUser = "gw-hil"
	agentPass = "hil-secret-never-logged"
)

// agentConfig is the agent's config.toml for device, broker on the host's
// loopback at port, with pins as "gpiochip@CHIP@:OFFSET".
func agentConfig(device string, port int) string { return boardConfig(device, port, board, nil) }

// inputsConfig is the config of the input checks' boot (inputsBoard).
func inputsConfig(device string, port int) string {
	return boardConfig(device, port, inputsBoard, inputsInputs)
}

func boardConfig(device string, port int, pins []pin, ins []input) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by cmd/edge-hil; %s is the PL061's gpiochip number, filled in by the guest's init", chipPlaceholder)
	w("device_id = %q", device)
	w(`data_dir = "/data/edge-agent"`)
	w("")
	b.WriteString(testcloud.MQTTConfig(port, agentUser))
	w("")
	w("[hw]")
	w(`backend = "periph"`)
	w("")
	w("[leds]")
	for _, p := range pins {
		if p.led {
			w("%s = %q", p.name, linePin(p.offset))
		}
	}
	w("active_low = false")
	w("")
	w("[store]")
	w(`max_db_size = "32MiB"`) // the guest's data disk is 64 MiB
	w(`retain_bytes = "8MiB"`)
	for _, p := range relaysOf(pins) {
		w("")
		w("[[relay]]")
		w("name = %q", p.name)
		w("pin = %q", linePin(p.offset))
		w("active_low = %v", p.activeLow)
		w("power_on = %q", p.powerOn)
	}
	for _, in := range ins {
		w("")
		w("[[input]]")
		w("name = %q", in.name)
		w("pin = %q", linePin(in.offset))
		w("pull = %q", in.pull)
		w("active_low = %v", in.activeLow)
		w("debounce = %q", in.debounce)
		if in.toggles != "" {
			w("toggles = %q", in.toggles)
		}
	}
	return b.String()
}

func linePin(offset int) string {
	return fmt.Sprintf("gpiochip%s:%d", chipPlaceholder, offset)
}
