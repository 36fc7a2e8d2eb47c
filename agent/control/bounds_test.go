package control

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

type recordingActs struct {
	mu       sync.Mutex
	identify []time.Duration
}

func (a *recordingActs) SetRelay(string, bool, time.Duration) (RelayApplied, error) {
	return RelayApplied{}, nil
}
func (a *recordingActs) LEDTest(time.Duration, func(string)) error { return nil }
func (a *recordingActs) Follow(<-chan struct{}, uint64, func(store.Record) error) error {
	return nil
}
func (a *recordingActs) RewindSink(string, uint64) error { return nil }
func (a *recordingActs) SimInput(string, bool) error     { return nil }
func (a *recordingActs) Identify(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.identify = append(a.identify, d)
}

type noInbox struct{}

func (noInbox) Get(uint64) (store.Record, error)            { return store.Record{}, store.ErrNotFound }
func (noInbox) Scan(uint64, func(store.Record) error) error { return nil }
func (noInbox) Tail(int, func(store.Record) error) error    { return nil }

// TestServerRefusesOutOfRange: whatever client asks (not only the CLI,
// which checks too), identify is bounded by MaxIdentify and a negative
// record count is refused, not taken as the default.
func TestServerRefusesOutOfRange(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	acts := &recordingActs{}
	srv := Serve(ln, noInbox{}, nil, acts, nil)
	defer srv.Close()
	nop := func(Reply) error { return nil }

	for _, d := range []string{"1h0m1s", "2562047h"} {
		if err := Call(dir, Request{Cmd: CmdLEDIdentify, For: d}, nop); err == nil || !strings.Contains(err.Error(), "at most 1h") {
			t.Errorf("identify for %s: %v", d, err)
		}
	}
	if err := Call(dir, Request{Cmd: CmdLEDIdentify, For: "1h"}, nop); err != nil {
		t.Errorf("identify for 1h: %v", err)
	}
	acts.mu.Lock()
	if len(acts.identify) != 1 || acts.identify[0] != time.Hour {
		t.Errorf("identified %v, want [1h]", acts.identify)
	}
	acts.mu.Unlock()
	for _, cmd := range []string{CmdInboxList, CmdInboxExport} {
		if err := Call(dir, Request{Cmd: cmd, N: -3}, nop); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("%s n=-3: %v", cmd, err)
		}
		if err := Call(dir, Request{Cmd: cmd}, nop); err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
	}
}
