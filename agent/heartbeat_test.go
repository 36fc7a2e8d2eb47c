package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdogStopsWhenALoopIsStuck(t *testing.T) {
	var fresh, stale heartbeat
	fresh.stamp()
	stale.last.Store(time.Now().Add(-2 * stuckAfter).UnixNano())
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	watchdog(ctx, 10*time.Millisecond, func() { calls.Add(1) }, &fresh, &stale)
	if n := calls.Load(); n != 0 {
		t.Fatalf("alive called %d times with a stuck loop", n)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel2()
	watchdog(ctx2, 10*time.Millisecond, func() { calls.Add(1) }, &fresh)
	if calls.Load() == 0 {
		t.Fatal("alive never called with healthy loops")
	}
}
