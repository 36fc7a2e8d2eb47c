package main

import (
	"fmt"
	"math"
)

// Keys of the ingest figures, by subject kind.
var kindKey = map[string]string{kindAgent: "agent", kindScript: "script", kindSub: "sub"}

// ingestSection is issue item 1 for one run: the backlog drain and the
// live flood for the agent and both baselines, then publish→stored at
// 100/s. It returns the agent's drain (footprint and scale reuse it), or
// nil if it failed.
func ingestSection(e *env) *drainResult {
	n := e.sz.backlog
	var agentDrain *drainResult
	drains := map[string]drainResult{}
	for _, kind := range []string{kindAgent, kindScript, kindSub} {
		e.progress("ingest: backlog drain of %s messages, %s", num(float64(n), 0), kind)
		s, err := e.newSubject(kind, "drain")
		if err != nil {
			e.fail("%s: %v", kind, err)
			continue
		}
		if as, ok := s.(agentSubject); ok && e.cpuProfile != "" {
			// Each start rewrites the file: the drain's start is the last.
			as.env = []string{"EDGE_AGENT_CPUPROFILE=" + e.cpuProfile}
		}
		r, err := e.drain(s, e.id("drain-"+kindKey[kind]), n, nil)
		if err != nil {
			e.fail("backlog drain, %s: %v", kind, err)
			continue
		}
		drains[kind] = r
		k := kindKey[kind]
		e.rep.fig("drain.rate."+k, fmt.Sprintf("backlog drain of %s, %s (first → last stored)", num(float64(n), 0), kind), "msg/s", 0).add(r.rate())
		e.rep.fig("drain.start."+k, "backlog drain, process start → all stored", "s", 2).add(r.startToLast.Seconds())
		e.rep.fig("cpu."+k, "CPU seconds per 10,000 messages, backlog drain", "s", 3).add(r.cpu / float64(n) * 10000)
		e.rep.fig("rss."+k, "peak RSS (VmHWM) after the drain", "MB", 1).add(float64(r.hwmKB) * 1024 / 1e6)
		if kind == kindAgent {
			agentDrain = &r
			pc := e.rep.fig("drain.percommit", "messages per commit, backlog drain", "", 1)
			pc.add(r.perCommit)
			if math.IsNaN(r.perCommit) {
				pc.unavailable("no ingest object in status")
			}
		}
	}
	ratio := func(key, label, other, target string, ok func(float64) bool) {
		a, okA := drains[kindAgent]
		b, okB := drains[other]
		f := e.rep.fig(key, label, "×", 2)
		if target != "" {
			f.want(target, ok)
		}
		if okA && okB {
			f.add(a.rate() / b.rate())
		}
	}
	ratio("drain.ratio.sub", "backlog drain rate, agent ÷ mosquitto_sub (same run)", kindSub, "≥ 0.8×", func(v float64) bool { return v >= 0.8 })
	ratio("drain.ratio.script", "backlog drain rate, agent ÷ old script (same run)", kindScript, "≥ 2.5×", func(v float64) bool { return v >= 2.5 })

	n = e.sz.flood
	floods := map[string]liveResult{}
	for _, kind := range []string{kindAgent, kindScript, kindSub} {
		e.progress("ingest: live flood of %s messages, %s", num(float64(n), 0), kind)
		s, err := e.newSubject(kind, "flood")
		if err != nil {
			e.fail("%s: %v", kind, err)
			continue
		}
		r, err := e.live(s, e.id("flood-"+kindKey[kind]), n)
		if err != nil {
			e.fail("live flood, %s: %v", kind, err)
			continue
		}
		floods[kind] = r
		k := kindKey[kind]
		e.rep.fig("flood.rate."+k, fmt.Sprintf("live flood of %s, %s (first → last stored)", num(float64(n), 0), kind), "msg/s", 0).add(r.rate())
		e.rep.fig("flood.pub."+k, "publisher's rate in that flood (first PUBLISH → last PUBACK)", "msg/s", 0).add(r.pubRate())
		keep := e.rep.fig("flood.keep."+k, "live flood: "+kind+" ÷ its publisher", "×", 3)
		if kind == kindAgent {
			keep.want("≥ 0.95×", func(v float64) bool { return v >= 0.95 })
		}
		keep.add(r.rate() / r.pubRate())
		if kind == kindAgent {
			pc := e.rep.fig("flood.percommit", "messages per commit, live flood", "", 1).want("≥ 100", func(v float64) bool { return v >= 100 })
			pc.add(r.perCommit)
			lat := e.rep.fig("flood.storedp99", "receive→stored p99 at the end of the flood (agent's last 1000)", "ms", 2)
			lat.add(r.storedP99)
			if math.IsNaN(r.perCommit) {
				pc.unavailable("no ingest object in status")
				lat.unavailable("no ingest object in status")
			}
		}
	}
	for _, other := range []string{kindScript, kindSub} {
		f := e.rep.fig("flood.ratio."+kindKey[other], "live flood rate, agent ÷ "+other, "×", 2)
		if a, ok := floods[kindAgent]; ok {
			if b, ok := floods[other]; ok {
				f.add(a.rate() / b.rate())
			}
		}
	}
	latencySection(e)
	return agentDrain
}

// newSubject makes a fresh subject of kind for phase (its own client id,
// topic and directory).
func (e *env) newSubject(kind, phase string) (subject, error) {
	switch kind {
	case kindAgent:
		a, err := e.newAgent("agent-"+phase, storeCfg{})
		if err != nil {
			return nil, err
		}
		return agentSubject{a}, nil
	case kindScript:
		return e.newScript("script-" + phase), nil
	case kindSub:
		return e.newMosquittoSub("sub-" + phase), nil
	}
	return nil, fmt.Errorf("unknown subject %q", kind)
}
