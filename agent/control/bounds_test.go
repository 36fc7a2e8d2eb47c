package control

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/store"
)

type noInbox struct{}

func (noInbox) Get(uint64) (store.Record, error)            { return store.Record{}, store.ErrNotFound }
func (noInbox) Scan(uint64, func(store.Record) error) error { return nil }
func (noInbox) Tail(int, func(store.Record) error) error    { return nil }

// TestServerRefusesOutOfRange: whatever client asks (not only the CLI,
// which checks too), a negative record count is refused, not taken as the
// default.
func TestServerRefusesOutOfRange(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln, noInbox{}, nil, nil, nil)
	defer srv.Close()
	nop := func(Reply) error { return nil }

	for _, cmd := range []string{CmdInboxList, CmdInboxExport} {
		if err := Call(dir, Request{Cmd: cmd, N: -3}, nop); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("%s n=-3: %v", cmd, err)
		}
		if err := Call(dir, Request{Cmd: cmd}, nop); err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
	}
}
