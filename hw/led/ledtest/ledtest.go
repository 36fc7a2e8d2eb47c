// Package ledtest has a fake led.Clock whose time moves only when a test
// says so, so LED patterns can be checked as exact timelines.
package ledtest

import (
	"sort"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/hw/led"
)

// Clock is a fake led.Clock. Time stands still until Set or Advance; timers
// fire (a send on their buffered channel) when the time reaches their
// deadline. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer // active: neither fired nor stopped
	added  chan struct{}
}

// NewClock starts a fake clock at t0.
func NewClock(t0 time.Time) *Clock {
	return &Clock{now: t0, added: make(chan struct{}, 1)}
}

var _ led.Clock = (*Clock)(nil)

// Now is the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer makes a timer that fires when the fake time reaches now+d (at
// once for d <= 0).
func (c *Clock) NewTimer(d time.Duration) led.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

// Next is the earliest deadline of the active timers.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	next := c.timers[0].at
	for _, t := range c.timers[1:] {
		if t.at.Before(next) {
			next = t.at
		}
	}
	return next, true
}

// Timers is the number of active timers.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Set moves the time to t (never backwards) and fires, in deadline order,
// every timer due by then. It does not wait for anyone to react: to step a
// consumer through several deadlines, Set to each in turn.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- tm.at
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// Advance is Set(Now()+d).
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// WaitForTimer blocks until a timer is active (true) or done is closed
// (false).
func (c *Clock) WaitForTimer(done <-chan struct{}) bool {
	for {
		if c.Timers() > 0 {
			return true
		}
		select {
		case <-c.added:
		case <-done:
			return false
		}
	}
}

// Drive runs a consumer that always waits on exactly one timer, such as
// led.Play, until done is closed: each time a timer is active it moves the
// time to that timer's deadline.
func (c *Clock) Drive(done <-chan struct{}) { c.DriveUntil(done, time.Time{}) }

// DriveUntil is Drive that never moves the time past until (zero: no
// bound): a timer due later is left for the caller. Where another timer
// user (a Panel resuming its pattern) arms timers as the consumer finishes,
// Drive could move the time on before it sees done closed.
func (c *Clock) DriveUntil(done <-chan struct{}, until time.Time) {
	for c.WaitForTimer(done) {
		next, ok := c.Next()
		if ok && !until.IsZero() && next.After(until) {
			<-done
			return
		}
		if ok {
			c.Set(next)
		}
	}
}

type timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
