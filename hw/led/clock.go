package led

import "time"

// Clock is where a Panel and Play get their time, so tests can use a fake.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C after its duration, unless stopped.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; false if it had fired or stopped.
	Stop() bool
}

// RealClock is the system clock. Deadlines are computed from its readings,
// which carry Go's monotonic clock, so the wall clock jumping when NTP first
// sets it (a Pi has no RTC) does not disturb a pattern.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
