package agent

import (
	"sync"
	"time"
)

// State names, in the order of severity the status LED shows them
// (DESIGN.md, "Status LED").
const (
	StateConfig     = "config"
	StateStorage    = "storage"
	StateAuth       = "auth"
	StateBootstrap  = "bootstrap"
	StateConnecting = "connecting"
	StateBacklog    = "backlog"
	StateOK         = "ok"
)

// health is the agent's observable condition. The session writes the
// connection fields, the writer the storage fields; anyone may read a
// snapshot. A mutex (not a goroutine) guards it because reads come from
// control-socket connections at arbitrary times and must never block the
// writer for long.
type health struct {
	mu sync.Mutex

	// Written by the session.
	connected  bool
	authFailed bool   // the broker refused the credentials or TLS failed
	connErr    string // last connection error, already free of secrets
	since      time.Time
	broker     string // where the session connects (it can change with bootstrap)

	// Written by the session, from the account service.
	bootstrapErr     string // why credentials could not be had; "" = fine
	bootstrapRefused bool   // the service refused the login

	// Written by the writer (its counters are in ingestStats).
	storageErr string
}

func newHealth(now time.Time) *health { return &health{since: now} }

func (h *health) setConnected(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.connected {
		h.since = now
	}
	h.connected, h.authFailed, h.connErr = true, false, ""
}

// setDisconnected records a lost or failed connection and why. auth marks a
// refusal that retrying with the same credentials will not cure.
func (h *health) setDisconnected(now time.Time, cause string, auth bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.connected {
		h.since = now
	}
	h.connected = false
	h.authFailed = auth
	h.connErr = cause
}

func (h *health) setBroker(url string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broker = url
}

// setBootstrap records why the account service gave no credentials ("" =
// it did); refused marks a refusal of the login itself.
func (h *health) setBootstrap(cause string, refused bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootstrapErr, h.bootstrapRefused = cause, refused
}

func (h *health) setStorage(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.storageErr = ""
		return
	}
	h.storageErr = err.Error()
}

// healthSnapshot is a copy of health taken under its lock.
type healthSnapshot struct {
	Connected, AuthFailed       bool
	ConnErr, StorageErr, Broker string
	BootstrapErr                string
	BootstrapRefused            bool
	Since                       time.Time
}

func (h *health) snapshot() healthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return healthSnapshot{
		Connected: h.connected, AuthFailed: h.authFailed,
		ConnErr: h.connErr, StorageErr: h.storageErr, Broker: h.broker,
		BootstrapErr: h.bootstrapErr, BootstrapRefused: h.bootstrapRefused,
		Since: h.since,
	}
}

// state is the status LED's state for a snapshot and the store's backlog:
// the most severe condition that holds wins.
func (s healthSnapshot) state(pending int) string {
	switch {
	case s.StorageErr != "":
		return StateStorage
	case s.AuthFailed, s.BootstrapRefused:
		return StateAuth
	case s.BootstrapErr != "":
		return StateBootstrap
	case !s.Connected:
		return StateConnecting
	case pending > 0:
		return StateBacklog
	}
	return StateOK
}

// lastError is the most relevant error to show an operator.
func (s healthSnapshot) lastError() string {
	if s.StorageErr != "" {
		return s.StorageErr
	}
	if s.BootstrapErr != "" {
		return s.BootstrapErr
	}
	return s.ConnErr
}
