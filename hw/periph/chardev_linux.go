//go:build linux

package periph

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"
)

const haveChardev = true

// The GPIO v2 character-device ABI, from the kernel's uapi linux/gpio.h. Every
// 64-bit field sits at a multiple of 8 by the header's own padding, so Go lays
// these out as the kernel does on 32- and 64-bit targets alike (the test
// checks sizes and offsets against the header's).
const (
	gpioMaxNameSize      = 32
	gpioV2LinesMax       = 64
	gpioV2LineNumAttrMax = 10

	gpioV2LineFlagOutput         uint64 = 1 << 3
	gpioV2LineAttrIDOutputValues uint32 = 2
)

type gpioV2LineConfigAttribute struct {
	id      uint32
	padding uint32
	values  uint64 // the union, as GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES uses it
	mask    uint64
}

type gpioV2LineConfig struct {
	flags    uint64
	numAttrs uint32
	padding  [5]uint32
	attrs    [gpioV2LineNumAttrMax]gpioV2LineConfigAttribute
}

type gpioV2LineRequest struct {
	offsets         [gpioV2LinesMax]uint32
	consumer        [gpioMaxNameSize]byte
	config          gpioV2LineConfig
	numLines        uint32
	eventBufferSize uint32
	padding         [5]uint32
	fd              int32
}

type gpioV2LineValues struct {
	bits uint64
	mask uint64
}

// _IOWR(0xB4, nr, size) in the generic Linux encoding (arm, arm64, amd64).
func iowr(nr, size uintptr) uintptr {
	const read, write = 2, 1
	return (read|write)<<30 | size<<16 | 0xB4<<8 | nr
}

var (
	gpioV2GetLineIoctl       = iowr(0x07, unsafe.Sizeof(gpioV2LineRequest{}))
	gpioV2LineSetValuesIoctl = iowr(0x0F, unsafe.Sizeof(gpioV2LineValues{}))
)

// consumer is the name the kernel shows for our lines (gpioinfo), as periph's
// own: program@pid, at most 31 bytes.
var consumer = func() string {
	s := filepath.Base(os.Args[0]) + "@" + strconv.Itoa(os.Getpid())
	if len(s) > gpioMaxNameSize-1 {
		s = s[:gpioMaxNameSize-1]
	}
	return s
}()

// lineFD is one line requested as an output; the kernel holds it for us
// until the descriptor is closed (at exit, or if the output is dropped).
type lineFD struct {
	f *os.File
}

// requestOutput requests line offset of the chip at path as an output whose
// initial level is high, in one GPIO_V2_GET_LINE_IOCTL: the kernel sets the
// value as it switches the direction, so the line never shows the other level.
func requestOutput(path string, offset int, high bool) (*lineFD, error) {
	// Our own descriptor for the chip, closed when done: the line request
	// outlives it. periph's GPIOChip is never closed
	// (docs/dependencies.md#periph-never-close-a-chip).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var req gpioV2LineRequest
	req.offsets[0] = uint32(offset)
	req.numLines = 1
	copy(req.consumer[:gpioMaxNameSize-1], consumer)
	req.config.flags = gpioV2LineFlagOutput
	req.config.numAttrs = 1
	req.config.attrs[0] = gpioV2LineConfigAttribute{id: gpioV2LineAttrIDOutputValues, values: bit(high), mask: 1}
	if err := ioctl(f, gpioV2GetLineIoctl, unsafe.Pointer(&req)); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("request line %d of %s: line busy (used by another program, see gpioinfo): %w", offset, path, err)
		}
		return nil, fmt.Errorf("request line %d of %s: %w", offset, path, err)
	}
	if req.fd <= 0 {
		return nil, fmt.Errorf("request line %d of %s: kernel returned no descriptor", offset, path)
	}
	syscall.CloseOnExec(int(req.fd))
	return &lineFD{f: os.NewFile(uintptr(req.fd), fmt.Sprintf("%s line %d", path, offset))}, nil
}

func (l *lineFD) set(high bool) error {
	v := gpioV2LineValues{bits: bit(high), mask: 1}
	if err := ioctl(l.f, gpioV2LineSetValuesIoctl, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("GPIO_V2_LINE_SET_VALUES: %w", err)
	}
	return nil
}

func bit(high bool) uint64 {
	if high {
		return 1
	}
	return 0
}

// ioctl runs one ioctl on f's descriptor without taking it out of Go's
// control (f.Fd would switch it to blocking mode for good).
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
