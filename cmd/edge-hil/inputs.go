package main

import (
	"fmt"
	"strings"
	"time"
)

// The agent's inputs (docs/design.md#inputs-relay-feedback-and-safe-state),
// checked on inputsBoard after a boot with hil.config=inputs. They need an
// agent that knows [[input]]: edge-hil -inputs (or EDGE_HIL_INPUTS=1)
// appends them to every arch's plan.
var (
	chkInBoot   = check{"boot (inputs)", "booted with two [[input]]s on lines the rig rests high: both inactive in status, held as inputs by the agent", (*device).checkInputsBoot}
	chkInEvent  = check{"input event", "a contact closed and opened from outside QEMU: one event each on the event topic, status follows; a pulse shorter than debounce is no event", (*device).checkInputEvent}
	chkInToggle = check{"input toggles", "a button press toggles its relay locally: the relay's line moves once per press (latency from the edge to the line)", (*device).checkInputToggle}

	inputChecks = []check{chkInBoot, chkInEvent, chkInToggle}
)

// checkInputsBoot powers the VM off and boots it on the same disk with the
// input checks' config; the inputs' lines rest at their idle level from
// QEMU's start.
func (d *device) checkInputsBoot(res *result) {
	d.vm.kill()
	d.config, d.idle = "inputs", idleLevels(inputsInputs)
	d.r.logf("%s: booting with the inputs config (%d inputs)", d.arch, len(inputsInputs))
	took, err := d.boot()
	if err != nil {
		res.fail("boot with the inputs config: %v", err)
		res.fatal = true
		return
	}
	st, err := d.vm.waitStatus(5*time.Second, "every input in status", func(st guestStatus) bool {
		return len(st.Inputs) == len(inputsInputs)
	})
	if err != nil {
		res.fail("%v", err)
	}
	for _, in := range inputsInputs {
		s, ok := st.Inputs[in.name]
		if !ok {
			res.fail("status has no input %q (inputs: %v)", in.name, st.Inputs)
			continue
		}
		if s.Active {
			res.fail("input %s active at boot; its line rests at %d (%s, active_low %v)", in.name, in.idle, in.pull, in.activeLow)
		}
	}
	ok, text, err := d.vm.ask("gpio", 10*time.Second)
	if err != nil || !ok {
		res.fail("kernel view: %v %s", err, text)
		return
	}
	lines, err := parseDebugGPIO(strings.ReplaceAll(text, "\t", "\n"), "pl061")
	if err != nil {
		res.fail("kernel view: %v", err)
		return
	}
	for _, in := range inputsInputs {
		l, ok := lines[in.offset]
		if !ok || l.out || !strings.HasPrefix(l.consumer, "edge-agent") {
			res.fail("kernel view: line %d (%s) is %+v, want an input held by edge-agent", in.offset, in.name, l)
		}
	}
	res.fig("QEMU start → agent connected: %s", ms(took))
}

// drive sets input's line to its level for active and returns QEMU's stamp
// of the change.
func (d *device) drive(in input, active bool) (time.Time, error) {
	level := in.level(active)
	t, err := d.vm.setInput(in.offset, level)
	if err != nil {
		return t, err
	}
	at, ok := d.vm.inputChange(in.offset, level, t, 2*time.Second)
	if !ok {
		return t, fmt.Errorf("line %d (%s) to %d: no pl061_input_change in QEMU's trace", in.offset, in.name, level)
	}
	return at, nil
}

// waitEvent waits for the first event of input name with active after t.
func (d *device) waitEvent(name string, active bool, t time.Time, wait time.Duration) (deviceEvent, bool) {
	deadline := time.Now().Add(wait)
	for {
		for _, e := range d.r.cloud.eventsSince(d.id, t) {
			if e.Input == name && e.Active == active {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return deviceEvent{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *device) checkInputEvent(res *result) {
	door := inputByName("door")
	t0 := time.Now()
	var lat []time.Duration
	var seqs []int64
	for _, active := range []bool{true, false} {
		at, err := d.drive(door, active)
		if err != nil {
			res.fail("%v", err)
			return
		}
		e, ok := d.waitEvent(door.name, active, at, 5*time.Second)
		if !ok {
			res.fail("door active=%v: no event on %s within 5 s (events since: %+v)", active, eventTopic(d.id), d.r.cloud.eventsSince(d.id, t0))
			return
		}
		if _, err := time.Parse(time.RFC3339Nano, e.At); err != nil {
			res.fail("event %+v: at is not RFC 3339: %v", e, err)
		}
		lat = append(lat, e.Arrived.Sub(at))
		seqs = append(seqs, e.Seq)
		if _, err := d.vm.waitStatus(3*time.Second, fmt.Sprintf("status inputs.door.active = %v", active), func(st guestStatus) bool {
			s, ok := st.Inputs[door.name]
			return ok && s.Active == active && s.Since != nil
		}); err != nil {
			res.fail("%v", err)
		}
	}
	if seqs[1] <= seqs[0] {
		res.fail("event seq %d then %d, want increasing", seqs[0], seqs[1])
	}
	if evs := d.r.cloud.eventsSince(d.id, t0); len(evs) != 2 {
		res.fail("%d events for one close and one open, want 2: %+v", len(evs), evs)
	}
	// A bounce: active for 5 ms, under the 20 ms debounce.
	t1 := time.Now()
	if _, err := d.drive(door, true); err != nil {
		res.fail("%v", err)
		return
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := d.drive(door, false); err != nil {
		res.fail("%v", err)
		return
	}
	time.Sleep(500 * time.Millisecond)
	if evs := d.r.cloud.eventsSince(d.id, t1); len(evs) != 0 {
		res.fail("a 5 ms pulse (debounce %s) gave events: %+v", door.debounce, evs)
	}
	res.fig("edge → event at the broker's subscriber (debounce %s included): %s, %s", door.debounce, ms(lat[0]), ms(lat[1]))
}

func (d *device) checkInputToggle(res *result) {
	button := inputByName("button")
	relay := pinByName(button.toggles)
	st, err := d.vm.status()
	if err != nil {
		res.fail("%v", err)
		return
	}
	on := st.Relays[relay.name].On
	var lat []time.Duration
	for press := range 2 {
		t0 := time.Now()
		at, err := d.drive(button, true)
		if err != nil {
			res.fail("%v", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := d.drive(button, false); err != nil {
			res.fail("%v", err)
			return
		}
		on = !on
		if !d.waitChange(relay.offset, at, relay.level(on), 3*time.Second) {
			res.fail("press %d: %s's line %d did not go to %d", press+1, relay.name, relay.offset, relay.level(on))
			return
		}
		time.Sleep(settle)
		evs := onLine(d.vm.trace.All(), relay.offset, at, time.Time{})
		if err := straight(relay.level(!on), evs, relay.level(on)); err != nil {
			res.fail("press %d: %s line %d: %v", press+1, relay.name, relay.offset, err)
		} else {
			lat = append(lat, evs[0].At.Sub(at))
		}
		d.expectRelays(res, fmt.Sprintf("press %d", press+1), t0, time.Now(), relayWant{relay.name: on})
		if _, err := d.vm.waitStatus(3*time.Second, fmt.Sprintf("status relays.%s.on = %v", relay.name, on), func(st guestStatus) bool {
			return st.Relays[relay.name].On == on
		}); err != nil {
			res.fail("%v", err)
		}
	}
	var s []string
	for _, l := range lat {
		s = append(s, ms(l))
	}
	res.fig("edge → %s's line (QEMU's clock for both; debounce %s included): %s", relay.name, button.debounce, strings.Join(s, ", "))
}
