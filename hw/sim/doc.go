// Package sim is a simulated GPIO board: a real hw.Backend, built on the same
// interfaces as the periph one, for the demo, the tests and an operator who
// runs the agent without hardware ([hw] backend = "sim").
//
// The board has the Raspberry Pi header's lines GPIO0..GPIO27 and the
// unnamed lines gpiochip0:0..gpiochip0:53 (the BCM2835 chip's 54 lines; the
// two spellings are different lines here, as the sim has no device tree that
// ties them). Any other pin is an error wrapping hw.ErrNoSuchPin that names
// the pin and says which exist. A pin handed out once cannot be asked for
// again, like a busy kernel line.
//
// The promise: every level a line is driven to is recorded in order with the
// time from the injected clock, starting with the initial level at Output
// time (marked Initial), and reported synchronously to the OnTransition
// callback. Driving a line to the level it already has is recorded too (a
// real write happened). The log keeps the most recent MaxTransitions entries
// so a long-running sim does not grow without limit. A Sim is safe for
// concurrent use.
package sim
