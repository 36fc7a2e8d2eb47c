package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// rulesConfig is the relays of commands_test.go plus the thing-model
// preset (pump ← PowerSwitch, lamp ← LightSwitch) and two rules of our own:
// a toggle (so acting twice would show) and a drain rule for the interlock.
func rulesConfig(t *testing.T) string {
	t.Helper()
	preset, err := os.ReadFile(filepath.Join("..", "..", "scripts", "rules", "thing-model.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return relaysConfig + "\n" + string(preset) + `
[[rule]]
name = "lamp-toggle"
topic = "/sys/{device_id}/thing/service/lamp/toggle"
action = "relay.toggle"
relay = "lamp"

[[rule]]
name = "drain"
topic = "/sys/{device_id}/thing/service/property/set"
match = { method = "thing.service.property.set" }
action = "relay.set"
relay = "drain"
on = "params.DrainSwitch"
`
}

func newRulesRig(t *testing.T) *rig {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = rulesConfig(t)
	r.writeConfig(nil)
	return r
}

func (r *rig) propertyTopic() string { return "/sys/" + r.device + "/thing/service/property/set" }

// alinkReplies collects {"id","code","data"} replies on the property topic's _reply.
type alinkReplies struct {
	t  *testing.T
	mu sync.Mutex
	by map[string][]map[string]any
}

func (r *rig) alinkReplies() *alinkReplies {
	r.t.Helper()
	rep := &alinkReplies{t: r.t, by: map[string][]map[string]any{}}
	c := r.publisher(fmt.Sprintf("alink-%d", time.Now().UnixNano()))
	tok := c.Subscribe(r.propertyTopic()+"_reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		var v map[string]any
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			r.t.Errorf("alink reply is not JSON: %q", m.Payload())
			return
		}
		id, _ := v["id"].(string)
		rep.mu.Lock()
		rep.by[id] = append(rep.by[id], v)
		rep.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		r.t.Fatalf("subscribe: %v", tok.Error())
	}
	return rep
}

func (rep *alinkReplies) wait(id string, n int) []map[string]any {
	rep.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rep.mu.Lock()
		got := rep.by[id]
		rep.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.t.Fatalf("fewer than %d alink replies with id %q", n, id)
	return nil
}

func (r *rig) publishTo(c mqtt.Client, topic, payload string) {
	r.t.Helper()
	if err := agenttest.PublishQoS1(c, topic, []byte(payload), 5*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

func propertySet(id, params string) string {
	return `{"id":"` + id + `","version":"1.0","method":"thing.service.property.set","params":` + params + `}`
}

func code(v map[string]any) int { f, _ := v["code"].(float64); return int(f) }

// A platform's property set drives the relays through the rules, with every
// safety rule kept and one thing-model reply per message.
func TestRulesDriveRelays(t *testing.T) {
	r := newRulesRig(t)
	r.startAgent()
	r.waitConnected()
	rep := r.alinkReplies()
	pub := r.publisher("platform")

	// One property: 200 with the same id, the relay on.
	r.publishTo(pub, r.propertyTopic(), propertySet("123", `{"PowerSwitch":1}`))
	if got := rep.wait("123", 1)[0]; code(got) != 200 || got["data"] == nil {
		t.Fatalf("reply %v, want code 200 with data", got)
	}
	if st := r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Relays["pump"].On }); st.Relays["pump"].Until == nil {
		t.Errorf("pump on without max_on's deadline: %+v", st.Relays["pump"])
	}

	// Two properties, two relays, one reply.
	r.publishTo(pub, r.propertyTopic(), propertySet("124", `{"PowerSwitch":"off","LightSwitch":true}`))
	if got := rep.wait("124", 1); len(got) != 1 || code(got[0]) != 200 {
		t.Fatalf("replies %v, want one 200", got)
	}
	st := r.waitStatus(5*time.Second, func(s agent.Status) bool { return !s.Relays["pump"].On && s.Relays["lamp"].On })

	// A value neither on nor off: 460, nothing switches.
	r.publishTo(pub, r.propertyTopic(), propertySet("125", `{"PowerSwitch":"maybe"}`))
	if got := rep.wait("125", 1)[0]; code(got) != 460 || !strings.Contains(fmt.Sprint(got["message"]), "neither on") {
		t.Fatalf("reply %v, want 460 naming the value", got)
	}

	// The interlock holds for rules: pump and drain share a group.
	r.publishTo(pub, r.propertyTopic(), propertySet("126", `{"PowerSwitch":1}`))
	rep.wait("126", 1)
	r.publishTo(pub, r.propertyTopic(), propertySet("127", `{"DrainSwitch":1}`))
	if got := rep.wait("127", 1)[0]; code(got) != 461 {
		t.Fatalf("drain on beside pump: reply %v, want 461 interlocked", got)
	}

	// Nothing vanishes: a message on a rule's topic that no rule takes.
	r.publishTo(pub, r.propertyTopic(), `{"id":"128","method":"thing.event.post","params":{}}`)
	st = r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Rules != nil && s.Rules.Unmatched >= 1 })
	if st.Rules.Matched != 5 || st.Relays["drain"].On || st.Inbox.Pending != 0 {
		t.Errorf("rules %+v, drain %v, pending %d: want 5 matched, drain off, nothing pending", st.Rules, st.Relays["drain"].On, st.Inbox.Pending)
	}
	if code, out, _ := cli("status", "-config", r.cfgPath); code != 0 || !strings.Contains(out, "5 messages acted on, 1 on a rule's topic matched no rule") {
		t.Errorf("status text: exit %d\n%s", code, out)
	}

	// The rule topics are subscribed again on every connect.
	before, _ := r.status()
	if err := r.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(20*time.Second, func(s agent.Status) bool { return s.Connected && s.Since.After(before.Since) })
	rep = r.alinkReplies()
	pub = r.publisher("platform-again")
	r.publishTo(pub, r.propertyTopic(), propertySet("129", `{"LightSwitch":0}`))
	if got := rep.wait("129", 1)[0]; code(got) != 200 {
		t.Fatalf("after a broker restart: reply %v", got)
	}
}

// A rule acts at most once per (rule, id): a repeated id is answered again
// and not acted on, also after a SIGKILL between the relay's move and the
// reply.
func TestRuleActsOncePerID(t *testing.T) {
	r := newRulesRig(t)
	toggle := "/sys/" + r.device + "/thing/service/lamp/toggle"
	r.env = []string{"EDGE_AGENT_FAILPOINT=after-relay-move"}
	r.exe = buildAgent(t, "faults")
	p1 := r.startAgent()
	r.waitConnected()
	pub := r.publisher("platform-once")
	r.publishTo(pub, toggle, `{"id":"t1"}`)
	select {
	case <-p1.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the failpoint did not kill the agent")
	}
	r.env, r.exe = nil, ""
	r.startAgent()
	r.waitConnected()
	r.publishTo(pub, toggle, `{"id":"t1"}`) // the platform repeats it
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.Inbox.Total >= 2 && s.Inbox.Pending == 0 })
	if !st.Relays["lamp"].On {
		t.Fatal("lamp off: the toggle ran twice (or not at all)")
	}
	r.publishTo(pub, toggle, `{"id":"t2"}`)
	r.waitStatus(10*time.Second, func(s agent.Status) bool { return !s.Relays["lamp"].On })
}

// rules test prints what the preset would do, without a daemon.
func TestRulesTestCLI(t *testing.T) {
	r := newRulesRig(t)
	payload := filepath.Join(r.dir, "p.json")
	if err := os.WriteFile(payload, []byte(propertySet("9", `{"PowerSwitch":1,"PowerSwitchDuration":90,"LightSwitch":"off"}`)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli("rules", "test", "-config", r.cfgPath, payload)
	if code != 0 || !strings.Contains(out, `rule pump: relay.set pump on for 1m30s, id "9"`) ||
		!strings.Contains(out, `rule lamp: relay.set lamp off, id "9"`) || !strings.Contains(out, "_reply") {
		t.Fatalf("rules test: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(payload, []byte(`{"id":"1","method":"thing.event.post"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli("rules", "test", "-config", r.cfgPath, payload); code != 1 || !strings.Contains(out, "no rule matches") {
		t.Fatalf("unmatched payload: exit %d\n%s", code, out)
	}
}
