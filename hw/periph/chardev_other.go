//go:build !linux

package periph

import (
	"errors"

	"github.com/edge-agent/edge-agent/hw"
)

// haveChardev is false: the GPIO character device is Linux's. (gpioioctl
// registers a dummy chip elsewhere; New does not hand it out.)
const haveChardev = false

type lineFD struct{}

func requestOutput(path string, offset int, high bool) (*lineFD, error) {
	return nil, errors.New("the GPIO character device exists only on Linux")
}

func (l *lineFD) set(high bool) error {
	return errors.New("the GPIO character device exists only on Linux")
}

type lineIn struct{}

func requestInput(path string, offset int, bias hw.Bias) (*lineIn, error) {
	return nil, errors.New("the GPIO character device exists only on Linux")
}

func (l *lineIn) read() (bool, error)      { return false, errors.New("no GPIO character device") }
func (l *lineIn) run(edges chan<- hw.Edge) { close(edges) }
func (l *lineIn) stop()                    {}
