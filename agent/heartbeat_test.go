package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
)

func TestWatchdogStopsWhenALoopIsStuck(t *testing.T) {
	var fresh, stale heartbeat
	fresh.stamp()
	stale.last.Store(time.Now().Add(-2 * stuckAfter).UnixNano())
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	watchdog(ctx, 10*time.Millisecond, stuckAfter, func() { calls.Add(1) }, &fresh, &stale)
	if n := calls.Load(); n != 0 {
		t.Fatalf("alive called %d times with a stuck loop", n)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel2()
	watchdog(ctx2, 10*time.Millisecond, stuckAfter, func() { calls.Add(1) }, &fresh)
	if calls.Load() == 0 {
		t.Fatal("alive never called with healthy loops")
	}
}

// wedgedCreds never answers: the session loop is stuck inside it.
type wedgedCreds struct{ credSource }

func (wedgedCreds) endpoint(context.Context) (endpoint, error) { select {} }

// A wedged session stops the watchdog's pings, as a wedged writer or
// dispatcher does; the daemon gives the watchdog all three.
func TestWatchdogCoversTheSession(t *testing.T) {
	s := newSession(sessionDeps{creds: wedgedCreds{}, health: newHealth(time.Now()), log: quietLogger()})
	go s.run(context.Background()) // stuck for good: the test's process ends it
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	time.Sleep(150 * time.Millisecond) // the session's one stamp ages past 100ms
	watchdog(ctx, 10*time.Millisecond, 100*time.Millisecond, func() { calls.Add(1) }, &s.beat)
	if n := calls.Load(); n != 0 {
		t.Fatalf("alive called %d times with the session wedged", n)
	}

	d := newTestDaemon(t, Options{Alive: func() {}})
	for _, name := range []string{"session", "dispatcher", "writer"} {
		if d.beats[name] == nil {
			t.Errorf("the watchdog does not watch the %s", name)
		}
	}
}

// newTestDaemon builds (does not run) a daemon on the sim board with a
// broker nobody listens on.
func newTestDaemon(t *testing.T, opts Options) *Daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	doc := fmt.Sprintf("device_id = \"gw\"\ndata_dir = %q\n[mqtt]\nbroker = \"tls://127.0.0.1:1\"\nusername = \"u\"\npassword = \"p\"\n[hw]\nbackend = \"sim\"\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quietLogger()
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}
