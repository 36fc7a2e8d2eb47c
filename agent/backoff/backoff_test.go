package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesToMaxAndResets(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Fatalf("after Reset: %v, want Min", d)
	}
}

func TestJitterStaysInTheUpperHalf(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		b := Backoff{Min: time.Second, Max: time.Minute, Jitter: true, Rand: func() float64 { return r }}
		for step, d := 0, time.Second; step < 8; step, d = step+1, min(2*d, time.Minute) {
			got := b.Next()
			if got < d/2 || got >= d {
				t.Fatalf("rand %v step %d: %v, want in [%v, %v)", r, step, got, d/2, d)
			}
		}
	}
}

// fakeClock records the waits asked for and fires each at once.
type fakeClock struct{ asked []time.Duration }

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	c.asked = append(c.asked, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch, func() {}
}

func TestSleepUsesTheClockAndStopsOnCancel(t *testing.T) {
	clk := &fakeClock{}
	b := Backoff{Min: time.Hour, Max: 4 * time.Hour, Clock: clk}
	for range 3 {
		if !b.Sleep(context.Background(), nil) {
			t.Fatal("Sleep returned false with a live context")
		}
	}
	if want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour}; len(clk.asked) != 3 || clk.asked[2] != want[2] {
		t.Fatalf("asked %v, want %v", clk.asked, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	real := Backoff{Min: time.Hour, Max: time.Hour}
	if real.Sleep(ctx, nil) {
		t.Fatal("Sleep on a cancelled context returned true")
	}
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if !real.Sleep(context.Background(), wake) {
		t.Fatal("Sleep did not return true on wake")
	}
}
