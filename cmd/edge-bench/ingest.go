package main

import (
	"fmt"
	"math"
	"time"
)

// pollEvery is how often a subject's stored count is read while it
// ingests: the status document over the control socket for the agent, the
// file's new bytes for the baselines. Each end of a timed interval is late
// by less than this, the same way for every subject.
const pollEvery = 10 * time.Millisecond

// stallLimit fails a phase whose subject stored nothing new for this long.
const stallLimit = 30 * time.Second

// drainResult is one backlog drain.
type drainResult struct {
	n           int
	startToLast time.Duration // process start → all stored
	// firstToLast is first stored → all stored: the drain's time. Not from
	// "connected" (the status document's since): mosquitto sends a resumed
	// session's queue right after the CONNACK, and the agent stamps since
	// only after the SUBACK and its online status, which come behind it.
	firstToLast time.Duration
	// startup is the agent's start-up to subscribed in the session's
	// start, when nothing was queued yet (the scale figures).
	startup    time.Duration
	cpu        float64 // CPU seconds of the subject, first → last stored
	hwmKB      int64   // agent: VmHWM when all were stored
	perCommit  float64 // agent: messages per commit; NaN without ingest
	storeBytes int64   // agent: the store's files (database and journal) afterwards
	total      int     // agent: inbox.total afterwards
}

func (d drainResult) rate() float64 { return rate(d.n, d.firstToLast) }

// drain measures a backlog drain: the subject's session exists, n
// messages are queued for it while it is stopped (the publisher has every
// PUBACK), then it starts and the bench polls until it has stored them
// all. prepared, when set, is called between the backlog and the start.
func (e *env) drain(s subject, tag string, n int, prepared func() error) (drainResult, error) {
	return e.drainThen(s, tag, n, prepared, nil)
}

// drainThen is drain with stored, when set, called once all n are stored
// (first is when the first was), before the bench reads the subject's
// store to verify them: the sinks section waits there for its sinks.
func (e *env) drainThen(s subject, tag string, n int, prepared func() error, stored func(first time.Time) error) (drainResult, error) {
	res := drainResult{n: n, perCommit: math.NaN()}
	if err := s.session(); err != nil {
		return res, fmt.Errorf("%s session: %w", s.kind(), err)
	}
	if err := e.backlog(s.topic(), tag, n); err != nil {
		return res, err
	}
	if prepared != nil {
		if err := prepared(); err != nil {
			return res, err
		}
	}
	if err := s.start(); err != nil {
		return res, err
	}
	p := s.process()
	defer p.kill()
	first, last, cpu0, err := waitStored(s, p, 0, n, "while draining")
	if err != nil {
		return res, err
	}
	if cpu1, err := cpuSeconds(p.pid()); err == nil {
		res.cpu = cpu1 - cpu0
	}
	if m, err := memKB(p.pid(), "VmHWM"); err == nil {
		res.hwmKB = m["VmHWM"]
	}
	res.startToLast, res.firstToLast = last.Sub(p.started), last.Sub(first)
	if stored != nil {
		if err := stored(first); err != nil {
			return res, err
		}
	}
	if as, ok := s.(agentSubject); ok {
		st, err := as.status()
		if err != nil {
			return res, err
		}
		if len(as.startups) > 0 {
			res.startup = as.startups[0]
		}
		res.total = st.Inbox.Total
		if st.Ingest != nil && st.Ingest.Commits > 0 {
			res.perCommit = float64(st.Ingest.Messages) / float64(st.Ingest.Commits)
		}
	}
	if err := e.verifyEventually(s, tag, n); err != nil {
		return res, err
	}
	if err := s.stop(); err != nil {
		return res, err
	}
	if as, ok := s.(agentSubject); ok {
		res.storeBytes = as.storeBytes()
	}
	return res, s.dropSession()
}

// backlog publishes n notifications of stream tag to topic and returns
// once the broker has acknowledged (so queued) every one.
func (e *env) backlog(topic, tag string, n int) error {
	pub, err := e.broker.pub(tag+"-pub", pubWindow)
	if err != nil {
		return err
	}
	defer pub.close()
	_, err = pub.flood(topic, n, func(i int) []byte { return makePayload(tag, i, 0) })
	if err != nil {
		return fmt.Errorf("backlog %s: %w", tag, err)
	}
	return nil
}

// pubWindow is the publishers' window of unacknowledged messages: the
// broker's max_inflight_messages, so a publisher is never the limit.
const pubWindow = 1000

// verifyEventually verifies, retrying for a few seconds: the count a
// subject reports can run a message or two ahead of the last bench
// message (a redelivered probe). Duplicates, which QoS 1 allows, are
// noted in the report.
func (e *env) verifyEventually(s subject, tag string, n int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		dups, err := s.verify(tag, n)
		if err == nil && dups > 0 {
			e.rep.note("run %d: %s stored %d duplicates of %s (QoS 1 allows them; none lost)", e.run, s.kind(), dups, tag)
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveResult is one live flood: the publisher's side and the subject's.
type liveResult struct {
	n           int
	pub         floodResult
	firstToLast time.Duration // subject: first stored → all stored
	perCommit   float64       // agent: messages per commit in the flood; NaN without ingest
	storedP99   float64       // agent: receive→stored p99 (ms) of the last 1000; NaN without ingest
}

func (l liveResult) rate() float64    { return rate(l.n, l.firstToLast) }
func (l liveResult) pubRate() float64 { return rate(l.n, l.pub.publishD) }

// live measures a live flood: the subject is connected and subscribed; the
// publisher sends n messages as fast as the broker acknowledges them; the
// bench polls the subject until it has stored them all.
func (e *env) live(s subject, tag string, n int) (liveResult, error) {
	res := liveResult{n: n, perCommit: math.NaN(), storedP99: math.NaN()}
	if err := s.start(); err != nil {
		return res, err
	}
	p := s.process()
	defer p.kill()
	if err := s.ready(); err != nil {
		return res, err
	}
	as, isAgent := s.(agentSubject)
	var commits0, msgs0 uint64
	if isAgent {
		st, err := as.status()
		if err != nil {
			return res, err
		}
		if st.Ingest != nil {
			commits0, msgs0 = st.Ingest.Commits, st.Ingest.Messages
		}
	}
	c0, err := s.count()
	if err != nil {
		return res, err
	}
	pub, err := e.broker.pub(tag+"-pub", pubWindow)
	if err != nil {
		return res, err
	}
	defer pub.close()
	type pubDone struct {
		r   floodResult
		err error
	}
	done := make(chan pubDone, 1)
	go func() {
		r, err := pub.flood(s.topic(), n, func(i int) []byte { return makePayload(tag, i, 0) })
		done <- pubDone{r, err}
	}()
	first, last, _, err := waitStored(s, p, c0, n, "in the flood")
	if err != nil {
		return res, err
	}
	pd := <-done
	if pd.err != nil {
		return res, pd.err
	}
	res.pub, res.firstToLast = pd.r, last.Sub(first)
	if isAgent {
		st, err := as.status()
		if err != nil {
			return res, err
		}
		if in := st.Ingest; in != nil && in.Commits > commits0 {
			res.perCommit = float64(in.Messages-msgs0) / float64(in.Commits-commits0)
			if in.StoredLatency != nil {
				res.storedP99 = in.StoredLatency.P99
			}
		}
	}
	if err := e.verifyEventually(s, tag, n); err != nil {
		return res, err
	}
	if err := s.stop(); err != nil {
		return res, err
	}
	return res, s.dropSession()
}

// waitStored polls s until it has stored n messages beyond c0 and returns
// when the first and the n-th were seen, and the subject's CPU seconds at
// the first. It fails when the subject exits or stores nothing new for
// stallLimit; during names the phase in the error.
func waitStored(s subject, p *proc, c0, n int, during string) (first, last time.Time, cpu0 float64, err error) {
	progress, progressAt := 0, time.Now()
	for {
		c, err := s.count()
		now := time.Now()
		if err == nil {
			c -= c0
		}
		if err == nil && c > 0 && first.IsZero() {
			first = now
			cpu0, _ = cpuSeconds(p.pid())
		}
		if err == nil && c >= n {
			return first, now, cpu0, nil
		}
		if err == nil && c > progress {
			progress, progressAt = c, now
		}
		if !p.alive() {
			return first, last, cpu0, fmt.Errorf("%s exited %s (%d of %d stored): %s", s.kind(), during, progress, n, p.lastLines())
		}
		if now.Sub(progressAt) > stallLimit {
			return first, last, cpu0, fmt.Errorf("%s stalled %s at %d of %d stored (last error %v)", s.kind(), during, progress, n, err)
		}
		time.Sleep(pollEvery)
	}
}
