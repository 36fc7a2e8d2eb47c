//go:build linux

package periph

import (
	"testing"
	"unsafe"

	"github.com/edge-agent/edge-agent/hw"
)

// The values are the kernel header's (linux/gpio.h), printed by a C program
// with sizeof/offsetof and the GPIO_V2_* ioctl macros; the layout must be the
// same on every target, 32-bit ARM included.
func TestChardevABI(t *testing.T) {
	var req gpioV2LineRequest
	var ev gpioV2LineEvent
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
		{"GPIO_V2_LINE_GET_VALUES_IOCTL", gpioV2LineGetValuesIoctl, 0xc010b40e},
		{"offsetof(gpio_v2_line_request, event_buffer_size)", unsafe.Offsetof(req.eventBufferSize), 564},
		{"sizeof(gpio_v2_line_event)", unsafe.Sizeof(ev), 48},
		{"offsetof(gpio_v2_line_event, id)", unsafe.Offsetof(ev.id), 8},
		{"offsetof(gpio_v2_line_event, offset)", unsafe.Offsetof(ev.offset), 12},
		{"offsetof(gpio_v2_line_event, line_seqno)", unsafe.Offsetof(ev.lineSeqno), 20},
		{"GPIO_V2_LINE_FLAG_INPUT", uintptr(gpioV2LineFlagInput), 0x4},
		{"GPIO_V2_LINE_FLAG_EDGE_RISING", uintptr(gpioV2LineFlagEdgeRising), 0x10},
		{"GPIO_V2_LINE_FLAG_EDGE_FALLING", uintptr(gpioV2LineFlagEdgeFalling), 0x20},
		{"GPIO_V2_LINE_FLAG_BIAS_PULL_UP", uintptr(gpioV2LineFlagBiasPullUp), 0x100},
		{"GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN", uintptr(gpioV2LineFlagBiasPullDown), 0x200},
		{"GPIO_V2_LINE_FLAG_BIAS_DISABLED", uintptr(gpioV2LineFlagBiasDisabled), 0x400},
		{"GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME", uintptr(gpioV2LineFlagEventClockRealtime), 0x800},
		{"GPIO_V2_LINE_EVENT_RISING_EDGE", uintptr(gpioV2LineEventRisingEdge), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if len(consumer) == 0 || len(consumer) > 31 {
		t.Errorf("consumer %q: want 1..31 bytes", consumer)
	}
}

func TestRequestInputMissingChip(t *testing.T) {
	_, err := requestInput("/dev/gpiochip-does-not-exist", 3, hw.BiasUp)
	if err == nil {
		t.Fatal("requestInput on a missing chip succeeded")
	}
}

func TestRequestOutputMissingChip(t *testing.T) {
	_, err := requestOutput("/dev/gpiochip-does-not-exist", 3, true)
	if err == nil {
		t.Fatal("requestOutput on a missing chip succeeded")
	}
}
