package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// sinkCase is one agent of the sinks section: its [[sink]] blocks (none
// for the baseline) and the sink whose throughput is read.
type sinkCase struct {
	key   string // figure keys: sinks.drain.KEY, sinks.ratio.KEY, sinks.rate.KEY
	label string
	sink  string // the sink's name; "" = no sink
	conf  func(dir string) string
}

// sinkCases: the backlog drain without a sink, with a file sink (the
// default line, fsynced per batch) and with an exec sink running a trivial
// command per record: cat, reading the payload from its stdin into the
// sink's /dev/null stdout (cat >/dev/null without a shell).
var sinkCases = []sinkCase{
	{key: "none", label: "no sink"},
	{key: "file", label: "a file sink", sink: "bench-file", conf: func(dir string) string {
		return fmt.Sprintf("\n[[sink]]\nname = \"bench-file\"\ntype = \"file\"\npath = %q\nmax_size = \"1GiB\"\n", filepath.Join(dir, "notify.log"))
	}},
	{key: "exec", label: "an exec sink (cat >/dev/null)", sink: "bench-exec", conf: func(string) string {
		return "\n[[sink]]\nname = \"bench-exec\"\ntype = \"exec\"\ncommand = [\"/bin/cat\"]\ntimeout = \"10s\"\n"
	}},
}

// sinkResult is one sink's side of a drain.
type sinkResult struct {
	delivered uint64
	took      time.Duration // first stored → the sink's cursor at the last stored seq
}

func (s sinkResult) rate() float64 {
	if s.took <= 0 {
		return 0
	}
	return float64(s.delivered) / s.took.Seconds()
}

// sinksSection is the sinks' cost to ingest for one run: the ingest
// section's backlog drain (same broker, same size, same method) with no
// sink, a file sink and an exec sink, one after another (the order rotated
// from run to run), so the ratios are of the same run; and each sink's own throughput, from the status
// document: records delivered ÷ (first stored → its cursor reaches the last
// stored seq), the sink working beside the drain from its first commit.
func sinksSection(e *env) {
	n := e.sz.sinkBacklog
	drains := map[string]drainResult{}
	// Each run starts with the next case, so that none always drains
	// first (on a fresh broker) or last.
	k := (e.run - 1) % len(sinkCases)
	for _, c := range append(sinkCases[k:len(sinkCases):len(sinkCases)], sinkCases[:k]...) {
		e.progress("sinks: backlog drain of %s messages, %s", num(float64(n), 0), c.label)
		r, sr, err := sinkDrain(e, c, n)
		if err != nil {
			e.fail("sinks, %s: %v", c.label, err)
			continue
		}
		drains[c.key] = r
		e.rep.fig("sinks.drain."+c.key, fmt.Sprintf("backlog drain of %s with %s (first → last stored)", num(float64(n), 0), c.label), "msg/s", 0).add(r.rate())
		e.rep.fig("sinks.cpu."+c.key, "agent CPU seconds per 10,000 messages in that drain (utime+stime, first → last stored)", "s", 3).add(r.cpu / float64(n) * 10000)
		if c.sink != "" {
			e.progress("sinks: %s delivered %d in %.2f s (%.0f records/s), drain %.0f msg/s",
				c.sink, sr.delivered, sr.took.Seconds(), sr.rate(), r.rate())
		}
	}
	for _, c := range sinkCases[1:] {
		f := e.rep.fig("sinks.ratio."+c.key, "backlog drain rate with "+c.label+" ÷ with none (same run)", "×", 2).
			want("≥ 0.9×", func(v float64) bool { return v >= 0.9 })
		a, okA := drains[c.key]
		b, okB := drains["none"]
		if okA && okB {
			f.add(a.rate() / b.rate())
		}
	}
}

// sinkDrain drains n messages into a fresh agent configured with c's sink
// and, once all are stored, polls its status until the sink's cursor
// reaches the last stored seq; the sink must have failed and dropped
// nothing, and a file sink's file must hold every message.
func sinkDrain(e *env, c sinkCase, n int) (drainResult, sinkResult, error) {
	var sr sinkResult
	a, err := e.newAgent("agent-sink-"+c.key, storeCfg{})
	if err != nil {
		return drainResult{}, sr, err
	}
	if c.conf != nil {
		f, err := os.OpenFile(a.cfgPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return drainResult{}, sr, err
		}
		_, err = f.WriteString(c.conf(a.dir))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return drainResult{}, sr, err
		}
	}
	tag := e.id("sink-" + c.key)
	var wait func(time.Time) error
	if c.sink != "" {
		wait = func(first time.Time) error {
			var err error
			sr, err = waitSink(a, c.sink, first)
			if err == nil && c.key == "file" {
				err = verifyLines(filepath.Join(a.dir, "notify.log"), tag, n, e)
			}
			if err == nil {
				e.rep.fig("sinks.rate."+c.key, c.sink+"'s own throughput: records delivered ÷ (first stored → its cursor at the last seq)", "records/s", 0).add(sr.rate())
			}
			return err
		}
	}
	r, err := e.drainThen(agentSubject{a}, tag, n, nil, wait)
	return r, sr, err
}

// waitSink polls the status document every pollEvery until sink's cursor
// reaches the last stored seq; it fails when the sink moves no further for
// stallLimit, or has failed or dropped anything.
func waitSink(a *agent, sink string, first time.Time) (sinkResult, error) {
	var res sinkResult
	st, err := a.status()
	if err != nil {
		return res, err
	}
	target := st.Inbox.LastSeq
	var cursor uint64
	movedAt := time.Now()
	for {
		st, err := a.status()
		now := time.Now()
		if err != nil {
			return res, err
		}
		k, ok := st.Sinks[sink]
		if !ok {
			return res, fmt.Errorf("no sink %q in the status document", sink)
		}
		if k.Failed > 0 || k.Dropped > 0 {
			return res, fmt.Errorf("sink %s: failed %d, dropped %d, last_error %q", sink, k.Failed, k.Dropped, k.LastError)
		}
		if k.Cursor >= target {
			res.delivered, res.took = k.Delivered, now.Sub(first)
			return res, nil
		}
		if k.Cursor > cursor {
			cursor, movedAt = k.Cursor, now
		}
		if now.Sub(movedAt) > stallLimit {
			return res, fmt.Errorf("sink %s stalled at cursor %d of %d (last_error %q)", sink, k.Cursor, target, k.LastError)
		}
		if !a.p.alive() {
			return res, fmt.Errorf("agent exited while sink %s was at %d of %d: %s", sink, k.Cursor, target, a.p.lastLines())
		}
		time.Sleep(pollEvery)
	}
}

// verifyLines checks that a file sink's file holds every message 0..n-1
// of stream tag; duplicates (at least once) are noted.
func verifyLines(path, tag string, n int, e *env) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cov := newCoverage(n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		cov.add(tag, sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	lost, dups, first := cov.result()
	if lost > 0 {
		return fmt.Errorf("file sink %s: %d of %d messages missing (first #%d)", path, lost, n, first)
	}
	if dups > 0 {
		e.rep.note("run %d: the file sink wrote %d duplicates of %s (at least once allows them; none lost)", e.run, dups, tag)
	}
	return nil
}
