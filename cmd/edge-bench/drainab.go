package main

import (
	"fmt"
	"path/filepath"
)

// drainABSection is the backlog drain alone, for deciding whether a change
// to the per-message path pays: in each run the agent under test, then
// mosquitto_sub, then (with -compare) a second agent build, the order of
// the two agents swapped every other run so neither always drains first
// on a machine whose load drifts. Each agent's CPU per 10,000 messages and
// drain rate are reported relative to mosquitto_sub in the same run: the
// ratio, not the absolute figure, is what survives a shared machine.
func drainABSection(e *env) {
	n := e.sz.backlog
	agents := []string{e.agentBin}
	if e.compareBin != "" {
		agents = append(agents, e.compareBin)
		if e.run%2 == 0 {
			agents[0], agents[1] = agents[1], agents[0]
		}
	}
	type result struct {
		label string
		r     drainResult
	}
	var got []result
	var sub *drainResult
	drainOne := func(kind, bin string) {
		label := "mosquitto_sub"
		if kind == kindAgent {
			label = abLabel(e, bin)
		}
		e.progress("drain: backlog of %s messages, %s", num(float64(n), 0), label)
		s, err := e.newSubject(kind, "ab")
		if err != nil {
			e.fail("%s: %v", label, err)
			return
		}
		if as, ok := s.(agentSubject); ok {
			as.bin = bin
			if e.cpuProfile != "" && bin == e.agentBin {
				as.env = []string{"EDGE_AGENT_CPUPROFILE=" + e.cpuProfile}
			}
		}
		r, err := e.drain(s, e.id("ab-"+fmt.Sprint(len(got))+"-"+kindKey[kind]), n, nil)
		if err != nil {
			e.fail("backlog drain, %s: %v", label, err)
			return
		}
		if kind == kindSub {
			sub = &r
			return
		}
		got = append(got, result{label, r})
	}
	drainOne(kindAgent, agents[0])
	drainOne(kindSub, "")
	if len(agents) > 1 {
		drainOne(kindAgent, agents[1])
	}
	if sub == nil {
		return
	}
	e.rep.fig("ab.cpu.sub", "CPU s per 10,000 drained, mosquitto_sub", "s", 3).add(sub.cpu / float64(n) * 10000)
	e.rep.fig("ab.rate.sub", "drain rate, mosquitto_sub", "msg/s", 0).add(sub.rate())
	for _, g := range got {
		cpu := g.r.cpu / float64(n) * 10000
		e.rep.fig("ab.cpu."+g.label, "CPU s per 10,000 drained, "+g.label, "s", 3).add(cpu)
		e.rep.fig("ab.cpuratio."+g.label, "CPU per message, "+g.label+" ÷ mosquitto_sub (same run)", "×", 2).
			want("≤ 1.2×", func(v float64) bool { return v <= 1.2 }).add(g.r.cpu / sub.cpu)
		e.rep.fig("ab.rate."+g.label, "drain rate, "+g.label, "msg/s", 0).add(g.r.rate())
		e.rep.fig("ab.rss."+g.label, "peak RSS (VmHWM) after the drain, "+g.label, "MB", 1).add(float64(g.r.hwmKB) * 1024 / 1e6)
		e.rep.fig("ab.rateratio."+g.label, "drain rate, "+g.label+" ÷ mosquitto_sub (same run)", "×", 2).
			want("≥ 0.8×", func(v float64) bool { return v >= 0.8 }).add(g.r.rate() / sub.rate())
	}
}

// abLabel names an agent build in the drain section: "A" is -agent, "B"
// is -compare, with the file name.
func abLabel(e *env, bin string) string {
	if bin == e.agentBin {
		return "A (" + filepath.Base(bin) + ")"
	}
	return "B (" + filepath.Base(bin) + ")"
}
