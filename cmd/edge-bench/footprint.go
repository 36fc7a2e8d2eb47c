package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// startupPoll is how often the control socket is asked during start-up;
// it does not bound the figure's precision (the status document's since is
// the agent's own nanosecond stamp of connecting), only how soon the bench
// learns of it.
const startupPoll = 2 * time.Millisecond

// footprintSection is issue item 3 for one run: idle RSS, start-up to
// subscribed, and (from the backlog drain, run here if the ingest section
// did not) peak RSS and CPU per 10,000 messages.
func footprintSection(e *env, drain *drainResult) {
	e.progress("footprint: idle RSS %v after start, then %d start-ups on the same store", e.sz.idle, e.sz.startups)
	if err := measureIdle(e); err != nil {
		e.fail("footprint: %v", err)
	}
	if drain == nil && !e.sections["ingest"] {
		n := e.sz.backlog
		e.progress("footprint: backlog drain of %s messages, agent (peak RSS, CPU)", num(float64(n), 0))
		s, err := e.newSubject(kindAgent, "footprint-drain")
		if err != nil {
			e.fail("footprint: %v", err)
			return
		}
		r, err := e.drain(s, e.id("fp-drain"), n, nil)
		if err != nil {
			e.fail("footprint drain: %v", err)
			return
		}
		drain = &r
		e.rep.fig("cpu.agent", "CPU seconds per 10,000 messages, backlog drain", "s", 3).add(r.cpu / float64(n) * 10000)
		e.rep.fig("rss.agent", "peak RSS (VmHWM) after the drain", "MB", 1).add(float64(r.hwmKB) * 1024 / 1e6)
	}
	if drain != nil {
		e.rep.fig("rss.peak", fmt.Sprintf("peak RSS while draining %s (VmHWM)", num(float64(drain.n), 0)), "MB", 1).
			want("≤ 32 MB", func(v float64) bool { return v <= 32 }).add(float64(drain.hwmKB) * 1024 / 1e6)
		e.rep.fig("cpu.per10k", "CPU seconds per 10,000 messages while draining (utime+stime)", "s", 3).
			add(drain.cpu / float64(drain.n) * 10000)
	}
}

// measureIdle starts an agent on a new store, reads VmRSS e.sz.idle after
// the start (connected, no traffic), stops it, then starts it e.sz.startups
// times more on the same store (the reboot case) for start-up samples.
func measureIdle(e *env) error {
	a, err := e.newAgent("agent-footprint", storeCfg{})
	if err != nil {
		return err
	}
	if err := a.start(nil); err != nil {
		return err
	}
	if _, err := a.waitConnected(15*time.Second, startupPoll); err != nil {
		a.p.kill()
		return err
	}
	e.rep.fig("startup.new", "start-up to subscribed, new store (exec → connected)", "ms", 1).add(ms(a.startups[0]))
	time.Sleep(time.Until(a.p.started.Add(e.sz.idle)))
	m, err := memKB(a.p.pid(), "VmRSS")
	if err != nil {
		a.p.kill()
		return err
	}
	e.rep.fig("rss.idle", fmt.Sprintf("idle RSS (VmRSS %v after start, connected, no traffic)", e.sz.idle), "MB", 1).
		want("≤ 12 MB", func(v float64) bool { return v <= 12 }).add(float64(m["VmRSS"]) * 1024 / 1e6)
	if err := a.stop(); err != nil {
		return err
	}
	f := e.rep.fig("startup", "start-up to subscribed, existing store (exec → connected)", "ms", 1).
		want("≤ 300 ms", func(v float64) bool { return v <= 300 })
	for i := 0; i < e.sz.startups; i++ {
		if err := a.start(nil); err != nil {
			return err
		}
		if _, err := a.waitConnected(15*time.Second, startupPoll); err != nil {
			a.p.kill()
			return err
		}
		f.add(ms(a.startups[len(a.startups)-1]))
		if err := a.stop(); err != nil {
			return err
		}
	}
	return a.dropSession()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// distArches are make dist's targets.
var distArches = []string{"armv6", "armv7", "arm64", "amd64"}

// binarySizes reports the size of each release binary in the dist
// directory (once: they do not change between runs).
func binarySizes(e *env) {
	for _, arch := range distArches {
		f := e.rep.fig("size."+arch, "binary size, dist/edge-agent-linux-"+arch, "MB", 3)
		if arch != "amd64" {
			f.want("≤ 8 MB", func(v float64) bool { return v <= 8 })
		}
		st, err := os.Stat(filepath.Join(e.distDir, "edge-agent-linux-"+arch))
		if err != nil {
			f.unavailable("no " + filepath.Join(e.distDir, "edge-agent-linux-"+arch) + ": run make dist")
			continue
		}
		f.add(float64(st.Size()) / 1e6)
	}
}
