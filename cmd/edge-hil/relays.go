package main

// The relay checks: boot, commands, timed relays, restarts and power cuts,
// each read from QEMU's trace of the PL061 lines and from the agent's
// status inside the guest.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// setRelay switches one relay by command and checks the lines and the
// status; it returns the time from publish to the line's change.
func (d *device) setRelay(res *result, method, name string, on bool, params map[string]any) (time.Duration, bool) {
	if params == nil {
		params = map[string]any{}
	}
	params["relay"] = name
	label := fmt.Sprintf("%s %s", method, name)
	if method == "relay.set" {
		params["on"] = on
		label = fmt.Sprintf("relay.set %s on=%v", name, on)
	}
	p := pinByName(name)
	rep, t0, _, err := d.command(method, params)
	if err != nil {
		res.fail("%s: %v", label, err)
		return 0, false
	}
	// The line's change (if the trace has none yet, the check below says
	// so), then settle: a glitch would be in the same burst.
	d.waitChange(p.offset, t0, p.level(on), time.Second)
	time.Sleep(settle)
	t1 := time.Now()
	if got, _ := rep.Result["on"].(bool); got != on {
		res.fail("%s: reply says on=%v, want %v", label, rep.Result["on"], on)
	}
	nErr := len(res.errs)
	d.expectRelays(res, label, t0, t1, relayWant{name: on})
	d.expectStatus(res, label, relayWant{name: on})
	evs := onLine(d.vm.trace.All(), p.offset, t0, t1)
	var lat time.Duration
	if len(evs) > 0 {
		lat = evs[0].At.Sub(t0)
	}
	return lat, len(res.errs) == nErr
}

// checkBootLines checks every relay line from the PL061's reset until
// now (before the first command): each goes straight to its level in want.
func (d *device) checkBootLines(res *result, want relayWant) {
	time.Sleep(settle) // let the trace reader catch up with the agent's start
	evs := d.vm.trace.All()
	reset := lastReset(evs)
	if reset.IsZero() {
		res.fail("no pl061_reset in QEMU's trace: is -trace pl061_reset working? (%d trace events)", len(evs))
		res.fatal = true
		return
	}
	now := time.Now()
	var first time.Time
	for _, p := range relays() {
		line := onLine(evs, p.offset, reset, now)
		if len(line) == 0 {
			res.fail("boot: PL061 line %d (%s) has no reset level in the trace", p.offset, p.name)
			continue
		}
		// QEMU's virt board pulls every PL061 line down at reset
		// (pl061_hold_reset prints each line's reset level): that is the
		// board's pull before the kernel runs. From then on the line may
		// change once, to its power_on level, and never show the other.
		base, rest := line[0], line[1:]
		w := p.level(want[p.name])
		if err := straight(base.Level, rest, w); err != nil {
			res.fail("boot: relay %s (power_on=%s, %s), PL061 line %d, from reset until the first command: %v",
				p.name, p.powerOn, p.wiring(), p.offset, err)
		}
		if len(rest) > 0 && (first.IsZero() || rest[0].At.Before(first)) {
			first = rest[0].At
		}
	}
	if !first.IsZero() {
		res.fig("reset → first relay line driven by the agent: %s", ms(first.Sub(reset)))
	}
}

// checkKernelView reads the kernel's own view of the lines
// (/sys/kernel/debug/gpio) from inside: every board line requested by the
// agent as an output, at the level the trace shows now.
func (d *device) checkKernelView(res *result) {
	ok, text, err := d.vm.ask("gpio", 10*time.Second)
	if err != nil || !ok {
		res.fail("kernel view (/sys/kernel/debug/gpio): %v %s", err, text)
		return
	}
	lines, err := parseDebugGPIO(strings.ReplaceAll(text, "\t", "\n"), "pl061")
	if err != nil {
		res.fail("kernel view: %v", err)
		return
	}
	evs := d.vm.trace.All()
	now := time.Now()
	for _, p := range board {
		l, ok := lines[p.offset]
		if !ok {
			res.fail("kernel view: PL061 line %d (%s) not requested (debugfs lists only requested lines)", p.offset, p.name)
			continue
		}
		if !strings.HasPrefix(l.consumer, "edge-agent") || !l.out {
			res.fail("kernel view: PL061 line %d (%s) is %q, consumer %q; want an output held by edge-agent", p.offset, p.name, l.dir(), l.consumer)
		}
		if lv, ok := levelAt(evs, p.offset, now); ok && lv != l.level && !p.led {
			res.fail("kernel view: PL061 line %d (%s) reads %d, the trace shows %d", p.offset, p.name, l.level, lv)
		}
	}
	if l, ok := lines[powerButtonLine]; ok {
		res.fail("kernel view: line %d (the power button) is held by %q", powerButtonLine, l.consumer)
	}
}

// checkBoot is the first look after a boot on a fresh disk: every relay
// off, straight from reset; the LEDs show state ok; the kernel agrees.
func (d *device) checkBoot(res *result) {
	d.checkBootLines(res, relayWant{"pump": false, "valve": false, "lamp": false, "heater": false})
	d.expectStatus(res, "boot", relayWant{"pump": false, "valve": false, "lamp": false, "heater": false})
	d.checkKernelView(res)
	evs := d.vm.trace.All()
	now := time.Now()
	// Connected, nothing pending: the status LED is steadily on, the
	// others dark.
	for name, want := range map[string]int{"status": 1, "activity": 0, "fault": 0} {
		p := pinByName(name)
		if lv, ok := levelAt(evs, p.offset, now); !ok || lv != want {
			res.fail("boot: LED %s (line %d) at %d, want %d (state ok)", name, p.offset, lv, want)
		}
	}
	if v, ok := d.vm.consoleFind("hil: init"); ok {
		res.fig("QEMU start → init: %s", ms(v.At.Sub(d.vm.started)))
	}
	res.fig("QEMU start → agent connected (status from inside): %s", ms(d.bootTimes[len(d.bootTimes)-1]))
}

// checkSet switches an active-high and an active-low relay on and off.
func (d *device) checkSet(res *result) {
	var lats []time.Duration
	for _, s := range []struct {
		name string
		on   bool
	}{{"pump", true}, {"pump", false}, {"valve", true}, {"valve", false}} {
		if lat, ok := d.setRelay(res, "relay.set", s.name, s.on, nil); ok {
			lats = append(lats, lat)
		}
	}
	if len(lats) > 0 {
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		res.fig("publish → line change: median %s, max %s (n=%d)", ms(lats[len(lats)/2]), ms(lats[len(lats)-1]), len(lats))
	}
}

// checkToggle flips both relays twice.
func (d *device) checkToggle(res *result) {
	d.setRelay(res, "relay.toggle", "valve", true, nil)
	d.setRelay(res, "relay.toggle", "valve", false, nil)
	d.setRelay(res, "relay.toggle", "pump", true, nil)
	d.setRelay(res, "relay.toggle", "pump", false, nil)
}

// checkFor switches the pump on for forDur: the line must be on that long
// and then go off by itself.
func (d *device) checkFor(res *result) {
	p := pinByName("pump")
	rep, t0, _, err := d.command("relay.set", map[string]any{"relay": "pump", "on": true, "for": forDur.String()})
	if err != nil {
		res.fail("relay.set pump for %s: %v", forDur, err)
		return
	}
	if _, ok := rep.Result["until"]; !ok {
		res.fail("relay.set pump for %s: reply has no until: %v", forDur, rep.Result)
	}
	time.Sleep(time.Until(t0.Add(forDur + 600*time.Millisecond)))
	t1 := time.Now()
	evs := d.vm.trace.All()
	before, _ := levelAt(evs, p.offset, t0)
	width, err := pulse(before, p.level(false), onLine(evs, p.offset, t0, t1))
	if err != nil {
		res.fail("relay.set pump for %s: PL061 line %d: %v", forDur, p.offset, err)
		return
	}
	if !within(width, forDur, forTol) {
		res.fail("relay.set pump for %s: the line was on for %s, want %s ± %s", forDur, ms(width), forDur, ms(forTol))
	}
	res.fig("on for %s (want %s ± %s)", us(width), forDur, ms(forTol))
	d.expectRelays(res, "relay.set pump for (the other relays)", t0, t1, nil, "pump")
	if st, ok := d.expectStatus(res, "after the for", relayWant{"pump": false}); ok && st.Relays["pump"].Until != nil {
		res.fail("after the for: status still has until %v", st.Relays["pump"].Until)
	}
}

// checkRestart stops the agent inside the running VM (SIGKILL: a crash;
// SIGTERM: a clean stop, as an update restarts it) and lets the guest's
// loop start it again, as systemd would. The lines stay requested by
// nobody in between and keep their levels; the new agent must take each
// held line without a glitch. This is where periph's own Out() would show:
// it makes the line an output at low before setting the level.
func (d *device) checkRestart(res *result, sig string) {
	// Lines high before the restart: valve and heater off (active low),
	// lamp on (restore); pump on, to be switched off (power_on=off).
	for _, s := range []struct {
		name string
		on   bool
	}{{"pump", true}, {"lamp", true}, {"valve", false}, {"heater", false}} {
		if _, err := d.setState(s.name, s.on); err != nil {
			res.fail("before the restart: %v", err)
			return
		}
	}
	exits := d.vm.consoleCount(agentExited)
	t0 := time.Now()
	ok, text, err := d.vm.ask(sig, 10*time.Second)
	if err != nil || !ok {
		res.fail("%s the agent in the guest: %v %s", sig, err, text)
		res.fatal = true
		return
	}
	// The old agent may answer until it is gone (SIGTERM takes a moment):
	// the guest's loop says when it exited.
	if err := d.vm.waitConsoleCount(agentExited, exits+1, 15*time.Second); err != nil {
		res.fail("after %s: %v", sig, err)
		res.fatal = true
		return
	}
	if _, err := d.vm.waitStatus(30*time.Second, "restarted agent connected", func(s guestStatus) bool {
		return s.Connected && s.State == "ok"
	}); err != nil {
		res.fail("after %s: %v", sig, err)
		res.fatal = true
		return
	}
	took := time.Since(t0)
	time.Sleep(settle)
	t1 := time.Now()
	want := relayWant{"pump": false, "lamp": true, "valve": false, "heater": false}
	d.expectRelays(res, "restart ("+sig+")", t0, t1, want)
	d.expectStatus(res, "after the restart", want)
	res.fig("%s → agent connected again: %s", sig, ms(took))
}

// setState sets a relay by command if it is not in that state already.
func (d *device) setState(name string, on bool) (testcloud.Reply, error) {
	rep, _, _, err := d.command("relay.set", map[string]any{"relay": name, "on": on})
	return rep, err
}

// agentExited is what the guest's init prints when the agent exits.
const agentExited = "hil: agent exited"

// checkPowerCut SIGKILLs QEMU with the restore relays on (lamp, active
// high: line high; heater, active low: line low) and boots again on the
// same disk: from the PL061's reset the restore relays must go straight to
// on and the others to off.
func (d *device) checkPowerCut(res *result) {
	for _, s := range []struct {
		name string
		on   bool
	}{{"pump", false}, {"valve", false}, {"lamp", true}, {"heater", true}} {
		if _, err := d.setState(s.name, s.on); err != nil {
			res.fail("before the power cut: %v", err)
			return
		}
	}
	d.vm.kill()
	d.r.logf("%s: QEMU SIGKILLed (power cut); booting again on the same disk", d.arch)
	took, err := d.boot()
	if err != nil {
		res.fail("boot after the power cut: %v", err)
		res.fatal = true
		return
	}
	want := relayWant{"pump": false, "valve": false, "lamp": true, "heater": true}
	d.checkBootLines(res, want)
	d.expectStatus(res, "after the power cut", want)
	d.checkKernelView(res)
	res.fig("QEMU start → agent connected: %s", ms(took))
	// And they still obey.
	d.setRelay(res, "relay.set", "lamp", false, nil)
	d.setRelay(res, "relay.set", "heater", false, nil)
}
