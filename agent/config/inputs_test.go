package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/relay"
)

// An [[input]] with only its name and pin, and a relay without the new
// keys, get the documented defaults.
func TestInputAndRelaySafetyDefaults(t *testing.T) {
	c := mustParse(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
		`[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
		`[[input]]`, `name = "door"`, `pin = "GPIO5"`))
	wantInputs := []Input{{Name: "door", Pin: "GPIO5", Pull: PullNone, ActiveLow: false, Debounce: 20 * time.Millisecond, Toggles: ""}}
	if !reflect.DeepEqual(c.Inputs, wantInputs) {
		t.Errorf("inputs = %+v\nwant     %+v", c.Inputs, wantInputs)
	}
	wantRelays := []Relay{{Name: "pump", Pin: "GPIO17", PowerOn: relay.PowerOnOff,
		Feedback: "", FeedbackTimeout: 500 * time.Millisecond, Offline: OfflineKeep, OfflineAfter: 5 * time.Minute}}
	if !reflect.DeepEqual(c.Relays, wantRelays) {
		t.Errorf("relays = %+v\nwant     %+v", c.Relays, wantRelays)
	}
	if c.MQTT.EventTopic != "/sys/gw/thing/event" {
		t.Errorf("event_topic = %q, want the default with gw", c.MQTT.EventTopic)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}

	// The constants are what the file would say.
	for name, d := range map[string]struct {
		s    string
		want time.Duration
	}{
		"DefaultDebounce":        {DefaultDebounce, 20 * time.Millisecond},
		"DefaultFeedbackTimeout": {DefaultFeedbackTimeout, 500 * time.Millisecond},
		"DefaultOfflineAfter":    {DefaultOfflineAfter, 5 * time.Minute},
	} {
		if got := mustDuration(d.s); got != d.want {
			t.Errorf("%s = %q = %v, want %v", name, d.s, got, d.want)
		}
	}
	if DefaultPull != PullNone || DefaultOffline != OfflineKeep || DefaultEventTopic != "/sys/{device_id}/thing/event" {
		t.Errorf("DefaultPull, DefaultOffline, DefaultEventTopic = %q, %q, %q", DefaultPull, DefaultOffline, DefaultEventTopic)
	}
}

func TestInputAndRelaySafetyValues(t *testing.T) {
	c := mustParse(t, lines(
		`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "sim"`,
		`[[relay]]`,
		`name = "gate"`,
		`pin = "GPIO17"`,
		`feedback = "gate_open"`,
		`feedback_timeout = "2s"`,
		`offline = "off"`,
		`offline_after = "90s"`,
		`[[relay]]`,
		`name = "light"`,
		`pin = "GPIO18"`,
		`offline = "keep"`,
		`[[input]]`,
		`name = "gate_open"`,
		`pin = "gpiochip0:5"`,
		`pull = "up"`,
		`active_low = true`,
		`debounce = "0s"`,
		`[[input]]`,
		`name = "button"`,
		`pin = "GPIO6"`,
		`pull = "down"`,
		`debounce = "10s"`,
		`toggles = "light"`,
		`[[input]]`,
		`name = "gate"`, // an input may share a relay's name: events tell them apart
		`pin = "GPIO7"`,
		`pull = "none"`,
	))
	wantRelays := []Relay{
		{Name: "gate", Pin: "GPIO17", PowerOn: relay.PowerOnOff, Feedback: "gate_open", FeedbackTimeout: 2 * time.Second,
			Offline: OfflineOff, OfflineAfter: 90 * time.Second},
		{Name: "light", Pin: "GPIO18", PowerOn: relay.PowerOnOff, FeedbackTimeout: 500 * time.Millisecond,
			Offline: OfflineKeep, OfflineAfter: 5 * time.Minute},
	}
	if !reflect.DeepEqual(c.Relays, wantRelays) {
		t.Errorf("relays = %+v\nwant     %+v", c.Relays, wantRelays)
	}
	wantInputs := []Input{
		{Name: "gate_open", Pin: "gpiochip0:5", Pull: PullUp, ActiveLow: true, Debounce: 0},
		{Name: "button", Pin: "GPIO6", Pull: PullDown, Debounce: 10 * time.Second, Toggles: "light"},
		{Name: "gate", Pin: "GPIO7", Pull: PullNone, Debounce: 20 * time.Millisecond},
	}
	if !reflect.DeepEqual(c.Inputs, wantInputs) {
		t.Errorf("inputs = %+v\nwant     %+v", c.Inputs, wantInputs)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}
}

// event_topic: {device_id} substituted, "" turns events off.
func TestEventTopic(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"", "/sys/gw/thing/event"},
		{`event_topic = ""`, ""},
		{`event_topic = "site/{device_id}/events/{device_id}"`, "site/gw/events/gw"},
		{`event_topic = "fixed/events"`, "fixed/events"},
	} {
		c := mustParse(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, tt.key))
		if c.MQTT.EventTopic != tt.want {
			t.Errorf("%s: event_topic = %q, want %q", tt.key, c.MQTT.EventTopic, tt.want)
		}
	}
}

// Keys that can have no effect are warned about when they say more than
// the default; written at the default (as the example does) they are not.
func TestRelaySafetyWarnings(t *testing.T) {
	head := []string{`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "a"`, `pin = "GPIO1"`}
	tests := []struct {
		name string
		keys []string // in the [[relay]], from line 7
		want []string
	}{
		{"feedback_timeout without feedback", []string{`feedback_timeout = "2s"`},
			[]string{"line 7: relay[0].feedback_timeout: is set but this relay has no feedback input, so it does nothing; set feedback = "}},
		{"offline_after with offline absent", []string{`offline_after = "1m"`},
			[]string{`line 7: relay[0].offline_after: is set but offline is "keep", so the relay is never switched off for being offline; set offline = "off"`}},
		{"offline_after with offline keep", []string{`offline = "keep"`, `offline_after = "1m"`},
			[]string{`line 8: relay[0].offline_after: is set but offline is "keep"`}},
		{"both, in line order", []string{`offline_after = "1h"`, `feedback_timeout = "1s"`},
			[]string{"line 7: relay[0].offline_after:", "line 8: relay[0].feedback_timeout:"}},
		{"defaults written out", []string{`feedback = ""`, `feedback_timeout = "500ms"`, `offline = "keep"`, `offline_after = "5m"`}, nil},
		{"offline off", []string{`offline = "off"`, `offline_after = "1m"`}, nil},
		{"with feedback", []string{`feedback = "in"`, `feedback_timeout = "2s"`, `[[input]]`, `name = "in"`, `pin = "GPIO2"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, lines(append(append([]string(nil), head...), tt.keys...)...))
			got := c.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("warning %d = %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// An input's pin is checked against the sim board like an output's; a real
// board's lines are for its backend to say at start.
func TestInputPinsCheckedOnlyOnTheSimBoard(t *testing.T) {
	doc := lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "periph"`,
		`[[input]]`, `name = "door"`, `pin = "GPIO40"`, `[[input]]`, `name = "button"`, `pin = "gpiochip0:53"`)
	if c := mustParse(t, doc); len(c.Inputs) != 2 {
		t.Fatalf("inputs = %+v", c.Inputs)
	}
	sim := strings.Replace(doc, `"periph"`, `"sim"`, 1)
	errs := parseErrs(t, sim)
	if len(errs) != 1 {
		t.Errorf("problems:\n%s\nwant only input[0].pin", errs.Error())
	}
	if p := problemFor(t, errs, "input[0].pin"); p.Line != 8 || !strings.Contains(p.Msg, `"GPIO40"`) {
		t.Errorf("problem %s, want line 8 naming GPIO40", p)
	}
}

// Inputs written as an inline array of tables are read and placed alike.
func TestInputsInlineForm(t *testing.T) {
	c := mustParse(t, lines(`device_id = "gw"`, `mqtt.broker = "tls://b"`,
		`relay = [ { name = "pump", pin = "GPIO17", offline = "off" } ]`,
		`input = [ { name = "door", pin = "GPIO5", debounce = "0s", toggles = "pump" } ]`))
	if len(c.Inputs) != 1 || c.Inputs[0].Debounce != 0 || c.Inputs[0].Toggles != "pump" || c.Relays[0].Offline != OfflineOff {
		t.Errorf("inputs = %+v, relays = %+v", c.Inputs, c.Relays)
	}
	errs := parseErrs(t, lines(`device_id = "gw"`, `mqtt.broker = "tls://b"`,
		`input = [ { name = "a", pin = "GPIO5" },`, `  { name = "b", pin = "GPIO6", debounce = "1m" } ]`))
	if p := problemFor(t, errs, "input[1].debounce"); p.Line != 4 {
		t.Errorf("line = %d, want 4", p.Line)
	}
}

// A duration key given a number is a type error naming the key, and the
// other checks still run.
func TestInputTypeErrors(t *testing.T) {
	errs := parseErrs(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
		`[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback_timeout = 500`,
		`[[input]]`, `name = "door"`, `pin = "GPIO5"`, `debounce = 20`, `toggles = "pumpp"`))
	for _, want := range []struct {
		key  string
		line int
	}{{"relay[0].feedback_timeout", 7}, {"input[0].debounce", 11}, {"input[0].toggles", 12}} {
		if p := problemFor(t, errs, want.key); p.Line != want.line {
			t.Errorf("%s: line %d, want %d", want.key, p.Line, want.line)
		}
	}
}
