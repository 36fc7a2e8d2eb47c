package rules

import (
	"strings"
	"testing"
	"time"
)

var preset = []Spec{
	{Name: "pump", Topic: "/sys/{device_id}/thing/service/property/set", Match: map[string]any{"method": "thing.service.property.set"},
		Action: ActionRelaySet, Relay: "pump", On: "params.PowerSwitch", For: "params.Duration"},
	{Name: "lamp", Topic: "/sys/{device_id}/thing/service/property/set", Match: map[string]any{"method": "thing.service.property.set"},
		Action: ActionRelaySet, Relay: "lamp", On: "params.LightSwitch"},
	{Name: "find-me", Topic: "/sys/{device_id}/thing/service/identify", Action: ActionLEDIdentify, For: "params.seconds", Reply: ReplyAgent},
}

func mustCompile(t *testing.T, specs []Spec) *Set {
	t.Helper()
	s, err := Compile(specs, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatch(t *testing.T) {
	s := mustCompile(t, preset)
	const set = "/sys/gw1/thing/service/property/set"
	tests := []struct {
		name, topic, payload string
		want                 []Outcome // Rule compared by name
		near                 []string
	}{
		{"one property, number 1", set, `{"id":"123","version":"1.0","method":"thing.service.property.set","params":{"PowerSwitch":1}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", On: true, ID: "123"}}}, []string{"lamp"}},
		{"two properties drive two relays", set, `{"id":"7","method":"thing.service.property.set","params":{"PowerSwitch":"off","LightSwitch":true}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", On: false, ID: "7"}},
				{Action: Action{Method: ActionRelaySet, Relay: "lamp", On: true, ID: "7"}}}, nil},
		{"for in seconds", set, `{"id":"8","method":"thing.service.property.set","params":{"PowerSwitch":"1","Duration":90}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", On: true, For: 90 * time.Second, ID: "8"}}}, []string{"lamp"}},
		{"numeric id", set, `{"id":42,"method":"thing.service.property.set","params":{"PowerSwitch":0}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", ID: "42"}}}, []string{"lamp"}},
		{"neither on nor off", set, `{"id":"9","method":"thing.service.property.set","params":{"PowerSwitch":2}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", ID: "9"}, Code: CodeBadParams}}, []string{"lamp"}},
		{"bad duration", set, `{"id":"10","method":"thing.service.property.set","params":{"PowerSwitch":1,"Duration":"soon"}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", On: true, ID: "10"}, Code: CodeBadParams}}, []string{"lamp"}},
		{"no id", set, `{"method":"thing.service.property.set","params":{"PowerSwitch":1}}`,
			[]Outcome{{Action: Action{Method: ActionRelaySet, Relay: "pump", On: true}, Code: CodeBadRequest}}, []string{"lamp"}},
		{"match fails", set, `{"id":"1","method":"thing.event.post","params":{"PowerSwitch":1}}`, nil, []string{"pump", "lamp"}},
		{"not JSON", set, `PowerSwitch=1`, nil, []string{"pump", "lamp"}},
		{"another device", "/sys/gw2/thing/service/property/set", `{"id":"1","method":"thing.service.property.set","params":{"PowerSwitch":1}}`, nil, nil},
		{"identify", "/sys/gw1/thing/service/identify", `{"id":"i","params":{"seconds":"20s"}}`,
			[]Outcome{{Action: Action{Method: ActionLEDIdentify, For: 20 * time.Second, ID: "i"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Match(tt.topic, []byte(tt.payload))
			if len(got.Matched) != len(tt.want) {
				t.Fatalf("matched %+v, want %+v", got.Matched, tt.want)
			}
			for i, w := range tt.want {
				g := got.Matched[i]
				if g.Action != w.Action || g.Code != w.Code {
					t.Errorf("outcome %d: %+v (code %d %q), want %+v (code %d)", i, g.Action, g.Code, g.Message, w.Action, w.Code)
				}
			}
			if strings.Join(got.Near, ",") != strings.Join(tt.near, ",") {
				t.Errorf("near %v, want %v", got.Near, tt.near)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "a", Topic: "a/#/b", Action: ActionRelayToggle, Relay: "r"}, "'#'"},
		{Spec{Name: "a", Topic: "a/b+", Action: ActionRelayToggle, Relay: "r"}, "'+'"},
		{Spec{Name: "a", Topic: "a/{device}", Action: ActionRelayToggle, Relay: "r"}, "{device_id}"},
		{Spec{Name: "a", Topic: "t", Action: ActionRelaySet, Relay: "r"}, "needs `on`"},
		{Spec{Name: "a", Topic: "t", Action: ActionRelaySet, Relay: "r", On: "params..x"}, "empty segment"},
		{Spec{Name: "a", Topic: "t", Action: "relay.explode", Relay: "r"}, "must be relay.set"},
		{Spec{Name: "a", Topic: "t", Action: ActionRelayToggle}, "needs `relay`"},
		{Spec{Name: "a", Topic: "t", Action: ActionRelayToggle, Relay: "r", Reply: "mail"}, "alink, agent or none"},
		{Spec{Name: "a", Topic: "t", Action: ActionRelayToggle, Relay: "r", Match: map[string]any{"x": []any{1}}}, "string, a number or a boolean"},
	} {
		if _, err := Compile([]Spec{tt.spec}, "gw"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%+v) = %v, want an error mentioning %q", tt.spec, err, tt.want)
		}
	}
}

func TestFilters(t *testing.T) {
	for _, tt := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true}, {"a/b", "a/b/c", false}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false},
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"#", "x/y", true}, {"+/+", "a/b", true}, {"+", "/a", false},
		{"/sys/+/thing", "/sys/gw/thing", true}, {"a/b", "a", false},
		{"#", "$SYS/x", false}, {"a/#", "b", false}, {"a/+", "a", false}, {"+/+", "/x", true},
		{"/sys/+/thing/#", "/sys/gw/thing/push/notify", true}, {"/sys/+/thing/#", "/sys/gw/other", false}, {"a/b/c", "a/b", false},
	} {
		if got := MatchFilter(strings.Split(tt.filter, "/"), tt.topic); got != tt.want {
			t.Errorf("filter %q topic %q: %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// FuzzMatch: any payload on any topic never panics, and every outcome is
// either an action or a thing-model refusal code with a message.
func FuzzMatch(f *testing.F) {
	f.Add("/sys/gw1/thing/service/property/set", []byte(`{"id":"1","method":"thing.service.property.set","params":{"PowerSwitch":1,"Duration":5}}`))
	f.Add("/sys/gw1/thing/service/identify", []byte(`{"id":[1],"params":{"seconds":1e308}}`))
	f.Add("a", []byte(`[`))
	s, err := Compile(preset, "gw1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, o := range s.Match(topic, payload).Matched {
			switch o.Code {
			case 0:
				if o.Action.ID == "" || len(o.Action.ID) > maxID || o.Action.For < 0 || o.Action.For > maxFor {
					t.Fatalf("action %+v", o.Action)
				}
			case CodeBadRequest, CodeBadParams:
				if o.Message == "" {
					t.Fatal("a refusal without a message")
				}
			default:
				t.Fatalf("code %d", o.Code)
			}
		}
	})
}
