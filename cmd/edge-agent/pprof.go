//go:build pprof

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Built only with -tags pprof (`make profile`): release binaries carry no
// profiler (runtime/pprof would cost the ARM binary its 8 MB budget).
// EDGE_AGENT_CPUPROFILE=FILE makes `run` write a CPU profile to FILE.
func init() {
	startProfile = func() func() {
		path := os.Getenv("EDGE_AGENT_CPUPROFILE")
		if path == "" {
			return func() {}
		}
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "edge-agent: no CPU profile: %v\n", err)
			return func() {}
		}
		return func() { pprof.StopCPUProfile(); f.Close() }
	}
}
