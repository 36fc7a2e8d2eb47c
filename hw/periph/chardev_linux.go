//go:build linux

package periph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/edge-agent/edge-agent/hw"
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

	gpioV2LineFlagInput              uint64 = 1 << 2
	gpioV2LineFlagOutput             uint64 = 1 << 3
	gpioV2LineFlagEdgeRising         uint64 = 1 << 4
	gpioV2LineFlagEdgeFalling        uint64 = 1 << 5
	gpioV2LineFlagBiasPullUp         uint64 = 1 << 8
	gpioV2LineFlagBiasPullDown       uint64 = 1 << 9
	gpioV2LineFlagBiasDisabled       uint64 = 1 << 10
	gpioV2LineFlagEventClockRealtime uint64 = 1 << 11
	gpioV2LineAttrIDOutputValues     uint32 = 2

	gpioV2LineEventRisingEdge uint32 = 1

	// inputEventBuffer is the kernel's queue for one input line
	// (event_buffer_size); the kernel drops the oldest beyond it.
	inputEventBuffer = 64
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

// gpioV2LineEvent is what a read of an input's request returns, one or more
// at a time.
type gpioV2LineEvent struct {
	timestampNs uint64 // CLOCK_REALTIME with the flag, else CLOCK_MONOTONIC
	id          uint32 // GPIO_V2_LINE_EVENT_RISING_EDGE or _FALLING_EDGE
	offset      uint32
	seqno       uint32
	lineSeqno   uint32
	padding     [6]uint32
}

const gpioV2LineEventSize = int(unsafe.Sizeof(gpioV2LineEvent{}))

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
	gpioV2LineGetValuesIoctl = iowr(0x0E, unsafe.Sizeof(gpioV2LineValues{}))
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
	var req gpioV2LineRequest
	req.config.flags = gpioV2LineFlagOutput
	req.config.numAttrs = 1
	req.config.attrs[0] = gpioV2LineConfigAttribute{id: gpioV2LineAttrIDOutputValues, values: bit(high), mask: 1}
	fd, err := requestLine(path, offset, &req)
	if err != nil {
		return nil, err
	}
	return &lineFD{f: os.NewFile(uintptr(fd), fmt.Sprintf("%s line %d", path, offset))}, nil
}

// requestLine asks the kernel for one line of the chip at path with req's
// config and returns the request's descriptor (close-on-exec).
func requestLine(path string, offset int, req *gpioV2LineRequest) (int, error) {
	// Our own descriptor for the chip, closed when done: the line request
	// outlives it. periph's GPIOChip is never closed
	// (docs/dependencies.md#periph-never-close-a-chip).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	req.offsets[0] = uint32(offset)
	req.numLines = 1
	copy(req.consumer[:gpioMaxNameSize-1], consumer)
	if err := ioctl(f, gpioV2GetLineIoctl, unsafe.Pointer(req)); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return 0, fmt.Errorf("request line %d of %s: line busy (used by another program, see gpioinfo): %w", offset, path, err)
		}
		return 0, fmt.Errorf("request line %d of %s: %w", offset, path, err)
	}
	if req.fd <= 0 {
		return 0, fmt.Errorf("request line %d of %s: kernel returned no descriptor", offset, path)
	}
	syscall.CloseOnExec(int(req.fd))
	return int(req.fd), nil
}

// requestInput requests line offset of the chip at path as an input with
// bias and edge events on both edges, stamped with the realtime clock. A
// kernel older than 5.11 refuses that clock (EINVAL): the line is requested
// without it and edges are stamped when read.
func requestInput(path string, offset int, bias hw.Bias) (*lineIn, error) {
	flags := gpioV2LineFlagInput | gpioV2LineFlagEdgeRising | gpioV2LineFlagEdgeFalling
	switch bias {
	case hw.BiasUp:
		flags |= gpioV2LineFlagBiasPullUp
	case hw.BiasDown:
		flags |= gpioV2LineFlagBiasPullDown
	default:
		flags |= gpioV2LineFlagBiasDisabled
	}
	var req gpioV2LineRequest
	req.eventBufferSize = inputEventBuffer
	req.config.flags = flags | gpioV2LineFlagEventClockRealtime
	fd, err := requestLine(path, offset, &req)
	kernelTime := err == nil
	if errors.Is(err, syscall.EINVAL) {
		req = gpioV2LineRequest{eventBufferSize: inputEventBuffer}
		req.config.flags = flags
		fd, err = requestLine(path, offset, &req)
	}
	if err != nil {
		return nil, err
	}
	// Non-blocking, so os.NewFile puts it in Go's poller: a Read waiting
	// for an edge parks no thread and returns when the file is closed.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("request line %d of %s: %w", offset, path, err)
	}
	return &lineIn{f: os.NewFile(uintptr(fd), fmt.Sprintf("%s line %d", path, offset)), kernelTime: kernelTime}, nil
}

// lineIn is one line requested as an input with edge events.
type lineIn struct {
	f          *os.File
	kernelTime bool // event timestamps are CLOCK_REALTIME
}

func (l *lineIn) read() (bool, error) {
	v := gpioV2LineValues{mask: 1}
	if err := ioctl(l.f, gpioV2LineGetValuesIoctl, unsafe.Pointer(&v)); err != nil {
		return false, fmt.Errorf("GPIO_V2_LINE_GET_VALUES: %w", err)
	}
	return v.bits&1 != 0, nil
}

// run reads edge events until the file is closed, and then closes edges.
func (l *lineIn) run(edges chan<- hw.Edge) {
	defer close(edges)
	buf := make([]byte, 16*gpioV2LineEventSize)
	for {
		n, err := l.f.Read(buf)
		if err != nil {
			return // closed (os.ErrClosed), or the line is gone
		}
		now := time.Now()
		for b := buf[:n]; len(b) >= gpioV2LineEventSize; b = b[gpioV2LineEventSize:] {
			var ev gpioV2LineEvent
			e := hw.Edge{High: binary.NativeEndian.Uint32(b[unsafe.Offsetof(ev.id):]) == gpioV2LineEventRisingEdge, At: now}
			if l.kernelTime {
				e.At = time.Unix(0, int64(binary.NativeEndian.Uint64(b[unsafe.Offsetof(ev.timestampNs):])))
			}
			send(edges, e)
		}
	}
}

func (l *lineIn) stop() { l.f.Close() }

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
