package led_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/hw/led/ledtest"
	"github.com/edge-agent/edge-agent/hw/sim"
)

const ms = time.Millisecond

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const (
	pinStatus   = "GPIO27"
	pinActivity = "GPIO22"
	pinFault    = "GPIO23"
)

// rig is a panel on the sim board, timed by a fake clock.
type rig struct {
	t     *testing.T
	clk   *ledtest.Clock
	board *sim.Sim
	leds  led.LEDs
	p     *led.Panel
}

func newRig(t *testing.T, activeLow bool) *rig {
	t.Helper()
	clk := ledtest.NewClock(t0)
	board := sim.New(clk.Now)
	r := &rig{t: t, clk: clk, board: board}
	open := func(pin string) *hw.Switch {
		sw, err := hw.OpenSwitch(board, pin, activeLow, false)
		if err != nil {
			t.Fatal(err)
		}
		return sw
	}
	r.leds = led.LEDs{Status: open(pinStatus), Activity: open(pinActivity), Fault: open(pinFault)}
	return r
}

func (r *rig) start() *rig {
	r.p = led.NewPanel(r.leds, r.clk)
	r.t.Cleanup(r.p.Close)
	r.p.Sync()
	return r
}

// advance moves the fake time on by d, stopping at every deadline the panel
// set so that it reacts at exactly that instant.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	target := r.clk.Now().Add(d)
	for {
		r.p.Sync()
		next, ok := r.clk.Next()
		if !ok || next.After(target) {
			break
		}
		r.clk.Set(next)
	}
	r.clk.Set(target)
	r.p.Sync()
}

// timeline of pin after its initial level, as "high@0s", relative to t0.
func (r *rig) timeline(pin string) []string {
	var out []string
	for _, tr := range r.board.Transitions() {
		if tr.Pin != pin || tr.Initial {
			continue
		}
		lvl := "low"
		if tr.High {
			lvl = "high"
		}
		out = append(out, fmt.Sprintf("%s@%v", lvl, tr.At.Sub(t0)))
	}
	return out
}

func (r *rig) level(pin string) bool { return r.board.Levels()[pin] }

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// blinkTimeline is high at start, then alternating every half, up to end.
func blinkTimeline(start, half, end time.Duration) []string {
	var out []string
	for at, on := start, true; at <= end; at, on = at+half, !on {
		lvl := "low"
		if on {
			lvl = "high"
		}
		out = append(out, fmt.Sprintf("%s@%v", lvl, at))
	}
	return out
}

func TestConnectingBlinks1Hz(t *testing.T) {
	r := newRig(t, false).start() // a new panel shows connecting
	r.advance(3 * time.Second)
	check(t, "status", r.timeline(pinStatus),
		[]string{"high@0s", "low@500ms", "high@1s", "low@1.5s", "high@2s", "low@2.5s", "high@3s"})
	check(t, "fault", r.timeline(pinFault), []string{"low@0s"})
	check(t, "activity", r.timeline(pinActivity), []string{"low@0s"})
}

func TestEveryStateTimeline(t *testing.T) {
	for _, c := range []struct {
		state string
		want  []string // status over the first 2 s after the state is set at 0
		fault bool
	}{
		{"ok", []string{"high@0s"}, false},
		{"backlog", []string{"high@0s", "low@1.8s", "high@2s"}, false},
		{"connecting", blinkTimeline(0, 500*ms, 2*time.Second), false},
		{"auth", blinkTimeline(0, 125*ms, 2*time.Second), true},
		{"bootstrap", []string{"high@0s", "low@150ms", "high@400ms", "low@550ms", "high@2s"}, false},
		{"storage", []string{"high@0s", "low@150ms", "high@400ms", "low@550ms", "high@800ms", "low@950ms", "high@2s"}, true},
		{"config", blinkTimeline(0, 50*ms, 2*time.Second), true},
	} {
		t.Run(c.state, func(t *testing.T) {
			r := newRig(t, false)
			r.p = led.NewPanel(r.leds, r.clk)
			r.p.SetState(c.state) // before any time passes: replaces connecting at 0
			defer r.p.Close()
			r.advance(2 * time.Second)
			check(t, "status", r.timeline(pinStatus), c.want)
			if got := r.level(pinFault); got != c.fault {
				t.Errorf("fault LED %t, want %t", got, c.fault)
			}
			wantFault := "off"
			if c.fault {
				wantFault = "on"
			}
			want := map[string]string{"status": c.state, "activity": "off", "fault": wantFault}
			if got := r.p.Patterns(); !maps.Equal(got, want) {
				t.Errorf("Patterns() = %v, want %v", got, want)
			}
		})
	}
}

func TestStateChangeMidPatternSwitchesAtOnce(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("storage")
	r.advance(300 * ms) // in the dark gap after the first flash
	r.p.SetState("auth")
	r.advance(300 * ms)
	r.p.SetState("auth") // the same state again: the blink goes on undisturbed
	r.advance(100 * ms)
	r.p.SetState("ok")
	r.advance(time.Second)
	check(t, "status", r.timeline(pinStatus), []string{
		"high@0s", "low@150ms", // storage's first flash
		"high@300ms", "low@425ms", "high@550ms", // auth from 300 ms
		"low@675ms",  // auth, not restarted by the repeated SetState at 600 ms
		"high@700ms", // ok
	})
	check(t, "fault", r.timeline(pinFault), []string{"low@0s", "high@0s", "low@700ms"})
}

func TestFaultLED(t *testing.T) {
	r := newRig(t, false).start()
	for _, s := range []string{"auth", "ok", "storage", "backlog", "config", "bootstrap", "connecting"} {
		r.p.SetState(s)
		r.advance(time.Second)
	}
	check(t, "fault", r.timeline(pinFault), []string{
		"low@0s",  // connecting at start
		"high@0s", // auth
		"low@1s",  // ok
		"high@2s", // storage
		"low@3s",  // backlog
		"high@4s", // config
		"low@5s",  // bootstrap
	})
}

// SetFault lights the fault LED in a state that leaves it dark, and the
// status LED keeps telling the state; clearing it gives the LED back to the
// state.
func TestSetFaultLightsFaultLED(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	r.advance(time.Second)
	r.p.SetFault(true)
	r.advance(time.Second)
	if got := r.p.Show("ok")[led.NameFault]; got != led.ShowOn {
		t.Errorf("Show(ok) fault = %q with SetFault(true), want on", got)
	}
	r.p.SetState("storage") // on anyway
	r.advance(time.Second)
	r.p.SetState("ok")
	r.advance(time.Second)
	r.p.SetFault(false)
	r.advance(time.Second)
	check(t, "fault", r.timeline(pinFault), []string{"low@0s", "high@1s", "low@4s"})
	// The status LED stayed on (ok) through the fault, until storage.
	check(t, "status", r.timeline(pinStatus)[:2], []string{"high@0s", "low@2.15s"})
}

func TestActivityFlash(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	r.advance(time.Second)
	r.p.Flash()
	r.advance(time.Second)
	check(t, "activity", r.timeline(pinActivity), []string{"low@0s", "high@1s", "low@1.05s"})
}

func TestActivityBurstCoalesces(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	for range 10000 { // a burst at one instant: one flash
		r.p.Flash()
	}
	r.advance(20 * ms)
	r.p.Flash() // while lit: absorbed
	r.advance(50 * ms)
	r.p.Flash() // at 70 ms, in the dark gap: the next flash, when the gap ends
	r.advance(time.Second)
	check(t, "activity", r.timeline(pinActivity),
		[]string{"low@0s", "high@0s", "low@50ms", "high@100ms", "low@150ms"})
}

// A steady flood (a message every millisecond) blinks at 10 Hz, 50 ms lit,
// 50 ms dark: never stuck on.
func TestActivityFloodBlinks(t *testing.T) {
	r := newRig(t, false).start()
	for range 400 {
		for range 25 {
			r.p.Flash()
		}
		r.advance(ms)
	}
	want := []string{"low@0s"}
	for at := time.Duration(0); at < 400*ms; at += 100 * ms {
		want = append(want, fmt.Sprintf("high@%v", at), fmt.Sprintf("low@%v", at+50*ms))
	}
	want = append(want, "high@400ms") // the message at 399 ms, after the gap
	check(t, "activity", r.timeline(pinActivity), want)
}

func TestFlashDoesNotAllocate(t *testing.T) {
	r := newRig(t, false).start()
	if n := testing.AllocsPerRun(10000, r.p.Flash); n != 0 {
		t.Errorf("Flash allocates %v times per call", n)
	}
}

func TestIdentifyOverridesThenReturns(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("auth") // fault on
	r.p.Flash()
	r.advance(700 * ms)
	r.p.Identify(time.Second)
	r.p.Sync()
	want := map[string]string{"status": "identify", "activity": "identify", "fault": "identify"}
	if got := r.p.Patterns(); !maps.Equal(got, want) {
		t.Errorf("Patterns() during identify = %v, want %v", got, want)
	}
	r.p.Flash() // absorbed by identify
	r.advance(2 * time.Second)

	// auth at 125 ms halves until 700 ms, 5 Hz together until 1.7 s, auth again.
	check(t, "status", r.timeline(pinStatus), []string{
		"high@0s", "low@125ms", "high@250ms", "low@375ms", "high@500ms", "low@625ms",
		"high@700ms", "low@800ms", "high@900ms", "low@1s", "high@1.1s", "low@1.2s",
		"high@1.3s", "low@1.4s", "high@1.5s", "low@1.6s",
		"high@1.7s", "low@1.825s", "high@1.95s", "low@2.075s", "high@2.2s", "low@2.325s", "high@2.45s", "low@2.575s", "high@2.7s",
	})
	check(t, "activity", r.timeline(pinActivity), []string{
		"low@0s", "high@0s", "low@50ms",
		"high@700ms", "low@800ms", "high@900ms", "low@1s", "high@1.1s", "low@1.2s",
		"high@1.3s", "low@1.4s", "high@1.5s", "low@1.6s",
	})
	check(t, "fault", r.timeline(pinFault), []string{
		"low@0s", "high@0s",
		"low@800ms", "high@900ms", "low@1s", "high@1.1s", "low@1.2s",
		"high@1.3s", "low@1.4s", "high@1.5s", "low@1.6s",
		"high@1.7s",
	})
	want = map[string]string{"status": "auth", "activity": "off", "fault": "on"}
	if got := r.p.Patterns(); !maps.Equal(got, want) {
		t.Errorf("Patterns() after identify = %v, want %v", got, want)
	}
}

func TestIdentifyCancel(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	r.p.Identify(30 * time.Second)
	r.advance(250 * ms)
	r.p.Identify(0)
	r.advance(time.Second)
	check(t, "status", r.timeline(pinStatus),
		[]string{"high@0s", "low@100ms", "high@200ms"}) // on at 200 ms, stays on as ok
	if got := r.p.Patterns()["status"]; got != "ok" {
		t.Errorf("status shows %q after cancel, want ok", got)
	}
}

func TestCloseLeavesAllOff(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("activeLow=%t", activeLow), func(t *testing.T) {
			r := newRig(t, activeLow).start()
			r.p.SetState("storage")
			r.p.Flash()
			r.advance(20 * ms) // status and fault and activity lit
			r.p.Close()
			r.p.Close() // safe twice
			off := hw.Level(false, activeLow)
			for _, pin := range []string{pinStatus, pinActivity, pinFault} {
				if got := r.level(pin); got != off {
					t.Errorf("%s is %t after Close, want %t (off)", pin, got, off)
				}
			}
			want := map[string]string{"status": "off", "activity": "off", "fault": "off"}
			if got := r.p.Patterns(); !maps.Equal(got, want) {
				t.Errorf("Patterns() after Close = %v, want %v", got, want)
			}
			n := len(r.board.Transitions())
			r.p.SetState("config") // after Close: nothing happens, nothing blocks
			r.p.Flash()
			r.p.Identify(time.Second)
			r.clk.Advance(time.Second)
			if got := len(r.board.Transitions()); got != n {
				t.Errorf("LEDs driven after Close: %v", r.board.Transitions()[n:])
			}
		})
	}
}

func TestCloseConcurrent(t *testing.T) {
	r := newRig(t, false).start()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(r.p.Close)
	}
	wg.Wait()
}

func TestAbsentLEDs(t *testing.T) {
	clk := ledtest.NewClock(t0)
	board := sim.New(clk.Now)
	sw, err := hw.OpenSwitch(board, pinStatus, false, false)
	if err != nil {
		t.Fatal(err)
	}
	p := led.NewPanel(led.LEDs{Status: sw}, clk)
	defer p.Close()
	p.Flash()
	p.Identify(time.Second)
	p.Sync()
	if got, want := p.Patterns(), map[string]string{"status": "identify"}; !maps.Equal(got, want) {
		t.Errorf("Patterns() = %v, want %v", got, want)
	}
	none := led.NewPanel(led.LEDs{}, clk)
	none.SetState("config")
	none.Flash()
	none.Close()
	if got := none.Patterns(); len(got) != 0 {
		t.Errorf("Patterns() with no LEDs = %v", got)
	}
}

func TestUnknownStateIsReported(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	r.p.SetState("bogus")
	r.p.Sync()
	if got := r.p.Patterns()["status"]; got != "ok" {
		t.Errorf("status shows %q, want ok", got)
	}
	if err := r.p.Err(); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("Err() = %v, want the unknown state named", err)
	}
}

// failing is an Output whose writes fail.
type failing struct{}

func (failing) Set(bool) error { return errors.New("i/o error") }
func (failing) Pin() string    { return "GPIO9" }

func TestWriteErrorIsReported(t *testing.T) {
	clk := ledtest.NewClock(t0)
	p := led.NewPanel(led.LEDs{Fault: hw.NewSwitch(failing{}, false)}, clk)
	defer p.Close()
	p.Sync()
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "fault") || !strings.Contains(err.Error(), "i/o error") {
		t.Errorf("Err() = %v, want the fault LED's write error", err)
	}
}

// With the real clock: a short smoke test that the goroutine runs on time
// and stops (loose bounds: this also runs under qemu).
func TestRealClock(t *testing.T) {
	board := sim.New(nil)
	sw, err := hw.OpenSwitch(board, pinStatus, false, false)
	if err != nil {
		t.Fatal(err)
	}
	p := led.NewPanel(led.LEDs{Status: sw}, nil)
	p.SetState("config") // 10 Hz
	time.Sleep(300 * ms)
	p.Close()
	n := len(board.Transitions())
	if n < 3 {
		t.Errorf("%d transitions in 300 ms of config, want several", n)
	}
	if board.Levels()[pinStatus] {
		t.Error("status LED on after Close")
	}
}

func BenchmarkFlash(b *testing.B) {
	board := sim.New(nil)
	sw, err := hw.OpenSwitch(board, pinActivity, false, false)
	if err != nil {
		b.Fatal(err)
	}
	p := led.NewPanel(led.LEDs{Activity: sw}, nil)
	defer p.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Flash()
		}
	})
}
