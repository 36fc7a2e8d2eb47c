package main

// The power cut: QEMU killed while the cloud floods the gateway with
// notifications and while timed relays run, then the card boots again.

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// floodN is sized so that the cut comes while the broker still feeds the
// gateway: under TCG the agent stores some hundreds a second.
const floodN = 10000

func (r *rig) checkPowerCut(res *result) bool {
	if _, err := r.waitStatus(time.Minute, "connected agent", connected); err != nil {
		res.fail("%v", err)
		return false
	}
	// lamp (restore) runs past the next boot; heater (restore) ends
	// during the outage (about a minute and a half here); pump (off) is
	// on without a deadline.
	bootTook := r.bootTook
	lampFor := (2*bootTook + 60*time.Second).Round(time.Second)
	var lampSent, heaterDue time.Time
	for _, c := range []struct {
		name  string
		extra map[string]any
	}{{"pump", nil}, {"heater", map[string]any{"for": "20s"}}, {"lamp", map[string]any{"for": lampFor.String()}}} {
		_, ok := r.switchRelay(res, "sys-cut-"+c.name, c.name, true, c.extra)
		if !ok {
			return false
		}
		switch c.name {
		case "lamp":
			lampSent = time.Now()
		case "heater":
			heaterDue = time.Now().Add(20 * time.Second)
		}
	}
	// The flood: QoS 1, each acknowledged by the broker before the next.
	var mu sync.Mutex
	published := 0
	var pubErr error
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := 0; i < floodN; i++ {
			if err := r.cloud.publish([]byte(fmt.Sprintf("flood-%05d", i))); err != nil {
				mu.Lock()
				pubErr = err
				mu.Unlock()
				return
			}
			mu.Lock()
			published++
			mu.Unlock()
		}
	}()
	// Cut while the flood runs: once the broker has taken a fifth of it,
	// the agent is storing and acknowledging the first ones.
	deadline := time.Now().Add(time.Minute)
	atCut := 0
	for time.Now().Before(deadline) {
		mu.Lock()
		atCut = published
		mu.Unlock()
		if atCut >= floodN/5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.gw.cut()
	cutAt := time.Now()
	r.logf("  power cut: QEMU killed with %d of %d flood messages published, the heater on until %s, the lamp until %s",
		atCut, floodN, heaterDue.Format("15:04:05"), lampSent.Add(lampFor).Format("15:04:05"))
	<-floodDone
	if pubErr != nil {
		res.fail("the flood: %v", pubErr)
		return false
	}
	took, err := r.gw.boot(6 * time.Minute)
	if err != nil {
		res.fail("boot after the cut: %v", err)
		return false
	}
	if _, err := r.waitStatus(3*time.Minute, "connected agent after the cut", connected); err != nil {
		res.fail("%v", err)
		return false
	}
	upAt := time.Now()
	res.fig("cut at %d/%d published; power on → ssh %s, connected %s after power on", atCut, floodN, secs(took), secs(upAt.Sub(r.gw.started)))

	// Relays from the trace of the new boot: pump per power_on=off,
	// heater off (its deadline passed while the power was off), lamp on
	// again until its deadline.
	evs := r.gw.trace.All()
	reset := lastReset(evs)
	if reset.IsZero() {
		res.fail("no pl061_reset in the new boot's trace")
	}
	for _, p := range relayPins {
		lv, ok := levelAt(evs, p.line, time.Now())
		want := 0
		if p.name == "lamp" {
			want = 1
		}
		if !ok || lv != want {
			res.fail("after the cut, relay %s (power_on %s) line %d is %d (in trace: %v), want %d", p.name, p.powerOn, p.line, lv, ok, want)
		}
		if p.name != "lamp" {
			for _, e := range onLine(evs, p.line, reset, time.Time{}) {
				if e.Level == 1 {
					res.fail("after the cut, relay %s went on at %s (glitch)", p.name, e.At.Format("15:04:05.000"))
				}
			}
		}
	}
	st, err := r.status()
	if err == nil {
		if l := st.Relays["lamp"]; !l.On || l.Until == nil {
			res.fail("status after the cut: lamp %+v, want on with its deadline", l)
		} else {
			res.fig("lamp until %s in status (set for %s before the cut)", l.Until.Local().Format("15:04:05"), lampFor)
		}
	}
	// The lamp's deadline, honoured across the cut: the line falls then.
	due := lampSent.Add(lampFor)
	var fell time.Time
	for time.Now().Before(due.Add(30 * time.Second)) {
		for _, e := range onLine(r.gw.trace.All(), pinOf("lamp").line, upAt, time.Time{}) {
			if e.Level == 0 {
				fell = e.At
			}
		}
		if !fell.IsZero() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fell.IsZero() {
		res.fail("lamp line did not fall by its deadline %s + 30 s", due.Format("15:04:05"))
	} else {
		off := fell.Sub(due)
		res.fig("lamp off %+.1f s from its deadline (outage %s)", off.Seconds(), secs(upAt.Sub(cutAt)))
		if off < -2*time.Second || off > 5*time.Second {
			res.fail("lamp went off %+.1f s from its deadline", off.Seconds())
		}
	}

	// Every flood message the broker accepted is in the inbox: stored
	// before its PUBACK, or redelivered after the cut.
	var missing []string
	var dups, total int
	deadline = time.Now().Add(3 * time.Minute)
	for {
		out, err := r.gw.ssh(60*time.Second, "edge-agent inbox export -json")
		if err != nil {
			res.fail("%v", err)
			return false
		}
		seen := map[string]int{}
		total = 0
		for _, l := range strings.Split(out, "\n") {
			var rec struct {
				Payload string `json:"payload"`
			}
			if json.Unmarshal([]byte(l), &rec) == nil && strings.HasPrefix(rec.Payload, "flood-") {
				seen[rec.Payload]++
				total++
			}
		}
		missing = missing[:0]
		for i := 0; i < floodN; i++ {
			if seen[fmt.Sprintf("flood-%05d", i)] == 0 {
				missing = append(missing, fmt.Sprintf("flood-%05d", i))
			}
		}
		dups = total - (floodN - len(missing))
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(3 * time.Second)
	}
	if len(missing) > 0 {
		res.fail("%d of %d flood messages missing from the inbox after the cut (first %s)", len(missing), floodN, missing[0])
	} else {
		res.fig("all %d flood messages in the inbox (%d duplicates, QoS 1 redelivery)", floodN, dups)
	}
	return true
}
