// Package led shows the agent's state on the status LEDs a field technician
// reads without a laptop (docs/design.md#status-leds; the printable card is
// docs/technician-card.md).
//
// Three LEDs, each optional: the status LED plays the pattern of the most
// severe state (PatternFor, States); the activity LED flashes once per
// message; the fault LED is on in auth, storage and config. Identify makes
// all of them blink together for a while so a technician finds the unit,
// then they go back to the current state. Play (and Panel.Play, on LEDs a
// running panel owns) shows every pattern in turn for `edge-agent led test`.
//
// The promise:
//
//   - One goroutine, started by NewPanel and stopped by Close, owns the LEDs.
//     SetState, Flash and Identify never block and never wait for it; Flash
//     does not allocate and is cheap enough to call for every message.
//   - A state change shows at once: the new pattern starts from its first
//     step at the moment the panel sees the change.
//   - Patterns keep to the clock, not to the count of timer firings: a late
//     wake-up does not stretch or shift later steps.
//   - An LED is written only when its level changes.
//   - Close leaves every LED off, its safe state, and is safe to call twice.
//
// All timing comes from a Clock, so tests play patterns on a fake clock
// (ledtest.Clock) against the simulated board and compare exact timelines.
//
// The package returns errors (Panel.Err, Play) and never logs.
package led
