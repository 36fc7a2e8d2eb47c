package relay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// pinLine drives one of periph's fake pins, recording every level it is
// driven to (the first entry is the level the line was opened at).
type pinLine struct {
	p      *gpiotest.Pin
	levels *[]gpio.Level
}

func (l pinLine) Set(high bool) error {
	*l.levels = append(*l.levels, gpio.Level(high))
	return l.p.Out(gpio.Level(high))
}

type fakeBoard struct {
	pins   map[string]*gpiotest.Pin
	levels map[string]*[]gpio.Level
}

func newBoard() *fakeBoard {
	return &fakeBoard{pins: map[string]*gpiotest.Pin{}, levels: map[string]*[]gpio.Level{}}
}

func (b *fakeBoard) open(pin string, high bool) (Line, error) {
	if pin == "missing" {
		return nil, errors.New("no such GPIO pin \"missing\"")
	}
	p := &gpiotest.Pin{N: pin}
	if err := p.Out(gpio.Level(high)); err != nil {
		return nil, err
	}
	lv := []gpio.Level{gpio.Level(high)}
	b.pins[pin], b.levels[pin] = p, &lv
	return pinLine{p: p, levels: &lv}, nil
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestBootStates(t *testing.T) {
	cfgs := []Config{
		{Name: "off", PowerOn: PowerOnOff},
		{Name: "on", PowerOn: PowerOnOn, MaxOn: time.Minute},
		{Name: "restore-on", PowerOn: PowerOnRestore},
		{Name: "restore-expired", PowerOn: PowerOnRestore},
		{Name: "restore-running", PowerOn: PowerOnRestore},
		{Name: "restore-new", PowerOn: PowerOnRestore},
	}
	saved := map[string]State{
		"off":             {On: true, Since: t0.Add(-time.Hour)},
		"restore-on":      {On: true, Since: t0.Add(-time.Hour)},
		"restore-expired": {On: true, Since: t0.Add(-time.Hour), Deadline: t0.Add(-time.Second)},
		"restore-running": {On: true, Since: t0.Add(-time.Hour), Deadline: t0.Add(time.Minute)},
	}
	got := BootStates(cfgs, saved, t0)
	for name, want := range map[string]State{
		"off":             {On: false, Since: t0},
		"on":              {On: true, Since: t0, Deadline: t0.Add(time.Minute)},
		"restore-on":      {On: true, Since: t0.Add(-time.Hour)},
		"restore-expired": {On: false, Since: t0},
		"restore-running": {On: true, Since: t0.Add(-time.Hour), Deadline: t0.Add(time.Minute)},
		"restore-new":     {On: false, Since: t0},
	} {
		if got[name] != want {
			t.Errorf("%s: got %+v, want %+v", name, got[name], want)
		}
	}
}

func TestOpenDrivesBootLevelInOneCall(t *testing.T) {
	b := newBoard()
	cfgs := []Config{{Name: "a", Pin: "P1"}, {Name: "b", Pin: "P2", ActiveLow: true}, {Name: "c", Pin: "P3", ActiveLow: true, PowerOn: PowerOnOn}}
	if _, err := Open(cfgs, b.open, BootStates(cfgs, nil, t0)); err != nil {
		t.Fatal(err)
	}
	for pin, want := range map[string]gpio.Level{"P1": gpio.Low, "P2": gpio.High, "P3": gpio.Low} {
		if lv := *b.levels[pin]; len(lv) != 1 || lv[0] != want {
			t.Errorf("%s driven %v at open, want exactly [%v]", pin, lv, want)
		}
	}
	if _, err := Open([]Config{{Name: "x", Pin: "missing"}}, b.open, nil); err == nil || !strings.Contains(err.Error(), `relay "x"`) {
		t.Fatalf("missing pin: %v", err)
	}
}

func TestPlanAndDrive(t *testing.T) {
	b := newBoard()
	cfgs := []Config{
		{Name: "pump", Pin: "P1", MaxOn: 10 * time.Minute, Interlock: "water"},
		{Name: "drain", Pin: "P2", ActiveLow: true, Interlock: "water"},
		{Name: "lamp", Pin: "P3"},
	}
	bank, err := Open(cfgs, b.open, BootStates(cfgs, nil, t0))
	if err != nil {
		t.Fatal(err)
	}
	// for is capped by max_on.
	st, err := bank.Plan("pump", true, time.Hour, t0)
	if err != nil || !st.On || !st.Deadline.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("plan pump on for 1h: %+v %v; want deadline at max_on", st, err)
	}
	if s, _ := bank.State("pump"); s.On {
		t.Fatal("Plan changed the state")
	}
	if err := bank.Drive("pump", st); err != nil {
		t.Fatal(err)
	}
	if b.pins["P1"].L != gpio.High {
		t.Fatal("pump line not high")
	}
	// The interlock refuses drain while pump is on.
	if _, err := bank.Plan("drain", true, 0, t0); !errors.Is(err, ErrInterlocked) {
		t.Fatalf("drain while pump on: %v, want ErrInterlocked", err)
	}
	// Off is always allowed; then drain may go on (active low: line low).
	off, _ := bank.Plan("pump", false, 0, t0.Add(time.Second))
	bank.Drive("pump", off)
	st, err = bank.Plan("drain", true, 0, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	bank.Drive("drain", st)
	if b.pins["P2"].L != gpio.Low {
		t.Fatal("active-low drain on: line not low")
	}
	if _, err := bank.Plan("nope", true, 0, t0); !errors.Is(err, ErrUnknownRelay) {
		t.Fatalf("unknown relay: %v", err)
	}
	if name, at, ok := bank.NextDeadline(); ok {
		t.Fatalf("deadline %s %v after pump went off", name, at)
	}
	st, _ = bank.Plan("lamp", true, time.Minute, t0)
	bank.Drive("lamp", st)
	if name, at, ok := bank.NextDeadline(); !ok || name != "lamp" || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next deadline %s %v %v", name, at, ok)
	}
}
