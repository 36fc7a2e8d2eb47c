package main

// The LED checks: the activity flash, identify and the connecting state,
// timed on the lines against the patterns of docs/design.md#status-leds
// (hw/led/pattern.go).

import (
	"fmt"
	"strings"
	"time"
)

// checkActivity publishes one plain notification: the activity LED must
// flash once, 50 ms, and the inbox grow by one.
func (d *device) checkActivity(res *result) {
	p := pinByName("activity")
	st0, err := d.vm.status()
	if err != nil {
		res.fail("status from inside: %v", err)
		return
	}
	t0 := time.Now()
	if err := d.r.cloud.publish(d.id, []byte("hil: a plain notification, not a command")); err != nil {
		res.fail("publish: %v", err)
		return
	}
	time.Sleep(500 * time.Millisecond)
	t1 := time.Now()
	evs := d.vm.trace.All()
	before, _ := levelAt(evs, p.offset, t0)
	width, err := pulse(before, 0, onLine(evs, p.offset, t0, t1))
	if err != nil {
		res.fail("activity LED (line %d) after one notification: %v", p.offset, err)
	} else {
		if !within(width, 50*time.Millisecond, flashTol) {
			res.fail("activity LED flash lasted %s, want 50ms ± %s", ms(width), ms(flashTol))
		}
		res.fig("flash %s (want 50ms ± %s)", us(width), ms(flashTol))
	}
	d.expectRelays(res, "a notification", t0, t1, nil)
	if st, err := d.vm.status(); err != nil {
		res.fail("status from inside: %v", err)
	} else if st.Inbox.Total != st0.Inbox.Total+1 {
		res.fail("status from inside: inbox total %d → %d, want one more", st0.Inbox.Total, st.Inbox.Total)
	}
}

// checkIdentify sends led.identify for 2 s: all three LEDs blink together
// at 5 Hz (identify's pattern), for that long, then show state ok again;
// the status from inside says identify meanwhile.
func (d *device) checkIdentify(res *result) {
	_, t0, _, err := d.command("led.identify", map[string]any{"for": identifyFor.String()})
	if err != nil {
		res.fail("led.identify: %v", err)
		return
	}
	// From inside, midway: every LED shows identify.
	time.Sleep(time.Until(t0.Add(identifyFor / 2)))
	if st, err := d.vm.status(); err != nil {
		res.fail("status from inside: %v", err)
	} else {
		for _, n := range []string{"status", "activity", "fault"} {
			if st.LEDs[n] != "identify" {
				res.fail("status from inside during identify: leds.%s = %q, want identify", n, st.LEDs[n])
			}
		}
	}
	time.Sleep(time.Until(t0.Add(identifyFor + 700*time.Millisecond)))
	t1 := time.Now()
	evs := d.vm.trace.All()
	// Identify starts with every LED on: the fault LED (dark in state ok)
	// rises at the start. Edges after that are compared; the activity LED
	// may have been in its flash for the command's own message.
	fault := onLine(evs, pinByName("fault").offset, t0, t1)
	if len(fault) == 0 || fault[0].Level != 1 {
		res.fail("led.identify: the fault LED did not light at the start: %s", levels(0, fault))
		return
	}
	start := fault[0].At
	together := map[string][]event{}
	var counts, stalls []string
	var agg blinkStats
	for i, n := range []string{"status", "activity", "fault"} {
		p := pinByName(n)
		line := onLine(evs, p.offset, start.Add(time.Millisecond), t1)
		// 2 s at 5 Hz: 19 changes after the first (status has one more:
		// back on for state ok at the end); a stall may swallow 4.
		st, err := blink(line, 100*time.Millisecond, blinkTol, 15, 4)
		if err != nil {
			res.fail("led.identify: LED %s (line %d): %v", n, p.offset, err)
			continue
		}
		together[n] = line
		counts = append(counts, fmt.Sprint(st.Changes))
		if i == 0 || st.Min < agg.Min {
			agg.Min = st.Min
		}
		if i == 0 || st.Early < agg.Early {
			agg.Early = st.Early
		}
		agg.Max, agg.Late = max(agg.Max, st.Max), max(agg.Late, st.Late)
		if st.Stall > 0 {
			stalls = append(stalls, fmt.Sprintf("%s: a change %s late, %d missed", n, ms(st.Stall), st.Missed))
		}
	}
	if len(together) == 3 {
		res.fig("5 Hz on status/activity/fault: %s changes, intervals %s..%s, on the 100 ms grid %s..%s (want -%s..+%s)",
			strings.Join(counts, "/"), us(agg.Min), us(agg.Max), us(agg.Early), us(agg.Late), ms(blinkTol/2), ms(blinkTol))
	}
	if len(stalls) > 0 {
		res.fig("one stall tolerated (%s)", strings.Join(stalls, "; "))
	}
	if len(together) == 3 {
		if sk, err := skew(together); err != nil {
			res.fail("led.identify: %v", err)
		} else if sk > maxSkew {
			res.fail("led.identify: LEDs changed up to %s apart, want within %s", ms(sk), ms(maxSkew))
		} else {
			res.fig("LEDs together within %s", ms(sk))
		}
	}
	// It lasts identifyFor: the status LED's last change (back on) ends it.
	if st := onLine(evs, pinByName("status").offset, start, t1); len(st) > 0 {
		if dur := st[len(st)-1].At.Sub(start); !within(dur, identifyFor, blinkTol) {
			res.fail("led.identify lasted %s on the lines, want %s ± %s", ms(dur), identifyFor, ms(blinkTol))
		} else {
			res.fig("lasted %s", ms(dur))
		}
	}
	for name, want := range map[string]int{"status": 1, "activity": 0, "fault": 0} {
		if lv, _ := levelAt(evs, pinByName(name).offset, t1); lv != want {
			res.fail("after identify: LED %s at %d, want %d (state ok)", name, lv, want)
		}
	}
	d.expectRelays(res, "led.identify", t0, t1, nil)
}

// checkConnecting kills the broker for a while: the status LED must
// blink at 1 Hz (connecting), the fault LED stay dark and no relay move;
// then the agent reconnects by itself.
func (d *device) checkConnecting(res *result) {
	c := d.r.cloud
	t0 := time.Now()
	if err := c.Broker.Kill(); err != nil {
		res.fail("kill the broker: %v", err)
		return
	}
	// The status LED follows the state within the agent's 100 ms poll.
	st, err := d.vm.waitStatus(10*time.Second, "state and status LED connecting", func(s guestStatus) bool {
		return s.State == "connecting" && s.LEDs["status"] == "connecting"
	})
	if err != nil {
		res.fail("broker down: %v", err)
	} else if st.LEDs["fault"] != "off" {
		res.fail("broker down: status from inside shows leds %v, want the fault LED off", st.LEDs)
	}
	time.Sleep(time.Until(t0.Add(outage)))
	tUp := time.Now()
	if err := c.Broker.Restart(); err != nil {
		res.fail("restart the broker: %v", err)
		res.fatal = true
		return
	}
	if _, err := d.vm.waitStatus(20*time.Second, "reconnection", func(s guestStatus) bool { return s.Connected && s.State == "ok" }); err != nil {
		res.fail("broker back: %v", err)
		res.fatal = true
		return
	}
	res.fig("broker back → agent connected: %s (its backoff starts at ~1 s)", ms(time.Since(tUp)))
	if err := c.Connect(); err != nil {
		res.fail("reconnect the cloud clients: %v", err)
		res.fatal = true
		return
	}
	time.Sleep(settle)
	t1 := time.Now()
	evs := d.vm.trace.All()
	status := pinByName("status")
	line := onLine(evs, status.offset, t0, tUp)
	// 1 Hz: 6 changes in the outage after the agent noticed; a stall may
	// swallow 2.
	if bs, err := blink(line, 500*time.Millisecond, blinkTol, 4, 2); err != nil {
		res.fail("broker down: status LED (line %d): %v", status.offset, err)
	} else {
		res.fig("1 Hz on the status LED: %d changes, intervals %s..%s, on the 500 ms grid %s..%s (want -%s..+%s)",
			bs.Changes, us(bs.Min), us(bs.Max), us(bs.Early), us(bs.Late), ms(blinkTol/2), ms(blinkTol))
		if bs.Stall > 0 {
			res.fig("one stall tolerated (a change %s late, %d missed)", ms(bs.Stall), bs.Missed)
		}
	}
	fault := pinByName("fault")
	if f := onLine(evs, fault.offset, t0, t1); len(f) > 0 {
		res.fail("broker down: fault LED (line %d) showed %s, want dark throughout (connecting is no fault)", fault.offset, levels(0, f))
	}
	if lv, _ := levelAt(evs, status.offset, t1); lv != 1 {
		res.fail("broker back: status LED at %d, want 1 (state ok)", lv)
	}
	d.expectRelays(res, "broker outage", t0, t1, nil)
}
