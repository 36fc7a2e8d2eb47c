package main

import (
	"math"
	"testing"
)

func TestParseWrittenSectors(t *testing.T) {
	// /sys/block/loop0/stat: reads, merges, sectors, ticks, writes, merges, sectors, …
	got, err := parseWrittenSectors("     120        0     4242      10      300      0     8192     40    0    50    50    0    0    0    0    0    0\n")
	if err != nil || got != 8192*512 {
		t.Fatalf("got %d, %v; want %d", got, err, 8192*512)
	}
	if _, err := parseWrittenSectors("1 2 3"); err == nil {
		t.Fatal("a short line parsed")
	}
}

func TestDaysToWear(t *testing.T) {
	// 18,000 B per message at 100/s: 155.5 GB a day, 300 × 32 GB in 61.7 days.
	if d := daysToWear(18000, 100); math.Abs(d-61.73) > 0.01 {
		t.Fatalf("days = %.2f, want 61.73", d)
	}
	if d := daysToWear(0, 100); !math.IsInf(d, 1) {
		t.Fatalf("nothing written: %v days, want +Inf", d)
	}
}
