package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// Tolerances, from measurements of this rig on a 2-core x86-64 under TCG
// (docs/testing.md#make-hil); each has several times the spread seen.
const (
	// settle is how long after a command's reply the trace is read: QEMU
	// writes a trace line before the guest's write returns, so before the
	// reply leaves the guest; this only lets our reader goroutine catch up.
	settle = 150 * time.Millisecond
	// forDur is the `for` of the timed relay check; forTol how far the
	// traced on-time may be from it. The agent starts the deadline before
	// its store commit and drives the line after it; the off is a timer,
	// a commit and a write.
	forDur = 1500 * time.Millisecond
	forTol = 100 * time.Millisecond
	// flashTol: the activity LED's 50 ms flash per message (seen: 50.3 to
	// 51.7 ms idle, up to 57 ms with both host cores busy).
	flashTol = 30 * time.Millisecond
	// blinkTol: how late (half that early) a change of a blinking LED
	// (identify 100 ms, connecting 500 ms half-periods) may come against
	// the pattern's grid, fitted through the median change (see blink;
	// one stall is tolerated and reported). The panel computes every
	// change from the pattern's start, so late wake-ups do not add up.
	// Seen: all changes within 1 to 8 ms of each other idle or with one
	// host core busy, 29 ms with both busy, and one 420 ms stall (4
	// changes missed) while another benchmark loaded both cores. 40 ms
	// still fails a 4 Hz, 2.5 Hz or 10 Hz blink where 5 Hz is due, and one
	// 2.5% slow over identify's 2 s.
	blinkTol = 40 * time.Millisecond
	// maxSkew: LEDs that blink together (identify) change within this of
	// each other: the panel writes them one after the other (seen: 0.5 to
	// 4.4 ms, 13 ms with both host cores busy).
	maxSkew = 25 * time.Millisecond
	// identifyFor is the led.identify duration checked.
	identifyFor = 2 * time.Second
	// outage is how long the broker is down for the connecting pattern.
	outage = 3500 * time.Millisecond
)

// check is one named check of one boot sequence.
type check struct {
	name string
	what string
	run  func(d *device, res *result)
}

var (
	chkBoot = check{"boot", "relay lines go straight to their power_on level at boot (no glitch); LEDs and kernel agree", (*device).checkBoot}
	chkSet  = check{"relay.set", "relay.set on/off drives the right line to the right level (active high and active low)", (*device).checkSet}
	chkTog  = check{"relay.toggle", "relay.toggle flips the line, twice", (*device).checkToggle}
	chkFor  = check{"relay.set for", "relay on for 1.5 s then off by itself, timed on the line", (*device).checkFor}
	chkAct  = check{"activity LED", "a notification flashes the activity LED for 50 ms", (*device).checkActivity}
	chkIdf  = check{"led.identify", "all LEDs blink together at 5 Hz for the requested time, then the state again", (*device).checkIdentify}
	chkConn = check{"connecting LED", "broker down: status LED blinks at 1 Hz, fault LED dark, relays untouched", (*device).checkConnecting}
	chkKill = check{"restart (SIGKILL)", "agent killed and restarted in the running VM: held lines never move", func(d *device, r *result) { d.checkRestart(r, "kill") }}
	chkTerm = check{"restart (SIGTERM)", "agent stopped cleanly and restarted: relays keep their lines, no glitch", func(d *device, r *result) { d.checkRestart(r, "term") }}
	chkCut  = check{"power cut", "QEMU SIGKILLed, booted again on the same disk: restore relays come back straight", (*device).checkPowerCut}
	chkIn   = check{"input (kernel)", "a PL061 line driven from outside QEMU (qtest): hw/periph's input gets each edge from the kernel in order; Close ends it", (*device).checkProbe}
)

// plans are the checks per agent binary. Both run every check: the whole
// set takes about 25 s per binary. armv6 is 32-bit ARM on the 64-bit
// kernel (as 32-bit Pi OS runs on a Pi 3 or 4), so its GPIO ioctls go
// through the kernel's compat path.
var plans = map[string][]check{
	"arm64": allChecks,
	"armv6": allChecks,
}

var allChecks = []check{chkBoot, chkSet, chkTog, chkFor, chkAct, chkIdf, chkConn, chkTerm, chkKill, chkCut, chkIn}

// plan is arch's checks, with the agent's input checks at the end when
// the rig was asked for them (-inputs).
func (r *rig) plan(arch string) []check {
	p := plans[arch]
	if r.opts.inputs {
		p = append(slices.Clip(p), inputChecks...)
	}
	return p
}

// result is what one check found.
type result struct {
	arch, name string
	took       time.Duration
	errs       []string
	figs       []string
	fatal      bool // the VM is gone or unusable: skip the rest of this arch
}

func (r *result) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *result) fig(format string, args ...any) {
	r.figs = append(r.figs, fmt.Sprintf(format, args...))
}

// device is one agent binary on one data disk, across its boots.
type device struct {
	r      *rig
	arch   string
	id     string // device_id
	disk   string
	vm     *vm
	boots  int
	cmdSeq int

	bootTimes []time.Duration // QEMU start → agent connected, per boot

	config string      // the guest's agent config for the next boots ("" default, "inputs")
	idle   map[int]int // input lines' resting levels, set at QEMU's start
}

// boot starts the VM on the device's disk and waits until the agent is
// connected; it returns the time that took.
func (d *device) boot() (time.Duration, error) {
	d.boots++
	v, err := startVM(vmConfig{
		qemu: d.r.qemu, arch: d.arch, kernel: d.r.guest.vmlinuz(), initrd: d.r.initrd, disk: d.disk,
		dir: d.r.dir, name: fmt.Sprintf("%s-boot%d", d.arch, d.boots), smp: d.r.opts.smp,
		config: d.config, idle: d.idle,
	})
	if err != nil {
		return 0, err
	}
	d.vm = v
	if _, err := v.waitStatus(60*time.Second, "connected agent", func(s guestStatus) bool { return s.Connected && s.State == "ok" }); err != nil {
		return 0, err
	}
	took := time.Since(v.started)
	d.bootTimes = append(d.bootTimes, took)
	d.r.logf("%s boot %d: agent connected %s after QEMU started", d.arch, d.boots, ms(took))
	return took, nil
}

func (d *device) nextID() string {
	d.cmdSeq++
	return fmt.Sprintf("hil-%s-%d-%d", d.arch, d.boots, d.cmdSeq)
}

// command sends one command and waits for its reply; t0 is just before
// the publish, t1 just after the reply came.
func (d *device) command(method string, params map[string]any) (rep testcloud.Reply, t0, t1 time.Time, err error) {
	t0 = time.Now()
	rep, err = d.r.cloud.command(d.id, d.nextID(), method, params, 15*time.Second)
	if err == nil && !rep.OK {
		code, msg := "", ""
		if rep.Error != nil {
			code, msg = rep.Error.Code, rep.Error.Message
		}
		err = fmt.Errorf("%s %v: refused: %s %s", method, params, code, msg)
	}
	return rep, t0, time.Now(), err
}

// waitChange waits up to d for the trace reader to have seen line at
// level since t0 (QEMU wrote it before the guest replied; on a busy host
// our reader may lag). It reports whether it did.
func (d *device) waitChange(line int, t0 time.Time, level int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		for _, e := range onLine(d.vm.trace.All(), line, t0, time.Time{}) {
			if e.Level == level {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// relayWant is what a relay's line must show in a window: its level for
// the relay's logical state.
type relayWant map[string]bool

// expectRelays checks every relay line in [t0, t1] but those in except:
// the relays in want go straight to their level, the others do not move.
func (d *device) expectRelays(res *result, label string, t0, t1 time.Time, want relayWant, except ...string) {
	evs := d.vm.trace.All()
	for _, p := range relays() {
		if slices.Contains(except, p.name) {
			continue
		}
		before, ok := levelAt(evs, p.offset, t0)
		if !ok {
			res.fail("%s: no level known for line %d (%s) before it", label, p.offset, p.name)
			continue
		}
		w := before
		if on, ok := want[p.name]; ok {
			w = p.level(on)
		}
		if err := straight(before, onLine(evs, p.offset, t0, t1), w); err != nil {
			res.fail("%s: relay %s, PL061 line %d (%s): %v", label, p.name, p.offset, p.wiring(), err)
		}
	}
}

// expectStatus checks the agent's own view from inside the guest.
func (d *device) expectStatus(res *result, label string, want relayWant) (guestStatus, bool) {
	st, err := d.vm.status()
	if err != nil {
		res.fail("%s: status from inside: %v", label, err)
		return st, false
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, ok := st.Relays[n]
		if !ok {
			res.fail("%s: status from inside has no relay %s", label, n)
		} else if r.On != want[n] {
			res.fail("%s: status from inside says %s on=%v, want %v", label, n, r.On, want[n])
		}
	}
	return st, true
}

// runDevice boots a fresh disk with the arch's agent and runs its plan.
func (r *rig) runDevice(arch string) ([]*result, *device) {
	d := &device{r: r, arch: arch, id: "hil-" + arch, disk: filepath.Join(r.dir, arch+"-data.img")}
	var results []*result
	add := func(name string) *result {
		res := &result{arch: arch, name: name}
		results = append(results, res)
		return res
	}
	if err := newDisk(d.disk); err != nil {
		add("boot").fail("data disk: %v", err)
		return results, d
	}
	r.logf("%s: booting (fresh data disk)", arch)
	if _, err := d.boot(); err != nil {
		res := add("boot")
		res.fail("%v", err)
		if d.vm != nil {
			d.vm.kill()
		}
		return results, d
	}
	defer func() { d.vm.kill() }()
	for _, c := range r.plan(arch) {
		res := add(c.name)
		t0 := time.Now()
		c.run(d, res)
		res.took = time.Since(t0)
		status := "ok"
		if len(res.errs) > 0 {
			status = "FAIL"
		}
		r.logf("%s %-18s %s (%s)", arch, c.name, status, ms(res.took))
		for _, e := range res.errs {
			fmt.Fprintf(os.Stderr, "    FAIL: %s\n", e)
		}
		if res.fatal {
			break
		}
	}
	return results, d
}
