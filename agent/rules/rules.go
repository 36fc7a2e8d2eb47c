// Package rules maps a platform's own payloads to the agent's actions.
//
// A thing-model platform writes a property as
// {"id":"123","method":"thing.service.property.set","params":{"PowerSwitch":1}}
// on /sys/{device}/thing/service/property/set and expects
// {"id":"123","code":200,"data":{}} on the same topic plus "_reply". A rule
// says which messages it takes (an MQTT filter and dotted paths that must
// hold given values), which of the agent's actions it makes of them
// (relay.set, relay.toggle, led.identify) and where in the payload the
// action's values are (on, for, id). The package only decides: what an
// action does, and that it happens at most once per (rule, id), is the
// dispatcher's, exactly as for the agent's own commands.
package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Actions a rule can make.
const (
	ActionRelaySet    = "relay.set"
	ActionRelayToggle = "relay.toggle"
	ActionLEDIdentify = "led.identify"
)

// Reply modes.
const (
	ReplyAlink = "alink" // {"id","code","data"} on {topic}_reply, once per message
	ReplyAgent = "agent" // the agent's own reply on reply_topic, once per rule
	ReplyNone  = "none"
)

// Thing-model reply codes. 200, 400, 460 and 500 are the platform's own;
// the agent adds its own for what the platform has no code for.
const (
	CodeOK          = 200
	CodeBadRequest  = 400 // not a JSON object, or no id where the rule reads it
	CodeBadParams   = 460 // a value neither on nor off, an unknown relay, a bad duration
	CodeInterlocked = 461 // another relay of its interlock group is on
	CodeHardware    = 500 // the line could not be driven
)

// Spec is one [[rule]] as the configuration holds it.
type Spec struct {
	Name   string
	Topic  string         // MQTT filter; {device_id} is replaced
	Match  map[string]any // dotted path -> value it must equal (string, bool, int64, float64)
	Action string
	Relay  string
	On     string // dotted path of the on/off value (relay.set)
	For    string // dotted path of a duration, optional
	ID     string // dotted path of the id; default "id"
	Reply  string // alink | agent | none; default alink
}

// Rule is a compiled Spec.
type Rule struct {
	Spec
	filter []string // the topic filter, split on '/'
	match  []cond
	on     []string
	dur    []string
	id     []string
}

type cond struct {
	path []string
	want any
}

// Set is the configured rules, in order.
type Set struct {
	rules []*Rule
}

// Compile checks and compiles specs. Its error lists every rule's problem
// by name; config check reports them with file and line.
func Compile(specs []Spec, deviceID string) (*Set, error) {
	s := &Set{}
	var probs []string
	for _, sp := range specs {
		r, err := compile(sp, deviceID)
		if err != nil {
			probs = append(probs, fmt.Sprintf("rule %q: %v", sp.Name, err))
			continue
		}
		s.rules = append(s.rules, r)
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return s, nil
}

func compile(sp Spec, deviceID string) (*Rule, error) {
	r := &Rule{Spec: sp}
	if r.ID == "" {
		r.ID = "id"
	}
	if r.Reply == "" {
		r.Reply = ReplyAlink
	}
	topic := strings.ReplaceAll(sp.Topic, "{device_id}", deviceID)
	if err := CheckFilter(topic); err != nil {
		return nil, err
	}
	r.Topic, r.filter = topic, strings.Split(topic, "/")
	var err error
	if r.id, err = ParsePath(r.ID); err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	switch sp.Action {
	case ActionRelaySet:
		if sp.On == "" {
			return nil, fmt.Errorf("relay.set needs `on`, the dotted path of the on/off value (like \"params.PowerSwitch\")")
		}
		if r.on, err = ParsePath(sp.On); err != nil {
			return nil, fmt.Errorf("on: %w", err)
		}
	case ActionRelayToggle, ActionLEDIdentify:
		if sp.On != "" {
			return nil, fmt.Errorf("%s takes no `on`", sp.Action)
		}
	default:
		return nil, fmt.Errorf("action %q: must be relay.set, relay.toggle or led.identify", sp.Action)
	}
	if sp.Action != ActionLEDIdentify && sp.Relay == "" {
		return nil, fmt.Errorf("%s needs `relay`, the relay's name", sp.Action)
	}
	if sp.Action == ActionLEDIdentify && sp.Relay != "" {
		return nil, fmt.Errorf("led.identify takes no `relay`")
	}
	if sp.For != "" {
		if sp.Action == ActionRelayToggle {
			return nil, fmt.Errorf("relay.toggle takes no `for`")
		}
		if r.dur, err = ParsePath(sp.For); err != nil {
			return nil, fmt.Errorf("for: %w", err)
		}
	}
	switch r.Reply {
	case ReplyAlink, ReplyAgent, ReplyNone:
	default:
		return nil, fmt.Errorf("reply %q: must be alink, agent or none", sp.Reply)
	}
	for path, want := range sp.Match {
		p, err := ParsePath(path)
		if err != nil {
			return nil, fmt.Errorf("match %q: %w", path, err)
		}
		switch want.(type) {
		case string, bool, int64, float64:
		default:
			return nil, fmt.Errorf("match %q: the value must be a string, a number or a boolean", path)
		}
		r.match = append(r.match, cond{p, want})
	}
	return r, nil
}

// Rules returns the compiled rules, in order.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return s.rules
}

// Topics are the filters to subscribe to, each once, in rule order.
func (s *Set) Topics() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.Rules() {
		if !seen[r.Topic] {
			seen[r.Topic] = true
			out = append(out, r.Topic)
		}
	}
	return out
}

// OnTopic says whether some rule's filter matches topic: such a message
// is kept pending until the dispatcher has looked at it.
func (s *Set) OnTopic(topic string) bool {
	for _, r := range s.Rules() {
		if MatchFilter(r.filter, topic) {
			return true
		}
	}
	return false
}

// Action is what a matched rule asks for.
type Action struct {
	Method string // ActionRelaySet, ActionRelayToggle, ActionLEDIdentify
	Relay  string
	On     bool
	For    time.Duration // 0 = none
	ID     string
}

// Outcome is one matched rule: its action, or why it cannot act (Code and
// Message, a thing-model code).
type Outcome struct {
	Rule    *Rule
	Action  Action
	Code    int // 0 = act; else the refusal's code
	Message string
}

// Result is what the rules make of one message.
type Result struct {
	Matched []Outcome
	// Near names the rules whose topic matched but whose `match` or `on`
	// did not: for the log line of an unmatched message.
	Near []string
	// ID is the message's id as the first matched rule reads it ("" if
	// none): the alink reply carries it.
	ID string
}

// Match applies every rule to a message. A payload that is not a JSON
// object matches no rule.
func (s *Set) Match(topic string, payload []byte) Result {
	var res Result
	var doc any
	parsed := false
	for _, r := range s.Rules() {
		if !MatchFilter(r.filter, topic) {
			continue
		}
		if !parsed {
			parsed = true
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.UseNumber()
			if dec.Decode(&doc) != nil || dec.More() {
				doc = nil
			}
			if _, ok := doc.(map[string]any); !ok {
				doc = nil
			}
		}
		if doc == nil || !r.conditionsHold(doc) {
			res.Near = append(res.Near, r.Name)
			continue
		}
		out, ok := r.outcome(doc)
		if !ok {
			res.Near = append(res.Near, r.Name)
			continue
		}
		if res.ID == "" {
			res.ID = out.Action.ID
		}
		res.Matched = append(res.Matched, out)
	}
	return res
}

func (r *Rule) conditionsHold(doc any) bool {
	for _, c := range r.match {
		v, ok := lookup(doc, c.path)
		if !ok || !equal(v, c.want) {
			return false
		}
	}
	return true
}

// outcome reads the action's values; ok is false when the rule does not
// match after all (its `on` path is absent).
func (r *Rule) outcome(doc any) (Outcome, bool) {
	out := Outcome{Rule: r, Action: Action{Method: r.Action, Relay: r.Relay}}
	if r.on != nil {
		v, ok := lookup(doc, r.on)
		if !ok {
			return out, false
		}
		on, ok := onOff(v)
		if !ok {
			out.Code, out.Message = CodeBadParams, fmt.Sprintf("%s is %s: neither on (true, 1, \"1\", \"on\", \"true\") nor off (false, 0, \"0\", \"off\", \"false\")", r.On, short(v))
		}
		out.Action.On = on
	}
	if v, ok := lookup(doc, r.id); ok {
		out.Action.ID = idString(v)
	}
	if out.Action.ID == "" && out.Code == 0 {
		out.Code, out.Message = CodeBadRequest, fmt.Sprintf("no id at %s: without one the action cannot be done at most once", r.ID)
	}
	if r.dur != nil && out.Code == 0 {
		if v, ok := lookup(doc, r.dur); ok {
			d, err := duration(v)
			if err != nil {
				out.Code, out.Message = CodeBadParams, fmt.Sprintf("%s: %v", r.For, err)
			}
			out.Action.For = d
		}
	}
	if out.Code == 0 && r.Action == ActionRelaySet && !out.Action.On && out.Action.For > 0 {
		out.Code, out.Message = CodeBadParams, fmt.Sprintf("%s goes with on", r.For)
	}
	return out, true
}

// maxID bounds an id read from a payload, as the agent's own commands do.
const maxID = 128

func idString(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return ""
	}
	if len(s) > maxID {
		return ""
	}
	return s
}

// onOff reads the usual spellings of on and off.
func onOff(v any) (on, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case json.Number:
		switch x.String() {
		case "1":
			return true, true
		case "0":
			return false, true
		}
	case string:
		switch strings.ToLower(x) {
		case "1", "on", "true":
			return true, true
		case "0", "off", "false":
			return false, true
		}
	}
	return false, false
}

// maxFor bounds a duration read from a payload: a week.
const maxFor = 7 * 24 * time.Hour

func duration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return 0, fmt.Errorf("%q is not a duration (like \"30s\", or seconds as a number)", short(x))
		}
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.IsNaN(f) || f > maxFor.Seconds() {
			return 0, fmt.Errorf("%s is not a number of seconds up to a week", x)
		}
		d = time.Duration(f * float64(time.Second))
	default:
		return 0, fmt.Errorf("%s is not a duration (a string like \"30s\" or seconds as a number)", short(v))
	}
	if d <= 0 || d > maxFor {
		return 0, fmt.Errorf("%s must be more than 0 and at most a week", d)
	}
	return d, nil
}

// equal compares a JSON value with a configured one: strings as strings,
// numbers by value, booleans as booleans.
func equal(v, want any) bool {
	switch w := want.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == w
	case bool:
		b, ok := v.(bool)
		return ok && b == w
	case int64:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		if i, err := n.Int64(); err == nil {
			return i == w
		}
		f, err := n.Float64()
		return err == nil && f == float64(w)
	case float64:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == w
	}
	return false
}

// short renders a JSON value for a message, bounded.
func short(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	if len(b) > 64 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// ParsePath splits a dotted path ("params.PowerSwitch"); an array element
// is a number ("items.0.on"). An empty path or segment is an error.
func ParsePath(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	parts := strings.Split(p, ".")
	for _, s := range parts {
		if s == "" {
			return nil, fmt.Errorf("path %q has an empty segment (like \"params.PowerSwitch\")", p)
		}
	}
	return parts, nil
}

// lookup follows path through objects (by key) and arrays (by index).
func lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// CheckFilter checks an MQTT topic filter (MQTT 3.1.1 §4.7): '#' only
// last and alone in its level, '+' alone in its level.
func CheckFilter(f string) error {
	if f == "" {
		return fmt.Errorf("empty topic filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("topic filter %q: '#' must be a whole level, the last one", f)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("topic filter %q: '+' must be a whole level", f)
		}
		if strings.ContainsAny(l, "{}") {
			return fmt.Errorf("topic filter %q: only {device_id} is replaced", f)
		}
	}
	return nil
}

// MatchFilter matches a topic against a filter split at "/" (MQTT 3.1.1
// §4.7): "+" is one level, "#" the rest (and the parent level itself). As
// brokers do, "+" and "#" at the start do not match a topic starting with
// "$". Rules and sinks select messages with it.
func MatchFilter(filter []string, topic string) bool {
	if strings.HasPrefix(topic, "$") && (filter[0] == "+" || filter[0] == "#") {
		return false
	}
	rest := topic
	for i, f := range filter {
		if f == "#" {
			return true
		}
		level, tail, more := strings.Cut(rest, "/")
		if f != "+" && f != level {
			return false
		}
		if !more {
			return i == len(filter)-1 || i == len(filter)-2 && filter[i+1] == "#"
		}
		if i == len(filter)-1 {
			return false
		}
		rest = tail
	}
	return false
}
