package agent

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Bounds on what a publisher's bytes can cost the agent outside the store.

// maxLogText bounds a sender's text (a method, an id, a topic, a reason
// quoting them) in a log line: a 1 MB method must not become a 1 MB
// journal line.
const maxLogText = 128

// clip returns s cut to maxLogText bytes of valid UTF-8, saying how long it
// was.
func clip(s string) string {
	if len(s) <= maxLogText {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:maxLogText], ""), len(s))
}

// logLimiter allows a few log lines a second, so a flood of refused
// messages does not flood the journal (the store keeps each of them).
type logLimiter struct {
	_      noEq // never compared: no equality function in the binary
	last   time.Time
	tokens float64
}

const (
	limitedLinesPerSecond = 5
	limitedBurst          = 10
)

func (l *logLimiter) allow(now time.Time) bool {
	if l.last.IsZero() {
		l.tokens = limitedBurst
	} else {
		l.tokens = min(limitedBurst, l.tokens+now.Sub(l.last).Seconds()*limitedLinesPerSecond)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// byteGate bounds the bytes held between the MQTT handler and the writer's
// commit. The first holder is always let in, whatever its size, so a
// message larger than the bound still passes, alone.
type byteGate struct {
	mu    sync.Mutex
	used  int
	max   int
	freed chan struct{} // closed and replaced on every release
}

func newByteGate(max int) *byteGate {
	return &byteGate{max: max, freed: make(chan struct{})}
}

// acquire waits until n bytes fit, or stop closes (false).
func (g *byteGate) acquire(n int, stop <-chan struct{}) bool {
	for {
		g.mu.Lock()
		if g.used == 0 || g.used+n <= g.max {
			g.used += n
			g.mu.Unlock()
			return true
		}
		freed := g.freed
		g.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			return false
		}
	}
}

func (g *byteGate) release(n int) {
	g.mu.Lock()
	g.used -= n
	close(g.freed)
	g.freed = make(chan struct{})
	g.mu.Unlock()
}
