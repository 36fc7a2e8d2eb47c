package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// commandsSection is issue item 2 for one run: relay.set commands at
// 100/s, alternating on and off, each with a unique id; publish → reply
// received, and publish → relay transition on the sim board. Then, from the
// same agent in the same run (so the two compare), the same through a rule:
// thing-model property sets at 100/s on the property topic, PowerSwitch
// alternating 1 and 0, each with a unique id; publish → alink reply on the
// topic + "_reply", and publish → relay transition.
//
// The transition: the sim backend reports every level it drives through
// the agent's log ("sim gpio" pin=… high=…, written synchronously inside
// the transition), followed by "relay switched" … id=…. The agent's log
// timestamps have 1 ms resolution, so the bench stamps each line as it
// reads it from the agent's stderr pipe instead: an upper bound of the
// transition by the pipe's latency (microseconds).
func commandsSection(e *env) {
	n := e.sz.commands
	e.progress("commands: %d relay.set, then %d property sets through a rule, at 100/s, agent on the sim board", n, n)
	if err := measureCommands(e, n); err != nil {
		e.fail("commands: %v", err)
	}
}

// transitionLog pairs the sim board's "sim gpio" lines for a pin with the
// "relay switched" line (carrying the command id) that follows each.
type transitionLog struct {
	pin string

	mu      sync.Mutex
	pending time.Time            // the last transition not yet claimed by an id
	byID    map[string]time.Time // command id → its transition
}

func (t *transitionLog) line(line string, at time.Time) {
	switch slogField(line, "msg") {
	case "sim gpio":
		if slogField(line, "pin") == t.pin && slogField(line, "initial") == "false" {
			t.mu.Lock()
			t.pending = at
			t.mu.Unlock()
		}
	case "relay switched":
		id := slogField(line, "id")
		t.mu.Lock()
		if !t.pending.IsZero() {
			t.byID[id] = t.pending
		} else {
			t.byID[id] = at
		}
		t.pending = time.Time{}
		t.mu.Unlock()
	}
}

// slogField returns the value of key in a log/slog text line (quoted
// values unquoted), or "".
func slogField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if strings.HasPrefix(line, key+"=") {
		i = -1
	} else if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		// Quoted: up to the closing quote that is not escaped.
		for j := 1; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				var s string
				if json.Unmarshal([]byte(v[:j+1]), &s) == nil {
					return s
				}
				return v[1:j]
			}
		}
		return v[1:]
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		return v[:j]
	}
	return v
}

// ruleConfig is the pump rule of the thing-model preset
// (scripts/rules/thing-model.toml), for the bench agent's one relay.
const ruleConfig = `
[[rule]]
name = "pump"
topic = "/sys/{device_id}/thing/service/property/set"
match = { method = "thing.service.property.set" }
action = "relay.set"
relay = "pump"
on = "params.PowerSwitch"
for = "params.PowerSwitchDuration"
id = "id"
reply = "alink"
`

// propertyTopic is where a thing-model platform sets the agent's properties.
func (a *agent) propertyTopic() string { return "/sys/" + a.device + "/thing/service/property/set" }

// propertySet is a thing-model platform's property set of PowerSwitch.
func propertySet(id string, on bool) []byte {
	v := 0
	if on {
		v = 1
	}
	return fmt.Appendf(nil, `{"id":%q,"version":"1.0","method":"thing.service.property.set","params":{"PowerSwitch":%d}}`, id, v)
}

// replyLog stamps each reply by id as it arrives (the first, if the
// agent answers an id twice), from the agent's reply topic and from the
// alink _reply topic alike: the ids of the two phases differ.
type replyLog struct {
	mu   sync.Mutex
	at   map[string]time.Time
	fail map[string]string // id → error code, for refusals
}

func (rl *replyLog) add(id string, at time.Time, fail string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if _, seen := rl.at[id]; !seen {
		rl.at[id] = at
	}
	if fail != "" {
		rl.fail[id] = fail
	}
}

// parseAgentReply reads the agent's own reply: {"id","ok","error":{"code"}}.
func parseAgentReply(p []byte) (id, fail string, ok bool) {
	var r struct {
		ID    string `json:"id"`
		OK    bool   `json:"ok"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(p, &r) != nil {
		return "", "", false
	}
	if !r.OK {
		fail = r.Error.Code
		if fail == "" {
			fail = "ok false"
		}
	}
	return r.ID, fail, true
}

// parseAlinkReply reads a thing-model reply: {"id","code","data"}; any
// code but 200 is a refusal.
func parseAlinkReply(p []byte) (id, fail string, ok bool) {
	var r struct {
		ID      string `json:"id"`
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(p, &r) != nil || r.Code == nil {
		return "", "", false
	}
	if *r.Code != 200 {
		fail = fmt.Sprintf("code %d %s", *r.Code, r.Message)
	}
	return r.ID, fail, true
}

// phase is one stream of requests at 100/s, each answered on a reply topic
// and each switching the relay.
type phase struct {
	what    string // for errors: "commands", "property sets"
	topic   string
	ids     []string
	payload func(i int) []byte
}

// phaseResult is a phase's latencies in ms, by request.
type phaseResult struct {
	toReply, toTransition []float64
	missingTrans          int
}

func measureCommands(e *env, n int) error {
	a, err := e.newAgent("agent-commands", storeCfg{})
	if err != nil {
		return err
	}
	if err := appendFile(a.cfgPath, ruleConfig); err != nil {
		return err
	}
	tl := &transitionLog{pin: benchRelayPin, byID: map[string]time.Time{}}
	if err := a.start(tl.line); err != nil {
		return err
	}
	defer a.p.kill()
	if _, err := a.waitConnected(15*time.Second, 10*time.Millisecond); err != nil {
		return err
	}

	rl := &replyLog{at: map[string]time.Time{}, fail: map[string]string{}}
	o, err := agenttest.ClientOptions(e.broker.url(), e.pki, cloudUser, cloudPass, e.id("replies"))
	if err != nil {
		return err
	}
	sub, err := agenttest.Connect(o)
	if err != nil {
		return err
	}
	defer sub.Disconnect(100)
	for topic, parse := range map[string]func([]byte) (string, string, bool){
		a.topic("reply"):             parseAgentReply,
		a.propertyTopic() + "_reply": parseAlinkReply,
	} {
		tok := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			at := time.Now()
			if id, fail, ok := parse(m.Payload()); ok {
				rl.add(id, at, fail)
			}
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return fmt.Errorf("subscribe to %s: %v", topic, tok.Error())
		}
	}

	pub, err := e.broker.pub(e.id("cmd-pub"), 100)
	if err != nil {
		return err
	}
	defer pub.close()
	ids := func(name string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%06d", e.id(name), i)
		}
		return out
	}
	// The relay starts off (power_on default): even commands switch it on,
	// odd ones off, so every command is a transition; the property sets
	// carry on from the state the commands left.
	cmds := phase{what: "commands", topic: a.topic("notify"), ids: ids("cmd")}
	cmds.payload = func(i int) []byte {
		return fmt.Appendf(nil, `{"id":%q,"method":"relay.set","params":{"relay":%q,"on":%v}}`, cmds.ids[i], benchRelay, i%2 == 0)
	}
	props := phase{what: "property sets", topic: a.propertyTopic(), ids: ids("prop")}
	props.payload = func(i int) []byte { return propertySet(props.ids[i], (n+i)%2 == 0) }

	cr, err := runPhase(pub, rl, tl, cmds)
	if err != nil {
		return err
	}
	rr, err := runPhase(pub, rl, tl, props)
	if err != nil {
		return err
	}

	fig := func(key, label string) *figure { return e.rep.fig(key, label, "ms", 2) }
	le5 := func(v float64) bool { return v <= 5 }
	fig("cmd.reply.p50", "command publish → reply received, p50 at 100/s").add(percentile(cr.toReply, 50))
	fig("cmd.reply.p99", "command publish → reply received, p99 at 100/s").want("≤ 5 ms", le5).add(percentile(cr.toReply, 99))
	fig("cmd.reply.max", "command publish → reply received, max").add(percentile(cr.toReply, 100))
	transitions(e, cr, n, "cmd.relay", "command publish → relay transition (sim)")
	fig("cmd.rule.reply.p50", "property set (rule) publish → alink reply received, p50 at 100/s").add(percentile(rr.toReply, 50))
	fig("cmd.rule.reply.p99", "property set (rule) publish → alink reply received, p99 at 100/s").want("≤ 5 ms", le5).add(percentile(rr.toReply, 99))
	fig("cmd.rule.reply.max", "property set (rule) publish → alink reply received, max").add(percentile(rr.toReply, 100))
	transitions(e, rr, n, "cmd.rule.relay", "property set (rule) publish → relay transition (sim)")

	st, err := a.status()
	if err != nil {
		return err
	}
	if st.Rules == nil || st.Rules.Matched != uint64(n) || st.Rules.Unmatched != 0 {
		return fmt.Errorf("status rules %+v after %d property sets, want all matched", st.Rules, n)
	}
	if err := a.stop(); err != nil {
		return err
	}
	return a.dropSession()
}

// transitions adds a phase's publish → relay transition figures.
func transitions(e *env, r phaseResult, n int, key, label string) {
	t50 := e.rep.fig(key+".p50", label+", p50", "ms", 2)
	t99 := e.rep.fig(key+".p99", label+", p99", "ms", 2)
	if r.missingTrans > 0 {
		why := fmt.Sprintf("%d of %d transitions not in the agent's log", r.missingTrans, n)
		t50.unavailable(why)
		t99.unavailable(why)
		return
	}
	t50.add(percentile(r.toTransition, 50))
	t99.add(percentile(r.toTransition, 99))
}

// runPhase publishes p's requests at 100/s, waits for their replies (30 s
// at most) and reads each one's latencies. A missing reply or a refusal
// fails the bench: every request is valid.
func runPhase(pub *pubConn, rl *replyLog, tl *transitionLog, p phase) (phaseResult, error) {
	var r phaseResult
	n := len(p.ids)
	sent, err := pub.paced(p.topic, n, pacedEvery, func(i int, _ time.Time) []byte { return p.payload(i) })
	if err != nil {
		return r, fmt.Errorf("%s: %w", p.what, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := 0
		rl.mu.Lock()
		for _, id := range p.ids {
			if _, ok := rl.at[id]; ok {
				got++
			}
		}
		rl.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	missingReply, failed := 0, 0
	var firstFail string
	rl.mu.Lock()
	for i, id := range p.ids {
		if code, bad := rl.fail[id]; bad {
			if failed == 0 {
				firstFail = id + ": " + code
			}
			failed++
		}
		if at, ok := rl.at[id]; ok {
			r.toReply = append(r.toReply, float64(at.Sub(sent[i]))/1e6)
		} else {
			missingReply++
		}
	}
	rl.mu.Unlock()
	// The last transition's log line may trail its reply: a moment for the
	// stderr pipe.
	time.Sleep(50 * time.Millisecond)
	tl.mu.Lock()
	for i, id := range p.ids {
		if at, ok := tl.byID[id]; ok {
			r.toTransition = append(r.toTransition, float64(at.Sub(sent[i]))/1e6)
		} else {
			r.missingTrans++
		}
	}
	tl.mu.Unlock()
	if missingReply > 0 || failed > 0 {
		return r, fmt.Errorf("%d of %d %s got no reply, %d were refused (e.g. %s)", missingReply, n, p.what, failed, firstFail)
	}
	return r, nil
}

// appendFile appends s to the file at path.
func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
