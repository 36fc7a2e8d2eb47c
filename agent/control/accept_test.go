package control

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failingListener fails Accept with err its first n calls.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	n     int
	err   error
	calls int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	fail := l.calls <= l.n
	l.mu.Unlock()
	if fail {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// syncBuffer is a log destination the server may write from its goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerSurvivesAcceptErrors: EMFILE (a process at its file limit)
// and ECONNABORTED from Accept are retried with a backoff, logged once per
// burst, and the server answers again once Accept works.
func TestServerSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			var logBuf syncBuffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			var fl *failingListener
			dir, srv := statusServer(t, func(ln net.Listener) net.Listener {
				fl = &failingListener{Listener: ln, n: 6, err: &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", errno)}}
				return fl
			}, log)
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- askStatus(dir) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("status after %d failed accepts: %v", fl.n, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no answer 5s after %d failed accepts: the accept loop gave up", fl.n)
			}
			// 5+10+20+40+80+160 ms of backoff: it waited, but not long.
			if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
				t.Errorf("answered after %v, want the backoff's ~315ms", d)
			}
			logs := logBuf.String()
			if n := strings.Count(logs, "msg=\"control socket: accept"); n != 2 {
				t.Errorf("%d log lines about accept for one burst of %d failures, want 2 (failing, recovered):\n%s", n, fl.n, logs)
			}
			if !strings.Contains(logs, errno.Error()) {
				t.Errorf("the log does not name the error:\n%s", logs)
			}
			// Close ends the loop even mid-backoff.
			fl.mu.Lock()
			fl.n = fl.calls + 1000
			fl.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			closed := make(chan struct{})
			go func() { srv.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not return during a burst of accept errors")
			}
		})
	}
}

// TestServerStopsOnClose: a closed listener ends the loop at once.
func TestServerStopsOnClose(t *testing.T) {
	dir, srv := statusServer(t, nil, nil)
	if err := askStatus(dir); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung")
	}
	if err := askStatus(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("after Close: %v, want ErrNotRunning", err)
	}
}

// flappingListener fails every other Accept, as at the file limit where
// descriptors come and go.
type flappingListener struct {
	net.Listener
	mu    sync.Mutex
	calls int
}

func (l *flappingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	fail := l.calls%2 == 1
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServerLogsAcceptBurstOnce: failures and successes in turn are one
// burst in the log, not a pair of lines per accept.
func TestServerLogsAcceptBurstOnce(t *testing.T) {
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	dir, _ := statusServer(t, func(ln net.Listener) net.Listener { return &flappingListener{Listener: ln} }, log)
	for i := 0; i < 8; i++ {
		if err := askStatus(dir); err != nil {
			t.Fatal(err)
		}
	}
	logs := logBuf.String()
	if n := strings.Count(logs, "accept failed"); n != 1 {
		t.Errorf("%d warnings for one burst, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "accept works again"); n != 1 {
		t.Errorf("%d recoveries logged for one burst, want 1:\n%s", n, logs)
	}
}
