package control

import "github.com/edge-agent/edge-agent/hw/led"

// hints is what a technician checks first in each state the LEDs show, and
// for the two other things `led test` plays. One line each: `led test` and
// `status` print them, and the technician's card carries the same words.
var hints = map[string]string{
	led.StateOK:         "nothing: all fine",
	led.StateBacklog:    "nothing: it is catching up",
	led.StateConnecting: "the network cable / Wi-Fi and that the broker is reachable (a minute of this after power-up is normal)",
	led.StateAuth:       "credentials or certificates: the clock (NTP; the unit has no clock battery) and the password/certificate files",
	led.StateBootstrap:  "the account service is unreachable: the network, as for connecting, and bootstrap.login_url",
	led.StateStorage:    "the SD card is full or failing: free space or replace the card",
	led.StateConfig:     "run edge-agent config check and fix what it lists, then restart the agent",
	"activity":          "nothing: one flash per message received",
	"identify":          "nothing: this is the unit someone asked to identify itself",
}

// Hint is what to check first when the LEDs show state (a status state,
// "activity" or "identify"); "" for an unknown name.
func Hint(state string) string { return hints[state] }
