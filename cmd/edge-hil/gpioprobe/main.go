// Command gpioprobe runs in make hil's guest: it takes PL061 lines as
// inputs through hw/periph (the kernel's GPIO character device and its edge
// events), while the rig drives those lines from outside QEMU, and reports
// what the kernel delivered. It is the real-kernel half of the inputs'
// conformance (hw/hwtest checks the same promises on fakes).
//
//	gpioprobe CHIP LINES BIAS N TIMEOUT
//
// takes gpiochipCHIP:L for each L in LINES (comma separated) with BIAS
// (up|down|none), writes "gpioprobe: ready L=LEVEL ..." to stderr (the
// guest's console, where the rig waits for it), collects N edges or waits
// TIMEOUT, closes every input and prints on stdout, one per line:
//
//	initial LINE LEVEL
//	edge LINE LEVEL UNIX_NS READ      (READ: the level Read gave on receipt)
//	final LINE LEVEL
//	closed LINE MICROSECONDS          (Close returned, Edges closed, in that time)
//	reopened LINE                     (the line taken again after Close)
//
// and "error TEXT" for anything that went wrong (exit status 1).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/periph"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
}

type edge struct {
	line int
	e    hw.Edge
	read bool
}

func run(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: gpioprobe CHIP LINES up|down|none N TIMEOUT")
	}
	chip := args[0]
	var lines []int
	for _, s := range strings.Split(args[1], ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("line %q: %v", s, err)
		}
		lines = append(lines, n)
	}
	bias, ok := map[string]hw.Bias{"up": hw.BiasUp, "down": hw.BiasDown, "none": hw.BiasNone}[args[2]]
	if !ok {
		return fmt.Errorf("bias %q: want up, down or none", args[2])
	}
	want, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	timeout, err := time.ParseDuration(args[4])
	if err != nil {
		return err
	}
	b, err := periph.New()
	if err != nil {
		return err
	}
	pin := func(l int) string { return "gpiochip" + chip + ":" + strconv.Itoa(l) }
	ins := make([]hw.Input, len(lines))
	edges := make(chan edge, 256)
	var ready []string
	for i, l := range lines {
		in, err := b.Input(pin(l), bias)
		if err != nil {
			return err
		}
		ins[i] = in
		level, err := in.Read()
		if err != nil {
			return err
		}
		fmt.Printf("initial %d %d\n", l, bit(level))
		ready = append(ready, fmt.Sprintf("%d=%d", l, bit(level)))
	}
	// One forwarder per input, ending when Close closes its channel.
	done := make(chan int, len(ins))
	for i, in := range ins {
		go func() {
			for e := range in.Edges() {
				r, _ := in.Read()
				edges <- edge{line: lines[i], e: e, read: r}
			}
			done <- i
		}()
	}
	fmt.Fprintf(os.Stderr, "gpioprobe: ready %s\n", strings.Join(ready, " "))
	deadline := time.After(timeout)
	for n := 0; n < want; n++ {
		select {
		case e := <-edges:
			fmt.Printf("edge %d %d %d %d\n", e.line, bit(e.e.High), e.e.At.UnixNano(), bit(e.read))
		case <-deadline:
			n = want
		}
	}
	for i, in := range ins {
		level, err := in.Read()
		if err != nil {
			return err
		}
		fmt.Printf("final %d %d\n", lines[i], bit(level))
	}
	for i, in := range ins {
		t0 := time.Now()
		if err := in.Close(); err != nil {
			return err
		}
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			return fmt.Errorf("line %d: Edges still open 2 s after Close", lines[i])
		}
		fmt.Printf("closed %d %d\n", lines[i], time.Since(t0).Microseconds())
	}
	for _, l := range lines {
		in, err := b.Input(pin(l), bias)
		if err != nil {
			return fmt.Errorf("line %d after Close: %v", l, err)
		}
		in.Close()
		fmt.Printf("reopened %d\n", l)
	}
	return nil
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}
