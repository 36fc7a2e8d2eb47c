package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// notifySocket listens where systemd would (a unixgram socket) and returns
// the datagrams it receives.
func notifySocket(t *testing.T, name string) (addr string, states <-chan string) {
	t.Helper()
	addr = name
	if !strings.HasPrefix(name, "@") {
		addr = filepath.Join(t.TempDir(), name)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return addr, ch
}

func nextState(t *testing.T, states <-chan string, within time.Duration) string {
	t.Helper()
	select {
	case s := <-states:
		return s
	case <-time.After(within):
		t.Fatalf("no sd_notify datagram within %v", within)
		return ""
	}
}

func TestWithSystemd(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name          string
		socket        string // "" = unset; "path" = a socket in a temp dir; "@…" abstract
		usec, wdPID   string
		wantReady     bool
		wantAliveEach time.Duration // 0 = no watchdog
	}{
		{name: "no systemd", wantReady: false},
		{name: "watchdog without a socket", usec: "30000000", wantReady: false},
		{name: "relative socket path is ignored", socket: "relative", usec: "30000000"},
		{name: "notify, no watchdog", socket: "path", wantReady: true},
		{name: "notify and watchdog", socket: "path", usec: "30000000", wantReady: true, wantAliveEach: 15 * time.Second},
		{name: "watchdog for this pid", socket: "path", usec: "2000000", wdPID: pid, wantReady: true, wantAliveEach: time.Second},
		{name: "watchdog for another pid", socket: "path", usec: "2000000", wdPID: "1", wantReady: true},
		{name: "bad WATCHDOG_USEC", socket: "path", usec: "soon", wantReady: true},
		{name: "abstract socket", socket: "@edge-agent-test-" + pid, usec: "1000000", wantReady: true, wantAliveEach: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var states <-chan string
			env := ""
			switch {
			case tc.socket == "path":
				env, states = notifySocket(t, "notify.sock")
			case strings.HasPrefix(tc.socket, "@"):
				env, states = notifySocket(t, tc.socket)
			default:
				env = tc.socket
			}
			t.Setenv("NOTIFY_SOCKET", env)
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.wdPID)

			var opts agent.Options
			withSystemd(&opts, nil)
			if got := opts.Ready != nil; got != tc.wantReady {
				t.Fatalf("Ready set = %v, want %v", got, tc.wantReady)
			}
			if got, want := opts.Alive != nil, tc.wantAliveEach > 0; got != want {
				t.Fatalf("Alive set = %v, want %v", got, want)
			}
			if opts.AliveEvery != tc.wantAliveEach {
				t.Errorf("AliveEvery = %v, want %v (half of WATCHDOG_USEC)", opts.AliveEvery, tc.wantAliveEach)
			}
			if !tc.wantReady {
				return
			}
			opts.Ready()
			if got := nextState(t, states, 2*time.Second); got != "READY=1" {
				t.Errorf("Ready sent %q, want READY=1", got)
			}
			if opts.Alive != nil {
				opts.Alive()
				if got := nextState(t, states, 2*time.Second); got != "WATCHDOG=1" {
					t.Errorf("Alive sent %q, want WATCHDOG=1", got)
				}
			}
		})
	}
}

// A notify socket that went away must not hurt the agent: the hooks log
// and return.
func TestWithSystemdSocketGone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", "")
	var opts agent.Options
	withSystemd(&opts, nil)
	if opts.Ready == nil || opts.Alive == nil {
		t.Fatal("hooks not set")
	}
	opts.Ready()
	opts.Alive()
	opts.Alive()
}

// The real agent under a systemd-like supervisor: READY=1 comes once the
// control socket answers (before the broker matters), then WATCHDOG=1 every
// half of WATCHDOG_USEC.
func TestRunNotifiesSystemd(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	addr, states := notifySocket(t, "notify.sock")
	r.env = append(r.env, "NOTIFY_SOCKET="+addr, "WATCHDOG_USEC=400000", "WATCHDOG_PID=")
	start := time.Now()
	p := r.startAgent()

	if got := nextState(t, states, 15*time.Second); got != "READY=1" {
		t.Fatalf("first datagram %q, want READY=1", got)
	}
	ready := time.Since(start)
	// Ready means the control socket listens: status answers at once.
	if _, err := r.status(); err != nil {
		t.Fatalf("status right after READY=1: %v", err)
	}
	pings := 0
	deadline := time.After(3 * time.Second)
	for pings < 5 {
		select {
		case s := <-states:
			if s != "WATCHDOG=1" {
				t.Fatalf("datagram %q after READY=1, want WATCHDOG=1", s)
			}
			pings++
		case <-deadline:
			t.Fatalf("%d watchdog pings in 3 s, want 5 or more (every 200 ms)", pings)
		}
	}
	t.Logf("READY=1 after %v, then %d pings", ready.Round(time.Millisecond), pings)
	if err, took := p.stop(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v after %v", err, took)
	}
}

// In the config state the agent is up for systemd too: READY=1, then
// WATCHDOG=1 pings, so the unit is neither stopped at its start timeout
// nor killed by its watchdog while the LED shows the config state.
func TestConfigStateNotifiesSystemd(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = "\n[leds]\nstatus = \"GPIO27\"\nbogus = 1\n"
	r.writeConfig(nil)
	addr, states := notifySocket(t, "notify.sock")
	r.env = append(r.env, "NOTIFY_SOCKET="+addr, "WATCHDOG_USEC=400000", "WATCHDOG_PID=")
	p := r.startAgent()
	if got := nextState(t, states, 15*time.Second); got != "READY=1" {
		t.Fatalf("first datagram %q, want READY=1", got)
	}
	for range 3 {
		if got := nextState(t, states, 2*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", got)
		}
	}
	p.stop(5 * time.Second)
}
