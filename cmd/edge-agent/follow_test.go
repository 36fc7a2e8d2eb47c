package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// syncBuffer is a bytes.Buffer that a CLI goroutine writes while the test
// reads.
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

// waitFor polls the buffer until it holds want; it returns when it did.
func (s *syncBuffer) waitFor(t *testing.T, want string, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(s.String(), want) {
			return time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("output lacks %q after %v:\n%s", want, d, s.String())
	return time.Time{}
}

// inbox follow prints each record as it is stored (new ones by default,
// from a seq with -from, as JSON lines with -json) and ends with exit 0
// when the daemon stops.
func TestInboxFollow(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	p := r.startAgent()
	r.waitConnected()
	pub := r.publisher("cloud-follow")
	r.send(pub, "before the follow")
	// The broker's PUBACK to the publisher does not wait for the agent:
	// wait until the agent has stored it.
	r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Inbox.Total == 1 })

	var out, all syncBuffer
	code := make(chan int, 2)
	go func() { code <- run([]string{"inbox", "follow", "-config", r.cfgPath}, &out, io.Discard) }()
	go func() {
		code <- run([]string{"inbox", "follow", "-from", "1", "-json", "-config", r.cfgPath}, &all, io.Discard)
	}()
	all.waitFor(t, `"payload":"before the follow"`, 5*time.Second)
	// The other follower prints only what is stored after it started:
	// probe until it shows one, so the test knows it is following.
	for i := 0; !strings.Contains(out.String(), "probe"); i++ {
		if i == 50 {
			t.Fatalf("follow printed no probe:\n%s", out.String())
		}
		r.send(pub, "probe")
		time.Sleep(20 * time.Millisecond)
	}
	var worst time.Duration
	for _, m := range []string{"first new", "second new"} {
		sent := time.Now()
		r.send(pub, m)
		took := out.waitFor(t, m, 5*time.Second).Sub(sent)
		worst = max(worst, took)
		all.waitFor(t, `"payload":"`+m+`"`, 5*time.Second)
	}
	t.Logf("publish → printed by follow: at most %v", worst.Round(time.Millisecond))
	if strings.Contains(out.String(), "before the follow") {
		t.Errorf("follow without -from printed a record stored before it started:\n%s", out.String())
	}
	if err, _ := p.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("follow exited %d when the daemon stopped, want 0", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("follow did not end when the daemon stopped")
		}
	}
}
