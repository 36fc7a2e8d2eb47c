package sinks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// openStore opens a store in a new directory, closed at cleanup.
func openStore(t *testing.T, opts *store.Options) *store.DB {
	t.Helper()
	return openStoreAt(t, t.TempDir(), opts)
}

func openStoreAt(t *testing.T, dir string, opts *store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)

// appendMsgs stores one record per payload on topic and returns the last seq.
func appendMsgs(t *testing.T, db *store.DB, topic string, payloads ...[]byte) uint64 {
	t.Helper()
	msgs := make([]store.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = store.Message{ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond), Topic: topic, Payload: p}
	}
	seqs, err := db.Append(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return seqs[len(seqs)-1]
}

// numbered returns payloads "prefix-1" … "prefix-n".
func numbered(prefix string, from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s-%d", prefix, from+i)
	}
	return out
}

// countingStore counts and records the cursor commits. With freeze set it
// acknowledges them without writing: the process "died" before them.
type countingStore struct {
	*store.DB
	mu      sync.Mutex
	commits []map[string]uint64
	freeze  bool
	fail    error
}

func (c *countingStore) SetSinkCursors(m map[string]uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	cp := map[string]uint64{}
	for k, v := range m {
		cp[k] = v
	}
	c.commits = append(c.commits, cp)
	if c.freeze {
		return nil
	}
	return c.DB.SetSinkCursors(m)
}

func (c *countingStore) commitList() []map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]uint64(nil), c.commits...)
}

// logBuffer is a slog destination safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLog(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

// newManager makes a Manager with short retry waits.
func newManager(t *testing.T, cfgs []Config, st Store) (*Manager, *logBuffer) {
	t.Helper()
	log, lb := testLog(t)
	m, err := New(cfgs, st, log)
	if err != nil {
		t.Fatal(err)
	}
	m.retryMin, m.retryMax = 10*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", lb.String())
		}
	})
	return m, lb
}

// start runs m until the returned stop is called (or the test ends); stop
// returns once Run has.
func start(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	s := string(b)
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("%s does not end in a newline: %q", path, s[max(0, len(s)-80):])
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func status(m *Manager, name string) Status { return m.Status()[name] }
