package agenttest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// TestMochiCloseWhileConnecting closes the broker while clients connect and
// one TCP connection sits silent before its TLS handshake. Under -race this
// is where mochi's listeners.TCP reports a race (see mochiListener); Close
// must also return promptly and leave no connection open.
func TestMochiCloseWhileConnecting(t *testing.T) {
	pki := MustPKI(t)
	m, err := StartMochi(pki, testUsers, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No deferred Close: it would block forever if the Close below hangs.

	silent, err := net.Dial("tcp", m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Errors are expected once the broker is closing.
				c, err := Publisher(m.URL, pki, testUser, testPass, fmt.Sprintf("churn-%d-%d", w, i))
				if err != nil {
					time.Sleep(time.Millisecond) // refused at once: do not spin
					continue
				}
				c.Disconnect(0)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Close took %v, want well under 2 s", took)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Close did not return within 10 s")
	}
	close(stop)
	wg.Wait()

	// The silent connection was closed by the broker.
	silent.SetReadDeadline(time.Now().Add(wait))
	if n, err := silent.Read(make([]byte, 1)); err == nil {
		t.Errorf("silent connection still open after Close (read %d bytes)", n)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
