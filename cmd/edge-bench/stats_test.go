package main

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[99-i] = float64(i + 1) // 100 … 1: unsorted on purpose
	}
	for _, c := range []struct {
		p    float64
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.1, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 100 {
		t.Error("percentile sorted its input in place")
	}
	// Nearest rank: the p99 of 1000 samples is the 990th smallest.
	ys := make([]float64, 1000)
	for i := range ys {
		ys[i] = float64(i)
	}
	if got := percentile(ys, 99); got != 989 {
		t.Errorf("p99 of 0..999 = %v, want 989", got)
	}
	if got := percentile([]float64{3}, 99); got != 3 {
		t.Errorf("p99 of one sample = %v", got)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
}

func TestMedianSpan(t *testing.T) {
	for _, c := range []struct {
		xs     []float64
		med    float64
		lo, hi float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	} {
		if got := median(c.xs); got != c.med {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.med)
		}
		if lo, hi := span(c.xs); lo != c.lo || hi != c.hi {
			t.Errorf("span(%v) = %v, %v; want %v, %v", c.xs, lo, hi, c.lo, c.hi)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestRate(t *testing.T) {
	if got := rate(100000, 2*time.Second); got != 50000 {
		t.Errorf("rate = %v", got)
	}
	if !math.IsNaN(rate(1, 0)) {
		t.Error("rate over no time is not NaN")
	}
}
