package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// buildProbes cross-builds cmd/edge-hil/gpioprobe for both guest
// architectures into dir, with the go that runs the build (make hil's).
func buildProbes(dir string) (map[string]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("go not on PATH (make hil runs it with the toolchain that built the rig): %w", err)
	}
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
		return nil, fmt.Errorf("run edge-hil from the repository (make hil): go env GOMOD = %q (%v)", strings.TrimSpace(string(mod)), err)
	}
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	out := map[string]string{}
	for arch, env := range map[string][]string{
		"arm64": {"GOARCH=arm64"},
		"armv6": {"GOARCH=arm", "GOARM=6"},
	} {
		p := filepath.Join(dir, "gpioprobe-"+arch)
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", p, "./cmd/edge-hil/gpioprobe")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0", "GOOS=linux"}, env...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build gpioprobe for %s: %v\n%s", arch, err, b)
		}
		out[arch] = p
	}
	return out, nil
}

// probeEdge is one edge gpioprobe received.
type probeEdge struct {
	line, level int
	at          time.Time // the kernel's CLOCK_REALTIME stamp (the guest's clock)
	read        int       // the level Read gave on receipt
}

// probeResult is gpioprobe's report (see its package comment).
type probeResult struct {
	initial, final map[int]int
	edges          []probeEdge
	closed         map[int]time.Duration // Close until Edges was closed
	reopened       map[int]bool
	errs           []string
}

// parseProbe reads gpioprobe's report as the control channel returns it
// (tabs for newlines).
func parseProbe(text string) (probeResult, error) {
	r := probeResult{initial: map[int]int{}, final: map[int]int{}, closed: map[int]time.Duration{}, reopened: map[int]bool{}}
	num := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	for _, l := range strings.FieldsFunc(text, func(c rune) bool { return c == '\t' || c == '\n' }) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "error" {
			r.errs = append(r.errs, strings.TrimPrefix(l, "error "))
			continue
		}
		var n []int64
		for _, s := range f[1:] {
			v, err := num(s)
			if err != nil {
				return r, fmt.Errorf("gpioprobe line %q: %v", l, err)
			}
			n = append(n, v)
		}
		want := map[string]int{"initial": 2, "final": 2, "edge": 4, "closed": 2, "reopened": 1}[f[0]]
		if want == 0 || len(n) != want {
			return r, fmt.Errorf("gpioprobe line %q: not a report line", l)
		}
		switch f[0] {
		case "initial":
			r.initial[int(n[0])] = int(n[1])
		case "final":
			r.final[int(n[0])] = int(n[1])
		case "edge":
			r.edges = append(r.edges, probeEdge{line: int(n[0]), level: int(n[1]), at: time.Unix(0, n[2]), read: int(n[3])})
		case "closed":
			r.closed[int(n[0])] = time.Duration(n[1]) * time.Microsecond
		case "reopened":
			r.reopened[int(n[0])] = true
		}
	}
	return r, nil
}

// probeSeq is what the kernel-level input check drives on the power
// button's line: it rests high (a pull-up), then six edges.
var probeSeq = []int{0, 1, 0, 1, 0, 1}

// probeGap is the time between the edges driven: far above a TCG guest's
// interrupt latency, so each edge is read before the next (Read on
// receipt is then the edge's level).
const probeGap = 40 * time.Millisecond

// checkProbe drives the power button's PL061 line from outside QEMU while
// gpioprobe has it as an input through hw/periph in the guest, with the
// agent running beside it on the other lines.
func (d *device) checkProbe(res *result) {
	v := d.vm
	line := powerButtonLine
	if _, err := v.setInput(line, 1); err != nil {
		res.fail("%v", err)
		return
	}
	n := v.consoleCount("gpioprobe: ready")
	type answer struct {
		ok   bool
		text string
		err  error
	}
	ans := make(chan answer, 1)
	go func() {
		ok, text, err := v.ask(fmt.Sprintf("probe %d up %d 20s", line, len(probeSeq)), 30*time.Second)
		ans <- answer{ok, text, err}
	}()
	if err := v.waitConsoleCount("gpioprobe: ready", n+1, 10*time.Second); err != nil {
		res.fail("gpioprobe: %v", err)
		return
	}
	var driven []time.Time // the trace's stamps of each change
	for _, level := range probeSeq {
		t, err := v.setInput(line, level)
		if err != nil {
			res.fail("%v", err)
			return
		}
		at, ok := v.inputChange(line, level, t, 2*time.Second)
		if !ok {
			res.fail("line %d to %d: no pl061_input_change in QEMU's trace", line, level)
			return
		}
		driven = append(driven, at)
		time.Sleep(probeGap)
	}
	a := <-ans
	if a.err != nil {
		res.fail("gpioprobe: %v", a.err)
		return
	}
	p, err := parseProbe(a.text)
	if err != nil {
		res.fail("%v", err)
		return
	}
	if !a.ok || len(p.errs) > 0 {
		res.fail("gpioprobe failed: %s", strings.Join(p.errs, "; "))
		return
	}
	if p.initial[line] != 1 {
		res.fail("line %d read %d when taken, want 1 (the level the rig set)", line, p.initial[line])
	}
	var got []int
	for _, e := range p.edges {
		got = append(got, e.level)
		if e.line != line {
			res.fail("edge on line %d, only %d was driven", e.line, line)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(probeSeq) {
		res.fail("edges %v, want %v (every change driven, in order)", got, probeSeq)
		return
	}
	// Each edge's kernel stamp against QEMU's: the guest's clock is its
	// own (set from the RTC at boot), so compare the gaps, not the times.
	var worst time.Duration
	readOK := 0
	for i, e := range p.edges {
		if e.read == e.level {
			readOK++
		}
		if i == 0 {
			continue
		}
		kg, hg := e.at.Sub(p.edges[i-1].at), driven[i].Sub(driven[i-1])
		if kg <= 0 {
			res.fail("edge %d stamped %v after the one before it", i, kg)
		}
		worst = max(worst, (kg - hg).Abs())
	}
	if p.final[line] != 1 {
		res.fail("Read after the edges = %d, want 1", p.final[line])
	}
	if _, ok := p.closed[line]; !ok || !p.reopened[line] {
		res.fail("Close did not end Edges or the line could not be taken again: %q", a.text)
	}
	res.fig("%d edges in order, kernel stamps' gaps within %s of QEMU's; Read on receipt = the edge's level %d/%d; Close → Edges closed %s",
		len(p.edges), us(worst), readOK, len(p.edges), us(p.closed[line]))
}
