package main

import (
	"fmt"
	"strconv"
	"strings"
)

// debugLine is one requested line as the kernel lists it in
// /sys/kernel/debug/gpio.
type debugLine struct {
	consumer string
	out      bool
	level    int
}

func (l debugLine) dir() string {
	if l.out {
		return "out"
	}
	return "in"
}

// parseDebugGPIO reads /sys/kernel/debug/gpio (Linux 6.12's
// gpiolib_dbg_show) and returns the requested lines of the chip whose
// header names label, by offset:
//
//	gpiochip0: GPIOs 512-519, parent: amba/9030000.pl061, 9030000.pl061:
//	 gpio-512 (                    |edge-agent@97       ) out lo
//	 gpio-513 (                    |edge-agent@97       ) out hi
//
// The numbers are global (base + offset); only requested lines appear.
func parseDebugGPIO(text, label string) (map[int]debugLine, error) {
	out := map[int]debugLine{}
	found := false
	in := false
	base := 0
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimRight(raw, " \r")
		if strings.HasPrefix(line, "gpiochip") {
			in = strings.Contains(line, label)
			if !in {
				continue
			}
			found = true
			_, r, ok := strings.Cut(line, "GPIOs ")
			if !ok {
				return nil, fmt.Errorf("chip header without GPIOs: %q", line)
			}
			first, _, _ := strings.Cut(r, "-")
			b, err := strconv.Atoi(first)
			if err != nil {
				return nil, fmt.Errorf("chip header %q: %w", line, err)
			}
			base = b
			continue
		}
		t := strings.TrimSpace(line)
		if !in || !strings.HasPrefix(t, "gpio-") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimPrefix(t, "gpio-"), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("line %q: bad gpio number", t)
		}
		open, close := strings.IndexByte(rest, '('), strings.LastIndexByte(rest, ')')
		bar := strings.IndexByte(rest, '|')
		if open < 0 || close < 0 || bar < open || bar > close {
			return nil, fmt.Errorf("line %q: want (name|consumer)", t)
		}
		f := strings.Fields(rest[close+1:])
		if len(f) < 2 || (f[0] != "out" && f[0] != "in") || (f[1] != "hi" && f[1] != "lo") {
			return nil, fmt.Errorf("line %q: want in|out hi|lo", t)
		}
		l := debugLine{consumer: strings.TrimSpace(rest[bar+1 : close]), out: f[0] == "out"}
		if f[1] == "hi" {
			l.level = 1
		}
		out[n-base] = l
	}
	if !found {
		return nil, fmt.Errorf("no chip labelled %q in /sys/kernel/debug/gpio", label)
	}
	return out, nil
}
