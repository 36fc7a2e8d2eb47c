package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// reconnectCap is the agent's backoff cap (docs/design.md#what-it-is:
// "from ~1 s up to 60 s").
const reconnectCap = 60 * time.Second

// runBrokerRestarts restarts a persistent mosquitto cleanly several times
// while a publisher streams, then crashes it (SIGKILL) while the agent
// drains a queue the broker had saved: nothing acknowledged is lost, and
// the agent is back within its first backoff step each time.
func runBrokerRestarts(e *env, p params, r *result) {
	rnd := rng(p, "broker")
	m := e.scenarioBroker(r, "restarts", agenttest.MosquittoOptions{Persistence: true})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("broker")
	cfg := newAgentConfig("faults-broker", m.URL)
	cfgPath, a, _, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer a.kill()
	notify := cfg.topic("notify")

	// Clean restarts during a stream.
	restarts := 4
	if p.soak > 0 {
		restarts = 20
	}
	s := e.newStream(m.URL, "faults-broker-pub", notify, "restart", 2*time.Millisecond).start(0)
	var recov []time.Duration
	for i := 0; i < restarts; i++ {
		time.Sleep(time.Duration(500+rnd.IntN(1500)) * time.Millisecond)
		down := time.Now()
		if err := m.Restart(); err != nil {
			r.fail("restart %d: %v", i+1, err)
			s.finish()
			return
		}
		up := time.Now()
		st, err := waitStatus(cfg.dataDir, reconnectCap+10*time.Second, func(s status) bool {
			return s.Connected && s.Since.After(down)
		})
		if err != nil {
			r.fail("after restart %d: %v", i+1, err)
			continue
		}
		recov = append(recov, max(st.Since.Sub(up), 0))
	}
	time.Sleep(500 * time.Millisecond)
	s.finish()
	rep, ok := allStored(r, cfg.dataDir, s.ackedCopy(), 60*time.Second)
	if !ok {
		return
	}
	if rep.lost > 0 {
		r.fail("broker restarts: %d of %d acknowledged messages lost (first %s)", rep.lost, rep.acked, rep.firstLost)
	}
	r.fig("clean restarts during a stream", "%d; %d messages acknowledged, %d lost, %d duplicates", restarts, rep.acked, rep.lost, rep.dups)
	r.fig("recovery after a restart (broker up → agent subscribed)", "%s", durStats(recov))
	for _, d := range recov {
		// The first retry comes within 1 s, the second within 2 s more
		// (backoff [d/2, d) from 1 s); a broker slow to restart costs one.
		if d > 4*time.Second {
			r.fail("the agent took %v to come back after a quick broker restart", d)
		}
	}
	summarise("restart", "%s (n=%d)", durStats(recov), len(recov))

	// A crash while the agent drains a saved queue: the broker comes back
	// with what it last saved, so some messages come again (duplicates);
	// none may be missing.
	a.kill()
	const burst = 6000
	pub, err := e.publisher(m.URL, "faults-broker-burst")
	if err != nil {
		r.fail("%v", err)
		return
	}
	var acked [][]byte
	for i := 0; i < burst; i++ {
		pl := textOrBinary("crash", i)
		if err := agenttest.PublishQoS1(pub, notify, pl, 10*time.Second); err != nil {
			r.fail("burst publish %d: %v", i, err)
			break
		}
		acked = append(acked, pl)
	}
	pub.Disconnect(100)
	// SIGUSR1: mosquitto writes its persistence database now.
	_ = syscall.Kill(m.Pid(), syscall.SIGUSR1)
	dbFile := filepath.Join(m.Dir, "data", "mosquitto.db")
	last := acked[len(acked)-1]
	if !waitFor(10*time.Second, func() bool {
		b, err := os.ReadFile(dbFile)
		return err == nil && bytes.Contains(b, last)
	}) {
		r.fail("mosquitto did not save its queue to %s", dbFile)
		return
	}
	a, err = e.startAgent(cfgPath, nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer a.kill()
	base := rep.acked + rep.dups
	target := base + burst/5 + rnd.IntN(burst/2)
	if _, err := waitStatus(cfg.dataDir, 30*time.Second, func(s status) bool { return s.Inbox.Total >= target }); err != nil {
		r.fail("drain before the crash: %v", err)
	}
	st, _ := getStatus(cfg.dataDir)
	crashAt := st.Inbox.Total - base
	down := time.Now()
	if err := m.Kill(); err != nil {
		r.fail("kill mosquitto: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := m.Restart(); err != nil {
		r.fail("start mosquitto after its crash: %v", err)
		return
	}
	up := time.Now()
	st, err = waitStatus(cfg.dataDir, reconnectCap+10*time.Second, func(s status) bool { return s.Connected && s.Since.After(down) })
	if err != nil {
		r.fail("after the crash: %v", err)
		return
	}
	crashRecov := max(st.Since.Sub(up), 0)
	rep2, ok := allStored(r, cfg.dataDir, acked, 60*time.Second)
	if !ok {
		return
	}
	if rep2.lost > 0 {
		r.fail("broker crash: %d of %d saved messages lost (first %s)", rep2.lost, rep2.acked, rep2.firstLost)
	}
	r.fig("broker SIGKILL while the agent drained a saved queue", "after %d of %d stored; %d lost, %d duplicates", crashAt, burst, rep2.lost, rep2.dups)
	r.fig("recovery after the crash (broker up → subscribed)", "%s", ms(crashRecov))
	if !strings.Contains(a.Log(), "connected and subscribed") {
		r.fail("no reconnect in the agent's log")
	}
}

// runOutage stops the broker for p.outage: the agent stays up in state
// connecting and says the broker is unreachable; after the broker returns it
// reconnects within its backoff cap and receives what was published for it
// in the meantime.
func runOutage(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "outage", agenttest.MosquittoOptions{Persistence: true})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("outage")
	cfg := newAgentConfig("faults-outage", m.URL)
	_, a, _, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer a.kill()
	notify := cfg.topic("notify")
	if err := m.Stop(); err != nil {
		r.fail("stop mosquitto: %v", err)
	}
	down := time.Now()
	bad := 0
	time.Sleep(time.Second) // the first retry comes within a second and says "unreachable"
	for time.Since(down) < p.outage {
		time.Sleep(time.Second)
		st, err := getStatus(cfg.dataDir)
		if err != nil || st.Connected || st.State != "connecting" || !strings.Contains(st.LastError, "unreachable") {
			bad++
			if bad == 1 {
				r.fail("during the outage: err=%v connected=%v state=%q last_error=%q", err, st.Connected, st.State, st.LastError)
			}
		}
	}
	attempts := strings.Count(a.Log(), `msg=connecting`) - 1
	if err := m.Restart(); err != nil {
		r.fail("%v", err)
		return
	}
	up := time.Now()
	// Published as soon as the broker is back, before the agent is:
	// queued in the agent's persistent session.
	s := e.newStream(m.URL, "faults-outage-pub", notify, "outage", 0).start(200)
	st, err := waitStatus(cfg.dataDir, reconnectCap+15*time.Second, func(s status) bool { return s.Connected })
	if err != nil {
		r.fail("not back after the outage: %v", err)
		s.finish()
		return
	}
	<-s.done
	recov := max(st.Since.Sub(up), 0)
	rep, ok := allStored(r, cfg.dataDir, s.ackedCopy(), 30*time.Second)
	if !ok {
		return
	}
	if rep.lost > 0 {
		r.fail("%d of %d messages published after the outage lost", rep.lost, rep.acked)
	}
	if recov > reconnectCap+2*time.Second {
		r.fail("back %v after the broker returned: more than the backoff cap %v", recov, reconnectCap)
	}
	r.fig("outage", "%v; state connecting and \"unreachable\" throughout; %d connect attempts", p.outage, attempts)
	r.fig("recovery after the outage (broker up → subscribed)", "%s (cap %v)", ms(recov), reconnectCap)
	r.fig("messages published while the agent was still away", "%d acknowledged, %d lost", rep.acked, rep.lost)
	summarise("outage", "%s after a %v outage", ms(recov), p.outage)
}

// runSpread connects p.spreadN agents to one broker, takes the broker away
// for p.brokerDown and measures when each comes back: jittered backoff must
// spread them out, not bring them back in lockstep.
func runSpread(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "spread", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	type one struct {
		dataDir string
		a       *agentProc
	}
	var agents []one
	for i := 0; i < p.spreadN; i++ {
		dir := e.sub("spread")
		cfg := newAgentConfig(fmt.Sprintf("faults-spread-%02d", i), m.URL)
		cfgPath, err := e.writeConfig(dir, cfg)
		if err != nil {
			r.fail("%v", err)
			return
		}
		a, err := e.startAgent(cfgPath, nil)
		if err != nil {
			r.fail("%v", err)
			return
		}
		defer a.kill()
		agents = append(agents, one{cfg.dataDir, a})
	}
	for _, o := range agents {
		if _, err := waitStatus(o.dataDir, 20*time.Second, func(s status) bool { return s.Connected }); err != nil {
			r.fail("%v", err)
			return
		}
	}
	if err := m.Stop(); err != nil {
		r.fail("%v", err)
	}
	down := time.Now()
	time.Sleep(p.brokerDown)
	if err := m.Restart(); err != nil {
		r.fail("%v", err)
		return
	}
	up := time.Now()
	var back []time.Duration
	for _, o := range agents {
		st, err := waitStatus(o.dataDir, reconnectCap+10*time.Second, func(s status) bool { return s.Connected && s.Since.After(down) })
		if err != nil {
			r.fail("%v", err)
			continue
		}
		back = append(back, st.Since.Sub(up))
	}
	if len(back) < 2 {
		return
	}
	sort.Slice(back, func(i, j int) bool { return back[i] < back[j] })
	spread := back[len(back)-1] - back[0]
	// The most agents that came back within any 100 ms.
	crowd := 0
	for i := range back {
		j := i
		for j < len(back) && back[j]-back[i] < 100*time.Millisecond {
			j++
		}
		crowd = max(crowd, j-i)
	}
	r.fig("agents", "%d, broker down %v", len(back), p.brokerDown)
	r.fig("reconnect after broker up", "first %s, median %s, last %s", ms(back[0]), ms(back[len(back)/2]), ms(back[len(back)-1]))
	r.fig("spread (last − first)", "%s", ms(spread))
	r.fig("most agents within one 100 ms window", "%d of %d", crowd, len(back))
	if crowd > max(2, len(back)/2) {
		r.fail("%d of %d agents reconnected within 100 ms of each other: lockstep", crowd, len(back))
	}
	if spread < 500*time.Millisecond {
		r.fail("reconnects spread over only %v", spread)
	}
	summarise("spread", "%s for %d agents (at most %d within 100 ms)", ms(spread), len(back), crowd)
}

// durStats is "median X, max Y".
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("median %s, max %s", ms(s[len(s)/2]), ms(s[len(s)-1]))
}

func waitFor(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ok()
}
