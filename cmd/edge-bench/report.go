package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// figure is one measured quantity: a sample per run (or per start), and
// the target for it, if it has one.
type figure struct {
	key     string
	label   string
	unit    string // printed after each number: "msg/s", "ms", "MB", "×"
	prec    int    // decimals
	samples []float64
	target  string             // "" = no target
	meets   func(float64) bool // judged on the median
	na      string             // why there is no sample, when there is none
}

func (f *figure) add(v float64) { f.samples = append(f.samples, v) }

// want sets the target: its text for the table and the test on the median.
func (f *figure) want(text string, ok func(float64) bool) *figure {
	f.target, f.meets = text, ok
	return f
}

// unavailable records why the figure has no sample (kept if one comes).
func (f *figure) unavailable(why string) {
	if f.na == "" {
		f.na = why
	}
}

func (f *figure) valid() []float64 {
	var out []float64
	for _, v := range f.samples {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	return out
}

// verdict is the "met?" cell: yes, NO (loud, so a miss stands out in a
// terminal and in markdown), "—" without a target, n/a without samples.
func (f *figure) verdict() string {
	v := f.valid()
	switch {
	case f.meets == nil:
		return "—"
	case len(v) == 0:
		return "n/a"
	case f.meets(median(v)):
		return "yes"
	}
	return "**NO**"
}

func (f *figure) missed() bool { return f.verdict() == "**NO**" }

// report collects the figures in the order they were first named.
type report struct {
	figs  []*figure
	byKey map[string]*figure
	notes []string
}

func newReport() *report { return &report{byKey: map[string]*figure{}} }

// fig returns the figure key, making it with label, unit and decimals the
// first time.
func (r *report) fig(key, label, unit string, prec int) *figure {
	if f, ok := r.byKey[key]; ok {
		return f
	}
	f := &figure{key: key, label: label, unit: unit, prec: prec}
	r.figs = append(r.figs, f)
	r.byKey[key] = f
	return f
}

func (r *report) get(key string) *figure { return r.byKey[key] }

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// num formats v with prec decimals, thousands grouped when prec is 0.
func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if prec > 0 {
		return strconv.FormatFloat(v, 'f', prec, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func withUnit(s, unit string) string {
	switch {
	case s == "n/a" || unit == "":
		return s
	case unit == "×":
		return s + "×"
	}
	return s + " " + unit
}

// medianCell is "median unit", or n/a.
func (f *figure) medianCell() string {
	v := f.valid()
	if len(v) == 0 {
		if f.na != "" {
			return "n/a (" + f.na + ")"
		}
		return "n/a"
	}
	return withUnit(num(median(v), f.prec), f.unit)
}

// rangeCell is "min–max (n=N)".
func (f *figure) rangeCell() string {
	v := f.valid()
	if len(v) == 0 {
		return "—"
	}
	lo, hi := span(v)
	return fmt.Sprintf("%s–%s (n=%d)", num(lo, f.prec), withUnit(num(hi, f.prec), f.unit), len(v))
}

// compactCell is "median (min–max)" for the baseline grid.
func (f *figure) compactCell() string {
	if f == nil {
		return "—"
	}
	v := f.valid()
	if len(v) == 0 {
		return "n/a"
	}
	lo, hi := span(v)
	return fmt.Sprintf("%s (%s–%s)", withUnit(num(median(v), f.prec), f.unit), num(lo, f.prec), num(hi, f.prec))
}

// table writes a markdown table, its columns padded so it also reads as
// plain text.
func table(w io.Writer, header []string, rows [][]string) {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = runeLen(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], runeLen(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-runeLen(c)) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

func runeLen(s string) int { return len([]rune(s)) }

// misses lists the figures whose median misses the target.
func (r *report) misses() []string {
	var out []string
	for _, f := range r.figs {
		if f.missed() {
			out = append(out, fmt.Sprintf("%s: %s, target %s", f.label, f.medianCell(), f.target))
		}
	}
	return out
}
