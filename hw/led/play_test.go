package led_test

import (
	"slices"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/led"
)

func TestPlay(t *testing.T) {
	r := newRig(t, false) // no panel: Play drives the LEDs itself
	var announced []string
	var at []time.Duration
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = led.Play(r.leds, r.clk, 2*time.Second, func(s string) {
			announced = append(announced, s)
			at = append(at, r.clk.Now().Sub(t0))
		})
	}()
	r.clk.Drive(done)
	<-done
	if err != nil {
		t.Fatal(err)
	}

	want := []string{"ok", "backlog", "connecting", "auth", "bootstrap", "storage", "config", "activity", "identify"}
	if !slices.Equal(announced, want) || !slices.Equal(want, led.PlayOrder()) {
		t.Fatalf("announced %v, PlayOrder %v, want %v", announced, led.PlayOrder(), want)
	}
	for i, a := range at {
		if a != time.Duration(i)*2*time.Second {
			t.Errorf("%s announced at %v, want %v", announced[i], a, time.Duration(i)*2*time.Second)
		}
	}

	status := r.timeline(pinStatus)
	// ok (0-2 s) steady, backlog (2-4 s) with its gap at 3.8 s, connecting
	// from 4 s at 1 Hz.
	check(t, "status, first states", status[:6],
		[]string{"high@0s", "low@3.8s", "high@4s", "low@4.5s", "high@5s", "low@5.5s"})
	// storage (10-12 s): three flashes.
	var storage []string
	for _, s := range status {
		if d, _ := time.ParseDuration(s[len("high@"):]); s[0] == 'h' && d >= 10*time.Second && d < 12*time.Second {
			storage = append(storage, s)
		}
	}
	check(t, "status, storage flashes", storage, []string{"high@10s", "high@10.4s", "high@10.8s"})
	// fault: on for auth (6 s), off for bootstrap (8 s), on for storage and
	// config (10-14 s), off for activity (14 s), blinking for identify (16 s).
	fault := r.timeline(pinFault)
	check(t, "fault, before identify", fault[:6],
		[]string{"low@0s", "high@6s", "low@8s", "high@10s", "low@14s", "high@16s"})
	// activity: dark until its own turn, then 50 ms every 500 ms.
	act := r.timeline(pinActivity)
	check(t, "activity, its turn", act[:5],
		[]string{"low@0s", "high@14s", "low@14.05s", "high@14.5s", "low@14.55s"})
	// Everything off at the end (18 s).
	for _, pin := range []string{pinStatus, pinActivity, pinFault} {
		if r.level(pin) {
			t.Errorf("%s on after Play", pin)
		}
	}
	if got := r.clk.Now().Sub(t0); got != 18*time.Second {
		t.Errorf("Play took %v of fake time, want 18s", got)
	}
}

func TestLook(t *testing.T) {
	for _, name := range led.PlayOrder() {
		if led.Look(name) == "" {
			t.Errorf("Look(%q) is empty", name)
		}
	}
	if got := led.Look("connecting"); got != "slow blink, 1 Hz" {
		t.Errorf(`Look("connecting") = %q`, got)
	}
	if got := led.Look("nonsense"); got != "" {
		t.Errorf(`Look("nonsense") = %q, want ""`, got)
	}
}

// Panel.Play borrows the panel's LEDs, then the panel shows its state again.
func TestPanelPlay(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok") // steady: the panel has no timer of its own
	r.p.Sync()
	var announced []string
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = r.p.Play(time.Second, func(s string) {
			announced = append(announced, s)
			if s == "auth" {
				if got := r.p.Patterns()["status"]; got != "test" {
					t.Errorf("status shows %q during the test, want test", got)
				}
				// Show does not wait for the lent goroutine (a status
				// request during led test answers), and reports the test.
				if got := r.p.Show("storage")["status"]; got != "test" {
					t.Errorf("Show during the test says status %q, want test", got)
				}
				if err := r.p.Play(time.Second, nil); err != led.ErrBusy {
					t.Errorf("a second Play: %v, want ErrBusy", err)
				}
				r.p.SetState("backlog") // shows after the test
			}
		})
	}()
	// The test lasts 9 s; the panel's own pattern resumes after it.
	r.clk.DriveUntil(done, t0.Add(9*time.Second))
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(announced, led.PlayOrder()) {
		t.Errorf("announced %v, want %v", announced, led.PlayOrder())
	}
	r.p.Sync()
	end := 9 * time.Second
	status := r.timeline(pinStatus)
	// The test ends all off at 9 s; then the panel shows backlog from there.
	check(t, "status after the test", status[len(status)-2:], []string{"low@9s", "high@9s"})
	if got := r.clk.Now().Sub(t0); got != end {
		t.Errorf("test took %v, want %v", got, end)
	}
	r.advance(2 * time.Second)
	status = r.timeline(pinStatus)
	check(t, "backlog after the test", status[len(status)-3:], []string{"high@9s", "low@10.8s", "high@11s"})
	if got := r.p.Patterns()["status"]; got != "backlog" {
		t.Errorf("status shows %q after the test, want backlog", got)
	}
	// Show reports the state it was given at once, fault LED included,
	// before the goroutine's next step.
	if got := r.p.Show("storage"); got["status"] != "storage" || got["fault"] != "on" {
		t.Errorf("Show(storage) = %v, want status storage, fault on", got)
	}
}

func TestPanelPlayCutShortByClose(t *testing.T) {
	r := newRig(t, false).start()
	r.p.SetState("ok")
	r.p.Sync()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.p.Play(time.Hour, nil)
	}()
	r.clk.WaitForTimer(done) // playing "ok" for an hour
	r.p.Close()
	<-done
	for _, pin := range []string{pinStatus, pinActivity, pinFault} {
		if r.level(pin) {
			t.Errorf("%s on after Close", pin)
		}
	}
	if err := r.p.Play(time.Second, nil); err != led.ErrClosed {
		t.Errorf("Play after Close: %v, want ErrClosed", err)
	}
}
