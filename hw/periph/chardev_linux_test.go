//go:build linux

package periph

import (
	"testing"
	"unsafe"
)

// The values are the kernel header's (linux/gpio.h), printed by a C program
// with sizeof/offsetof and the GPIO_V2_* ioctl macros; the layout must be the
// same on every target, 32-bit ARM included.
func TestChardevABI(t *testing.T) {
	var req gpioV2LineRequest
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(gpio_v2_line_request)", unsafe.Sizeof(req), 592},
		{"sizeof(gpio_v2_line_config)", unsafe.Sizeof(req.config), 272},
		{"sizeof(gpio_v2_line_config_attribute)", unsafe.Sizeof(req.config.attrs[0]), 24},
		{"sizeof(gpio_v2_line_values)", unsafe.Sizeof(gpioV2LineValues{}), 16},
		{"offsetof(gpio_v2_line_request, config)", unsafe.Offsetof(req.config), 288},
		{"offsetof(gpio_v2_line_request, num_lines)", unsafe.Offsetof(req.numLines), 560},
		{"offsetof(gpio_v2_line_request, fd)", unsafe.Offsetof(req.fd), 588},
		{"offsetof(gpio_v2_line_config, attrs)", unsafe.Offsetof(req.config.attrs), 32},
		{"offsetof(gpio_v2_line_config_attribute, mask)", unsafe.Offsetof(req.config.attrs[0].mask), 16},
		{"GPIO_V2_GET_LINE_IOCTL", gpioV2GetLineIoctl, 0xc250b407},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", gpioV2LineSetValuesIoctl, 0xc010b40f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if len(consumer) == 0 || len(consumer) > 31 {
		t.Errorf("consumer %q: want 1..31 bytes", consumer)
	}
}

func TestRequestOutputMissingChip(t *testing.T) {
	_, err := requestOutput("/dev/gpiochip-does-not-exist", 3, true)
	if err == nil {
		t.Fatal("requestOutput on a missing chip succeeded")
	}
}
