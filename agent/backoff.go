package agent

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential with jitter: each wait is drawn uniformly from
// [d/2, d) where d doubles from min up to max. The jitter keeps a fleet that
// lost its broker together from coming back in lockstep; the cap keeps a
// gateway from staying away long after the broker returns.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // [0,1); injectable for tests
	d        time.Duration
}

func newBackoff(min, max time.Duration, rnd func() float64) *backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return &backoff{min: min, max: max, rand: rnd}
}

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = b.min
	} else {
		b.d = min(2*b.d, b.max)
	}
	half := b.d / 2
	return half + time.Duration(b.rand()*float64(half))
}

func (b *backoff) reset() { b.d = 0 }
