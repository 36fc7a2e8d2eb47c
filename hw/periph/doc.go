// Package periph drives real GPIO lines through the Linux GPIO character
// device (/dev/gpiochipN), found by periph.io host v3.8.5's gpioioctl driver.
//
// It imports only periph.io/x/host/v3/gpioioctl and runs driverreg.Init once
// per process: that driver works on every Pi, Pi 5 included, and on kernels
// where sysfs numbering moved to 512+
// (docs/dependencies.md#periph-gpioioctl-not-bcm283x; the other periph traps
// are beside it in docs/dependencies.md, and comments here cite their
// anchors). Chips are never closed: GPIOChip.Close closes a descriptor twice.
//
// A pin is a line name as the device tree names it ("GPIO17"), looked up with
// gpioreg.ByName, or "gpiochipN:OFFSET", looked up in gpioioctl.Chips.
//
// # The initial level: why this package requests lines itself
//
// The promise of hw.Backend is that a line becomes an output already at the
// requested level. periph's GPIOLine.Out cannot keep it. The first Out of a
// line (periph.io/x/host/v3@v3.8.5/gpioioctl/gpio.go) takes these steps:
//
//	gpio.go:147  err := line.setOut()                  (direction not yet output)
//	gpio.go:270  ioctl_gpio_v2_line_request(...)       GET_LINE, config.flags = 0: direction as-is
//	gpio.go:284  line.setLine(getFlags(LineOutput,...)) then
//	gpio.go:295  ioctl_gpio_v2_line_config(...)        SET_CONFIG, flag OUTPUT, no attributes
//	gpio.go:157  ioctl_set_gpio_v2_line_values(...)    the requested level, one ioctl later
//
// A line config with the OUTPUT flag and no GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
// attribute makes the kernel drive the line low (drivers/gpio/gpiolib-cdev.c,
// gpio_v2_line_config_output_value returns 0 without that attribute), so
// Out(High) shows a short low first, and a relay wired active-low clicks on
// at every restart. The LineSet API does not help:
// LineSetConfig.getLineSetRequestStruct (lineset.go:80 and :83) sets only
// flags and GPIO_V2_LINE_ATTR_ID_FLAGS attributes, never output values, so a
// LineSet output starts low too. periph v3.8.5 has no public way to give an
// initial value.
//
// So for a line that is a gpioioctl.GPIOLine this package makes the one
// request itself, on the chip's device file: GPIO_V2_GET_LINE_IOCTL with the
// OUTPUT flag and an OUTPUT_VALUES attribute holding the level, which the
// kernel applies as it switches the direction (linux/gpio.h: "@values: if id
// is GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES, a bitmap containing the values to
// which the lines will be set"). Set then writes with
// GPIO_V2_LINE_SET_VALUES_IOCTL on that request's descriptor. The structs are
// the kernel's uapi ones (checked in a test against their sizes and offsets,
// the same on 32- and 64-bit ARM). The line is held for the life of the
// process, as the kernel wants for an output; a second request for it, from
// here or another process, fails busy.
//
// A pin that is not a GPIOLine (another driver's, or a test fake) is made an
// output with its Out(level), the best the gpio.PinOut interface offers.
//
// Lines are never read: Read on a periph line turns it into an input
// (docs/dependencies.md#periph-read-on-an-output). There is no active-low
// here: hw.Switch inverts in software.
//
// The package returns errors and never logs, though periph's gpioioctl itself
// logs through the standard log package when a chip cannot be opened at Init.
package periph
