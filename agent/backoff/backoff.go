// Package backoff is the one retry pacing of the agent: every loop that
// waits after a failure (the MQTT session's reconnects, the account
// service's requests, the writer's and the dispatcher's store retries)
// waits through a Backoff, so the policy is written, and tested, once.
//
// The wait doubles from Min up to Max. With Jitter each wait is drawn
// uniformly from [d/2, d): a fleet that lost its broker together does not
// come back in lockstep. Time comes in through Clock, so a test can fire
// the waits itself.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock makes the timers a Backoff waits on.
type Clock interface {
	// NewTimer returns a channel that receives once d has passed, and a
	// function that releases the timer early.
	NewTimer(d time.Duration) (<-chan time.Time, func())
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Backoff paces retries. The zero Clock and Rand are the real ones. A
// Backoff is used by one goroutine; copy the value to start another
// sequence.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool
	Rand     func() float64 // [0,1); nil = math/rand/v2
	Clock    Clock          // nil = Real

	d time.Duration // the current step; 0 before the first wait
}

// Next returns the next wait and moves one step on.
func (b *Backoff) Next() time.Duration {
	if b.d == 0 {
		b.d = b.Min
	} else {
		b.d = min(2*b.d, b.Max)
	}
	if !b.Jitter {
		return b.d
	}
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	half := b.d / 2
	return half + time.Duration(r()*float64(half))
}

// Reset starts again from Min: call it after a success.
func (b *Backoff) Reset() { b.d = 0 }

// Sleep waits the next wait. It returns true when the wait passed or wake
// received (something changed that may make a retry pass now), false when
// ctx ended first.
func (b *Backoff) Sleep(ctx context.Context, wake <-chan struct{}) bool {
	return b.SleepFor(ctx, b.Next(), wake)
}

// SleepFor waits d (from Next, when the caller logs it first) on the
// Backoff's clock, like Sleep.
func (b *Backoff) SleepFor(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	c := b.Clock
	if c == nil {
		c = Real
	}
	ch, stop := c.NewTimer(d)
	defer stop()
	select {
	case <-ctx.Done():
		return false
	case <-ch:
		return true
	case <-wake:
		return true
	}
}
