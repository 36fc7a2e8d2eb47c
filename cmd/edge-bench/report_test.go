package main

import (
	"math"
	"strings"
	"testing"
)

func TestNum(t *testing.T) {
	for _, c := range []struct {
		v    float64
		prec int
		want string
	}{
		{95734.4, 0, "95,734"},
		{1234567, 0, "1,234,567"},
		{999, 0, "999"},
		{-12345, 0, "-12,345"},
		{0, 0, "0"},
		{3.14159, 2, "3.14"},
		{math.NaN(), 0, "n/a"},
		{math.Inf(1), 2, "n/a"},
	} {
		if got := num(c.v, c.prec); got != c.want {
			t.Errorf("num(%v, %d) = %q, want %q", c.v, c.prec, got, c.want)
		}
	}
}

func TestFigureCells(t *testing.T) {
	r := newReport()
	f := r.fig("k", "rate", "msg/s", 0).want("≥ 100", func(v float64) bool { return v >= 100 })
	for _, v := range []float64{120, 90, 150, math.NaN()} {
		f.add(v)
	}
	if got := f.medianCell(); got != "120 msg/s" {
		t.Errorf("median cell = %q", got)
	}
	if got := f.rangeCell(); got != "90–150 msg/s (n=3)" {
		t.Errorf("range cell = %q (NaN samples are left out)", got)
	}
	if got := f.verdict(); got != "yes" {
		t.Errorf("verdict = %q", got)
	}
	if got := f.compactCell(); got != "120 msg/s (90–150)" {
		t.Errorf("compact cell = %q", got)
	}
	if r.fig("k", "other", "", 0) != f {
		t.Error("fig made a second figure for the same key")
	}

	miss := r.fig("m", "p99", "ms", 2).want("≤ 2 ms", func(v float64) bool { return v <= 2 })
	miss.add(3.5)
	if miss.verdict() != "**NO**" || len(r.misses()) != 1 || !strings.Contains(r.misses()[0], "p99: 3.50 ms, target ≤ 2 ms") {
		t.Errorf("a missed target: verdict %q, misses %q", miss.verdict(), r.misses())
	}

	none := r.fig("n", "per commit", "", 1).want("≥ 100", func(v float64) bool { return v >= 100 })
	none.add(math.NaN())
	none.unavailable("no ingest object in status")
	if none.verdict() != "n/a" || none.medianCell() != "n/a (no ingest object in status)" || none.rangeCell() != "—" {
		t.Errorf("no samples: %q %q %q", none.verdict(), none.medianCell(), none.rangeCell())
	}
	if got := r.fig("x", "untargeted", "×", 2); got.verdict() != "—" {
		t.Errorf("no target: verdict %q", got.verdict())
	}
	var nilFig *figure
	if nilFig.compactCell() != "—" {
		t.Error("compact cell of a missing figure")
	}
	ratio := r.fig("r", "ratio", "×", 2)
	ratio.add(1.234)
	if got := ratio.medianCell(); got != "1.23×" {
		t.Errorf("ratio cell = %q", got)
	}
}

func TestTable(t *testing.T) {
	var b strings.Builder
	table(&b, []string{"figure", "median"}, [][]string{{"rate", "1 msg/s"}, {"p99 → µs", "2"}})
	want := "" +
		"| figure   | median  |\n" +
		"| -------- | ------- |\n" +
		"| rate     | 1 msg/s |\n" +
		"| p99 → µs | 2       |\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestGroupOf(t *testing.T) {
	for key, want := range map[string]int{
		"drain.rate.agent": 0, "drain.rate.script": -1, "lat.pubstored.p99": 0,
		"cmd.reply.p99": 1, "cmd.rule.reply.p99": 1, "size.armv6": 2, "startup.new": 2, "scale.rate.big": 3, "bound.total": 3,
	} {
		if got := groupOf(key); got != want {
			t.Errorf("groupOf(%q) = %d, want %d", key, got, want)
		}
	}
}
