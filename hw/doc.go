// Package hw is the agent's view of GPIO: output lines that drive relays and
// status LEDs, and the backends that hand them out.
//
// The promise:
//
//   - A line becomes an output already at the level the caller asked for, in
//     one request (Backend.Output): a relay or LED never glitches through the
//     other level at start-up or after a restart.
//   - A line is only ever written, never read back. On periph a Read turns an
//     output into an input (docs/dependencies.md#periph-read-on-an-output),
//     so whoever needs the state keeps it in software.
//   - A pin that does not exist on the board is an error that names the pin
//     and wraps ErrNoSuchPin, at the moment the line is asked for (start-up),
//     never later.
//   - Active-low wiring is handled here, in software (Switch, Level): the
//     periph character-device driver has no active-low support.
//
// A pin is a GPIO line name as the board's device tree names it ("GPIO17" on
// every Pi, Pi 5 included) or "gpiochipN:OFFSET" for a line without a name
// (ParsePin).
//
// Backends: hw/periph drives real lines through the kernel's GPIO character
// device; hw/sim is a complete simulated board for the demo, the tests and an
// operator without hardware. Both pass the conformance test in hw/hwtest.
// hw/led plays the status LED patterns on Switches.
//
// The package returns errors and never logs.
package hw
