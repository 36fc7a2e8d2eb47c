package led

import (
	"slices"
	"time"
)

// Step is one part of a pattern: the LED on or off for D.
type Step struct {
	On bool
	D  time.Duration
}

// Pattern is a sequence of steps that repeats. A single step with D == 0 is
// steady.
type Pattern struct {
	Name  string
	Steps []Step
	// Look is how it looks, in the words of the table in
	// docs/design.md#status-leds ("slow blink, 1 Hz"), for `edge-agent led
	// test`, the README and docs/technician-card.md.
	Look string
}

// The status states, as docs/design.md#status-leds names them.
const (
	StateOK         = "ok"
	StateBacklog    = "backlog"
	StateConnecting = "connecting"
	StateAuth       = "auth"
	StateBootstrap  = "bootstrap"
	StateStorage    = "storage"
	StateConfig     = "config"
)

// Timings shared by the patterns.
const (
	// FlashOn is how long the activity LED lights for a message.
	FlashOn = 50 * time.Millisecond
	// FlashGap is the least dark time between two activity flashes, so a
	// flood of messages blinks (10 Hz) instead of looking steadily on.
	FlashGap = 50 * time.Millisecond

	countOn  = 150 * time.Millisecond // a flash of the bootstrap/storage counts
	countOff = 250 * time.Millisecond // between two flashes of a count
	cycle    = 2 * time.Second        // backlog, bootstrap, storage repeat every 2 s
)

// byState lists the states most severe first, with their status patterns.
var byState = []Pattern{
	{Name: StateConfig, Look: "very fast blink, 10 Hz", Steps: blink(10)},
	{Name: StateStorage, Look: "3 flashes every 2 s", Steps: flashes(3)},
	{Name: StateAuth, Look: "fast blink, 4 Hz", Steps: blink(4)},
	{Name: StateBootstrap, Look: "2 flashes every 2 s", Steps: flashes(2)},
	{Name: StateConnecting, Look: "slow blink, 1 Hz", Steps: blink(1)},
	{Name: StateBacklog, Look: "on, one short dark gap every 2 s",
		Steps: []Step{{On: true, D: cycle - 200*time.Millisecond}, {On: false, D: 200 * time.Millisecond}}},
	{Name: StateOK, Look: "on", Steps: []Step{{On: true}}},
}

// identify is what every LED plays during Identify: 5 Hz, all together.
var identify = Pattern{Name: "identify", Look: "all LEDs blink together, 5 Hz", Steps: blink(5)}

// activityDemo is the activity LED's part of Play: one flash every 500 ms.
var activityDemo = Pattern{Name: "activity", Look: "activity LED: one 50 ms flash per message",
	Steps: []Step{{On: true, D: FlashOn}, {On: false, D: 500*time.Millisecond - FlashOn}}}

// blink is an even on/off blink at hz (hz divides one second).
func blink(hz int) []Step {
	half := time.Second / time.Duration(2*hz)
	return []Step{{On: true, D: half}, {On: false, D: half}}
}

// flashes is n short flashes, then dark for the rest of the 2 s cycle.
func flashes(n int) []Step {
	var s []Step
	for i := range n {
		s = append(s, Step{On: true, D: countOn})
		if i < n-1 {
			s = append(s, Step{On: false, D: countOff})
		}
	}
	used := time.Duration(n)*countOn + time.Duration(n-1)*countOff
	return append(s, Step{On: false, D: cycle - used})
}

// patternFor is the status LED's pattern for a state named as in
// docs/design.md#status-leds.
func patternFor(state string) (Pattern, bool) {
	i := stateIndex(state)
	if i < 0 {
		return Pattern{}, false
	}
	return byState[i].clone(), true
}

// identifyPattern is what all LEDs play during Identify.
func identifyPattern() Pattern { return identify.clone() }

// States lists the state names in order of severity, most severe first: when
// several hold, the first of them is the one to show.
func States() []string {
	s := make([]string, len(byState))
	for i, p := range byState {
		s[i] = p.Name
	}
	return s
}

// worst is the most severe of states (unknown names are ignored); "ok" when
// there is none.
func worst(states ...string) string {
	best := len(byState) - 1
	for _, s := range states {
		if i := stateIndex(s); i >= 0 && i < best {
			best = i
		}
	}
	return byState[best].Name
}

// FaultOn reports whether the fault LED is on in state: auth, storage and
// config.
func FaultOn(state string) bool {
	switch state {
	case StateAuth, StateStorage, StateConfig:
		return true
	}
	return false
}

func stateIndex(state string) int {
	for i, p := range byState {
		if p.Name == state {
			return i
		}
	}
	return -1
}

func (p Pattern) clone() Pattern {
	p.Steps = slices.Clone(p.Steps)
	return p
}

// steady reports whether p does not change over time.
func (p *Pattern) steady() bool {
	return len(p.Steps) <= 1 || p.period() <= 0
}

func (p *Pattern) period() time.Duration {
	var d time.Duration
	for _, s := range p.Steps {
		d += s.D
	}
	return d
}

// at is the level of p, started at start, at now, and when it next changes
// (zero if never). Computed from the clock, so a late wake-up does not shift
// the later steps.
func (p *Pattern) at(start, now time.Time) (on bool, next time.Time) {
	if len(p.Steps) == 0 {
		return false, time.Time{}
	}
	if p.steady() {
		return p.Steps[0].On, time.Time{}
	}
	el := now.Sub(start)
	if el < 0 {
		el = 0
	}
	pos := el % p.period()
	for _, s := range p.Steps {
		if pos < s.D {
			return s.On, now.Add(s.D - pos)
		}
		pos -= s.D
	}
	return p.Steps[0].On, now // unreachable: pos < period
}
