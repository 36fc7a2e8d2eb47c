// Package agentstatus is the part of the agent's status document
// (`edge-agent status -json`, docs/design.md#status-document) that make
// hil and make system read from the agent in their QEMU guest, and the
// wait for a status a check accepts. How the document is fetched is the
// rig's: make hil asks its guest over a virtio serial port, make system
// over ssh.
package agentstatus

import (
	"errors"
	"fmt"
	"time"
)

// Status is what the rigs read of the status document.
type Status struct {
	Version   string `json:"version"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	Inbox     struct {
		Total int `json:"total"`
	} `json:"inbox"`
	Relays map[string]struct {
		On    bool       `json:"on"`
		Until *time.Time `json:"until"`
	} `json:"relays"`
	LEDs   map[string]string `json:"leds"`
	Inputs map[string]struct {
		Active bool       `json:"active"`
		Since  *time.Time `json:"since"`
	} `json:"inputs"`
	LastError string `json:"last_error"`
	Uptime    string `json:"uptime"`
}

// ErrGone is Wait's error once gone is closed: the guest is gone and no
// status will come (the rig says why).
var ErrGone = errors.New("the guest is gone")

// Wait asks get for the status, pausing every between two asks, until ok
// accepts one or d has passed, and returns the last status it had. A
// closed gone (nil: never) ends the wait at once with ErrGone. After d
// the error names what was awaited and the last status, or get's last
// error.
func Wait(get func() (Status, error), every time.Duration, gone <-chan struct{}, d time.Duration, what string, ok func(Status) bool) (Status, error) {
	deadline := time.Now().Add(d)
	var st Status
	var err error
	for time.Now().Before(deadline) {
		st, err = get()
		if err == nil && ok(st) {
			return st, nil
		}
		select {
		case <-gone:
			return st, ErrGone
		case <-time.After(every):
		}
	}
	if err != nil {
		return st, fmt.Errorf("no %s within %v: %v", what, d, err)
	}
	return st, fmt.Errorf("no %s within %v: state %s, connected %v, last_error %q", what, d, st.State, st.Connected, st.LastError)
}
