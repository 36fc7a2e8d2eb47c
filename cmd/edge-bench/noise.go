package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the machine's CPU time (from /proc/stat) and the bench's own
// with that of its waited-for children (every subject and broker), at one
// instant. Between two samples, the difference of the two is what other
// processes used: a benchmark on a shared machine must say when it was
// not alone.
type cpuSample struct {
	at    time.Time
	busy  float64 // all CPUs, seconds: user nice system irq softirq
	steal float64 // seconds the hypervisor ran someone else
	ours  float64 // the bench and its children, seconds
}

func sampleCPU() (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	s.busy, s.steal, err = parseProcStat(string(b))
	if err != nil {
		return s, err
	}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return s, err
		}
		s.ours += tv(ru.Utime) + tv(ru.Stime)
	}
	return s, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// parseProcStat reads the aggregate "cpu" line: busy (user, nice, system,
// irq, softirq) and steal, in seconds.
func parseProcStat(s string) (busy, steal float64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	v := make([]float64, 8)
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q", line)
		}
		v[i] = float64(n) / userHZ
	}
	// user nice system idle iowait irq softirq steal
	return v[0] + v[1] + v[2] + v[5] + v[6], v[7], nil
}

// noise is what other processes (and the hypervisor) took between a and b,
// as a share of the machine's CPU time over the interval.
type noise struct {
	others, steal float64 // shares of ncpu × wall
	wall          time.Duration
}

func noiseBetween(a, b cpuSample, ncpu int) noise {
	wall := b.at.Sub(a.at)
	capacity := wall.Seconds() * float64(ncpu)
	if capacity <= 0 {
		return noise{}
	}
	others := (b.busy - a.busy) - (b.ours - a.ours)
	return noise{others: max(others, 0) / capacity, steal: (b.steal - a.steal) / capacity, wall: wall}
}

func (n noise) String() string {
	return fmt.Sprintf("other processes used %.0f%% of the CPUs, steal %.0f%%", n.others*100, n.steal*100)
}

// noisy is the share above which a run's figures are flagged as disturbed.
const noisy = 0.05
