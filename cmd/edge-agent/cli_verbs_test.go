package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// memInbox is an inbox in memory for a control server without a daemon.
type memInbox []store.Record

func (m memInbox) Get(seq uint64) (store.Record, error) {
	for _, r := range m {
		if r.Seq == seq {
			return r, nil
		}
	}
	return store.Record{}, store.ErrNotFound
}

func (m memInbox) Scan(after uint64, fn func(store.Record) error) error {
	for _, r := range m {
		if r.Seq > after {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m memInbox) Tail(n int, fn func(store.Record) error) error {
	if n < len(m) {
		m = m[len(m)-n:]
	}
	return m.Scan(0, fn)
}

// fakeActs records what the control server asked for.
type fakeActs struct {
	mu       sync.Mutex
	identify []time.Duration
}

func (a *fakeActs) SetRelay(string, bool, time.Duration) (control.RelayApplied, error) {
	return control.RelayApplied{}, nil
}
func (a *fakeActs) Identify(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.identify = append(a.identify, d)
}
func (a *fakeActs) LEDTest(time.Duration, func(string)) error { return nil }
func (a *fakeActs) Follow(<-chan struct{}, uint64, func(store.Record) error) error {
	return nil
}
func (a *fakeActs) RewindSink(string, uint64) error { return nil }
func (a *fakeActs) SimInput(string, bool) error     { return nil }

// fakeDaemon serves the control socket from memory; it returns the config
// path for the CLI.
func fakeDaemon(t *testing.T, inbox memInbox, acts control.Actions) string {
	t.Helper()
	cfg, dir := fakeDaemonConfig(t)
	srv, err := control.Listen(dir, inbox, func() any { return map[string]any{"state": "ok"} }, acts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return cfg
}

// A hostile publisher's payload and topic: terminal escape sequences (clear
// the screen, set the window title, 8-bit CSI), a bell, CR, DEL.
const (
	hostilePayload = "hi\x1b[2J\x1b]0;pwned\x07\r\nline2\tcol\x7f end\u009b31m é"
	hostileTopic   = "t/\x1b[31mred\n"
)

// controlBytes lists the terminal-controlling bytes and runes in s: C0
// except \n and \t, DEL, C1, invalid UTF-8.
func controlBytes(s string, allowNL bool) []string {
	var bad []string
	for i, r := range s {
		switch {
		case r == '\n' && allowNL, r == '\t' && allowNL:
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r == 0xfffd && !strings.HasPrefix(s[i:], "\ufffd"):
			bad = append(bad, fmt.Sprintf("%q at %d", r, i))
		}
	}
	return bad
}

func TestCLIInboxShowEscapesControls(t *testing.T) {
	t.Parallel()
	cfg := fakeDaemon(t, memInbox{
		{Seq: 1, ReceivedAt: time.Unix(1700000000, 0), Topic: hostileTopic, Payload: []byte(hostilePayload)},
	}, nil)

	code, out, errOut := cli("inbox", "show", "1", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if bad := controlBytes(out, true); len(bad) > 0 {
		t.Errorf("inbox show wrote control characters %v:\n%q", bad, out)
	}
	for _, want := range []string{`hi\x1b[2J\x1b]0;pwned\x07\x0d` + "\n" + "line2\tcol\\x7f end\\u009b31m é", `topic:       t/\x1b[31mred\x0a` + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inbox show lacks %q:\n%s", want, out)
		}
	}
	// The help says so.
	_, _, help := cli("inbox", "show", "-h")
	if !strings.Contains(help, "escaped") || !strings.Contains(help, "inbox export") {
		t.Errorf("inbox show -h does not explain the escaping:\n%s", help)
	}

	code, out, _ = cli("inbox", "list", "-config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	if bad := controlBytes(out, true); len(bad) > 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("inbox list wrote control characters %v (or a topic's newline):\n%q", bad, out)
	}

	// JSON keeps the exact bytes, its escapes covering DEL and C1 too.
	for _, args := range [][]string{{"inbox", "export"}, {"inbox", "show", "1", "-json"}, {"inbox", "list", "-json"}} {
		code, out, _ = cli(append(args, "-config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		if bad := controlBytes(out, true); len(bad) > 0 {
			t.Errorf("%v wrote control characters %v:\n%q", args, bad, out)
		}
		var rec control.Record
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if b, _ := rec.Bytes(); !bytes.Equal(b, []byte(hostilePayload)) || rec.Topic != hostileTopic {
			t.Errorf("%v: payload %q topic %q, want the exact bytes", args, b, rec.Topic)
		}
	}
}

func TestCLIInboxRefusesNonPositiveN(t *testing.T) {
	t.Parallel()
	var inbox memInbox
	for i := 1; i <= 30; i++ {
		inbox = append(inbox, store.Record{Seq: uint64(i), Topic: "t", Payload: []byte("p")})
	}
	cfg := fakeDaemon(t, inbox, nil)
	for _, args := range [][]string{
		{"inbox", "list", "-n", "0"},
		{"inbox", "list", "-n", "-3"},
		{"inbox", "list", "-n=0"},
		{"inbox", "export", "-n", "0"},
		{"inbox", "export", "-n", "-1"},
	} {
		code, out, errOut := cli(append(args, "-config", cfg)...)
		if code != 2 || !strings.Contains(errOut, "must be a positive number") || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 saying N must be a positive number", args, code, errOut, out)
		}
	}
	if code, out, _ := cli("inbox", "list", "-n", "3", "-config", cfg); code != 0 || strings.Count(out, "\n") != 4 {
		t.Errorf("list -n 3: exit %d:\n%s", code, out)
	}
	if code, out, _ := cli("inbox", "list", "-config", cfg); code != 0 || strings.Count(out, "\n") != 21 {
		t.Errorf("list: exit %d, want 20 records:\n%s", code, out)
	}
	if code, out, _ := cli("inbox", "export", "-config", cfg); code != 0 || strings.Count(out, "\n") != 30 {
		t.Errorf("export: exit %d, want all 30:\n%s", code, out)
	}
}

func TestCLIIdentifyBounds(t *testing.T) {
	t.Parallel()
	acts := &fakeActs{}
	cfg := fakeDaemon(t, nil, acts)
	for _, d := range []string{"2562047h", "1h0m1s", "0s", "-5s"} {
		code, _, errOut := cli("led", "identify", "-for", d, "-config", cfg)
		if code != 2 || !strings.Contains(errOut, "more than 0 and at most 1h") {
			t.Errorf("-for %s: exit %d, stderr %q; want a usage error naming the range", d, code, errOut)
		}
	}
	for _, d := range []string{"1h", "1s"} {
		if code, _, errOut := cli("led", "identify", "-for", d, "-config", cfg); code != 0 {
			t.Errorf("-for %s: exit %d: %s", d, code, errOut)
		}
	}
	acts.mu.Lock()
	defer acts.mu.Unlock()
	if fmt.Sprint(acts.identify) != "[1h0m0s 1s]" {
		t.Errorf("identify asked for %v, want [1h 1s]", acts.identify)
	}
}
