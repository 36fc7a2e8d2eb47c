package control

import "github.com/edge-agent/edge-agent/hw/led"

// hints is what a technician checks first in each state the LEDs show, and
// for the two other things `led test` plays. One line each: `led test` and
// `status` print them, and the technician's card carries the same words.
var hints = map[string]string{
	led.StateOK:         "nothing: the unit is fine",
	led.StateBacklog:    "normal for a moment after reconnecting; if it stays for many minutes, call the operator",
	led.StateConnecting: "network cable seated and its port lights on; switch/router powered; Wi-Fi in range; does another device (a phone) on the same network reach the internet? A minute of this after power-up is normal",
	led.StateAuth:       "just powered up? The unit has no clock battery: give it a few minutes with network to set its time. Still blinking: call the operator",
	led.StateBootstrap:  "as for connecting: the network first; then call the operator (the account service may be down)",
	led.StateStorage:    "call the operator; do not swap the SD card unasked (it holds the unit's data). Relays keep their state",
	led.StateConfig:     "nothing to fix on site: call the operator (was the unit just reconfigured or updated?); with a shell: edge-agent config check",
	"activity":          "nothing: one flash per message received",
	"identify":          "nothing: this is the unit someone asked to identify itself",
}

// Hint is what to check first when the LEDs show state (a status state,
// "activity" or "identify"); "" for an unknown name.
func Hint(state string) string { return hints[state] }
