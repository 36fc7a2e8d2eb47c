package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

const relaysConfig = `
[leds]
status = "GPIO27"
activity = "GPIO23"
fault = "GPIO24"

[[relay]]
name = "pump"
pin = "GPIO17"
interlock = "water"
max_on = "1m"
power_on = "restore"

[[relay]]
name = "drain"
pin = "GPIO18"
active_low = true
interlock = "water"

[[relay]]
name = "lamp"
pin = "GPIO22"
power_on = "restore"
`

// replies subscribes to the reply topic and collects replies by id.
type replies struct {
	t  *testing.T
	mu sync.Mutex
	by map[string][]map[string]any
	n  int
}

func (r *rig) replies() *replies {
	r.t.Helper()
	rep := &replies{t: r.t, by: map[string][]map[string]any{}}
	c := r.publisher(fmt.Sprintf("replies-%d", time.Now().UnixNano()))
	tok := c.Subscribe("/sys/"+r.device+"/thing/push/reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		var v map[string]any
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			r.t.Errorf("reply is not JSON: %q", m.Payload())
			return
		}
		id, _ := v["id"].(string)
		rep.mu.Lock()
		rep.by[id] = append(rep.by[id], v)
		rep.n++
		rep.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		r.t.Fatalf("subscribe replies: %v", tok.Error())
	}
	return rep
}

// wait returns the first reply with id, waiting up to 10 s.
func (rep *replies) wait(id string) map[string]any {
	rep.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rep.mu.Lock()
		got := rep.by[id]
		rep.mu.Unlock()
		if len(got) > 0 {
			return got[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.t.Fatalf("no reply with id %q", id)
	return nil
}

func (rep *replies) count(id string) int {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return len(rep.by[id])
}

func (r *rig) send(c mqtt.Client, payload string) {
	r.t.Helper()
	if err := agenttest.PublishQoS1(c, r.notifyTopic(), []byte(payload), 5*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

func errCode(v map[string]any) string {
	if e, ok := v["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	return ""
}

func newCommandRig(t *testing.T) *rig {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = relaysConfig
	r.writeConfig(nil)
	return r
}

func TestCommandsEveryMethodAndError(t *testing.T) {
	r := newCommandRig(t)
	r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-cmd")
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	for _, tc := range []struct {
		id, payload, wantCode string
		check                 func(t *testing.T, result map[string]any)
	}{
		{"ping", `{"id":"ping","method":"agent.ping"}`, "", func(t *testing.T, res map[string]any) {
			if res["pong"] != true {
				t.Errorf("result %v", res)
			}
		}},
		{"status", `{"id":"status","method":"agent.status"}`, "", func(t *testing.T, res map[string]any) {
			if res["device_id"] != r.device || res["connected"] != true {
				t.Errorf("result %v", res)
			}
			// The reply is built while its command is pending: the state
			// and the status LED's pattern in it must agree.
			if leds, _ := res["leds"].(map[string]any); leds["status"] != res["state"] {
				t.Errorf("status reply says state %v beside status LED %v", res["state"], leds["status"])
			}
		}},
		{"pump-on", `{"id":"pump-on","method":"relay.set","params":{"relay":"pump","on":true,"for":"30s"},"expires_at":"` + future + `"}`, "", func(t *testing.T, res map[string]any) {
			if res["relay"] != "pump" || res["on"] != true || res["until"] == nil {
				t.Errorf("result %v", res)
			}
		}},
		{"drain-on", `{"id":"drain-on","method":"relay.set","params":{"relay":"drain","on":true}}`, "interlocked", nil},
		{"lamp-toggle", `{"id":"lamp-toggle","method":"relay.toggle","params":{"relay":"lamp"}}`, "", func(t *testing.T, res map[string]any) {
			if res["on"] != true {
				t.Errorf("result %v", res)
			}
		}},
		{"typo", `{"id":"typo","method":"relay.set","params":{"relay":"pumpp","on":true}}`, "unknown_relay", nil},
		{"bad-on", `{"id":"bad-on","method":"relay.set","params":{"relay":"pump","on":"yes"}}`, "bad_params", nil},
		{"no-on", `{"id":"no-on","method":"relay.set","params":{"relay":"pump"}}`, "bad_params", nil},
		{"extra-param", `{"id":"extra-param","method":"relay.toggle","params":{"relay":"lamp","force":true}}`, "bad_params", nil},
		{"nope", `{"id":"nope","method":"relay.explode"}`, "unknown_method", nil},
		{"old", `{"id":"old","method":"agent.ping","expires_at":"` + past + `"}`, "expired", nil},
		{"", `{"id":"broken","method":`, "bad_json", nil},
		{"identify", `{"id":"identify","method":"led.identify","params":{"for":"2s"}}`, "", nil},
	} {
		r.send(pub, tc.payload)
		got := rep.wait(tc.id)
		if tc.wantCode == "" {
			if got["ok"] != true {
				t.Errorf("%s: %v, want ok", tc.id, got)
				continue
			}
			if tc.check != nil {
				res, _ := got["result"].(map[string]any)
				tc.check(t, res)
			}
		} else if got["ok"] != false || errCode(got) != tc.wantCode {
			t.Errorf("%s: %v, want error %s", tc.id, got, tc.wantCode)
		}
	}
	// bad_command for a missing id comes back with id null as well.
	if n := rep.count(""); n != 1 {
		t.Fatalf("%d replies with id null so far, want 1 (bad_json)", n)
	}
	r.send(pub, `{"method":"agent.ping"}`)
	deadline := time.Now().Add(5 * time.Second)
	for rep.count("") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	rep.mu.Lock()
	if len(rep.by[""]) != 2 || errCode(rep.by[""][1]) != "bad_command" {
		t.Errorf("missing id: replies %v", rep.by[""])
	}
	rep.mu.Unlock()

	// A plain notification gets no reply and is stored.
	r.send(pub, `{"event":"just data"}`)
	st := r.waitStatus(5*time.Second, func(s agent.Status) bool {
		return s.Inbox.Total == 15 && s.Inbox.Pending == 0 && s.Outbox.Pending == 0
	})
	if !st.Relays["pump"].On || !st.Relays["lamp"].On || st.Relays["drain"].On {
		t.Errorf("relays %+v", st.Relays)
	}
	if st.Relays["pump"].Until == nil {
		t.Error("pump has no until")
	}
	if st.LEDs["status"] == "" {
		t.Errorf("leds %v", st.LEDs)
	}
}

// gpioLog extracts the sim's transitions of pin from an agent log, in order,
// as "H"/"L" with a "*" for the initial level.
func gpioLog(log, pin string) []string {
	re := regexp.MustCompile(`msg="sim gpio" part=hw pin=` + regexp.QuoteMeta(pin) + ` high=(true|false) initial=(true|false)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		s := "L"
		if m[1] == "true" {
			s = "H"
		}
		if m[2] == "true" {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

func TestSameCommandIDExecutesOnce(t *testing.T) {
	r := newCommandRig(t)
	p := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-dup")
	for i := 0; i < 3; i++ {
		r.send(pub, `{"id":"t-1","method":"relay.toggle","params":{"relay":"lamp"}}`)
	}
	r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Inbox.Pending == 0 && s.Outbox.Pending == 0 })
	deadline := time.Now().Add(5 * time.Second)
	for rep.count("t-1") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	rep.mu.Lock()
	got := rep.by["t-1"]
	rep.mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d replies, want 3 (the first reply sent again for each repeat)", len(got))
	}
	a, _ := json.Marshal(got[0])
	for _, g := range got[1:] {
		if b, _ := json.Marshal(g); string(a) != string(b) {
			t.Fatalf("repeat reply %s differs from the first %s", b, a)
		}
	}
	if st, _ := r.status(); !st.Relays["lamp"].On {
		t.Fatal("lamp not on: toggled more than once")
	}
	if tr := gpioLog(p.Log(), "GPIO22"); strings.Join(tr, ",") != "L*,H" {
		t.Fatalf("lamp line transitions %v, want [L* H]", tr)
	}
}

// TestToggleNotRepeatedAfterKillMidCommand kills the agent right after the
// relay moved and before the reply was recorded: the broker redelivers the
// command, and the restarted agent must not toggle again. The failpoint
// that kills it is only in a build with -tags faults.
func TestToggleNotRepeatedAfterKillMidCommand(t *testing.T) {
	r := newCommandRig(t)
	r.env = []string{"EDGE_AGENT_FAILPOINT=after-relay-move"}
	r.exe = buildAgent(t, "faults")
	p1 := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-kill-cmd")
	r.send(pub, `{"id":"t-kill","method":"relay.toggle","params":{"relay":"lamp"}}`)
	select {
	case <-p1.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the failpoint did not kill the agent")
	}
	if tr := gpioLog(p1.Log(), "GPIO22"); strings.Join(tr, ",") != "L*,H" {
		t.Fatalf("first run: lamp transitions %v, want [L* H]", tr)
	}
	r.env, r.exe = nil, ""
	p2 := r.startAgent()
	got := rep.wait("t-kill")
	if got["ok"] != true {
		t.Fatalf("reply %v", got)
	}
	st := r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.Inbox.Pending == 0 })
	if !st.Relays["lamp"].On {
		t.Fatal("lamp off after restart: toggled twice, or restore lost the state")
	}
	// power_on = restore brings it straight up on; no further transition.
	if tr := gpioLog(p2.Log(), "GPIO22"); strings.Join(tr, ",") != "H*" {
		t.Fatalf("second run: lamp transitions %v, want [H*] (restored, not toggled again)", tr)
	}
	if !strings.Contains(p2.Log(), "interrupted by a restart") {
		t.Error("no log line about finishing the interrupted command")
	}
}

// TestFailpointIgnoredByReleaseBuild: a binary built as releases are
// (no build tags) has no failpoint: with the variable set, the command
// completes and the agent lives on.
func TestFailpointIgnoredByReleaseBuild(t *testing.T) {
	r := newCommandRig(t)
	r.env = []string{"EDGE_AGENT_FAILPOINT=after-relay-move"}
	r.exe = buildAgent(t, "")
	p := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	r.send(r.publisher("cloud-no-failpoint"), `{"id":"t-release","method":"relay.toggle","params":{"relay":"lamp"}}`)
	if got := rep.wait("t-release"); got["ok"] != true {
		t.Fatalf("reply %v", got)
	}
	select {
	case <-p.done:
		t.Fatalf("the release build died: %v\n%s", p.err, p.Log())
	case <-time.After(500 * time.Millisecond):
	}
	if st, err := r.status(); err != nil || !st.Relays["lamp"].On {
		t.Fatalf("status %+v, %v; want the lamp on", st.Relays, err)
	}
}

func TestPowerOnPoliciesAcrossKill(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = `
[[relay]]
name = "a"
pin = "GPIO5"
power_on = "off"
[[relay]]
name = "b"
pin = "GPIO6"
power_on = "on"
[[relay]]
name = "c"
pin = "GPIO13"
power_on = "restore"
active_low = true
`
	r.writeConfig(nil)
	p := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-power")
	r.send(pub, `{"id":"a-on","method":"relay.set","params":{"relay":"a","on":true}}`)
	r.send(pub, `{"id":"b-off","method":"relay.set","params":{"relay":"b","on":false}}`)
	r.send(pub, `{"id":"c-on","method":"relay.set","params":{"relay":"c","on":true}}`)
	for _, id := range []string{"a-on", "b-off", "c-on"} {
		if got := rep.wait(id); got["ok"] != true {
			t.Fatalf("%s: %v", id, got)
		}
	}
	p.kill()
	p = r.startAgent()
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return len(s.Relays) == 3 })
	if st.Relays["a"].On || !st.Relays["b"].On || !st.Relays["c"].On {
		t.Fatalf("after SIGKILL: a=%v b=%v c=%v, want off (off), on (on), on (restore)", st.Relays["a"].On, st.Relays["b"].On, st.Relays["c"].On)
	}
	// Each line starts at its final level: no glitch through the other one.
	for pin, want := range map[string]string{"GPIO5": "L*", "GPIO6": "H*", "GPIO13": "L*"} {
		if tr := gpioLog(p.Log(), pin); strings.Join(tr, ",") != want {
			t.Errorf("%s at boot: %v, want [%s]", pin, tr, want)
		}
	}
}

func TestDeadlinesAcrossRestart(t *testing.T) {
	r := newCommandRig(t)
	p := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-deadline")
	// lamp: on for 1s, and the agent is down when it passes.
	r.send(pub, `{"id":"lamp-1s","method":"relay.set","params":{"relay":"lamp","on":true,"for":"1s"}}`)
	rep.wait("lamp-1s")
	// pump: on for 4s, still running across a quick restart.
	r.send(pub, `{"id":"pump-4s","method":"relay.set","params":{"relay":"pump","on":true,"for":"4s"}}`)
	rep.wait("pump-4s")
	p.kill()
	time.Sleep(1200 * time.Millisecond)
	start := time.Now()
	p = r.startAgent()
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return len(s.Relays) == 3 })
	if st.Relays["lamp"].On {
		t.Fatal("lamp on after restart though its deadline passed while the agent was down")
	}
	if tr := gpioLog(p.Log(), "GPIO22"); strings.Join(tr, ",") != "L*" {
		t.Fatalf("lamp at boot %v, want straight to low", tr)
	}
	if !st.Relays["pump"].On || st.Relays["pump"].Until == nil {
		t.Fatalf("pump %+v, want on with its deadline", st.Relays["pump"])
	}
	st = r.waitStatus(8*time.Second, func(s agent.Status) bool { return !s.Relays["pump"].On })
	t.Logf("pump switched off %v after the restart", time.Since(start).Round(100*time.Millisecond))
}

// TestInterlockUnderConcurrentCommands: two publishers race to switch the
// two relays of one interlock group; the lines' transitions, replayed in
// order, must never have both on.
func TestInterlockUnderConcurrentCommands(t *testing.T) {
	r := newCommandRig(t)
	p := r.startAgent()
	r.waitConnected()
	rep := r.replies()
	var wg sync.WaitGroup
	for _, relay := range []string{"pump", "drain"} {
		pub := r.publisher("cloud-" + relay)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				on := i%2 == 0
				msg := fmt.Sprintf(`{"id":"%s-%d","method":"relay.set","params":{"relay":%q,"on":%v}}`, relay, i, relay, on)
				if err := agenttest.PublishQoS1(pub, r.notifyTopic(), []byte(msg), 5*time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.Inbox.Pending == 0 && s.Outbox.Pending == 0 })
	// Replay the transitions of both lines in log order (drain is active low).
	re := regexp.MustCompile(`msg="sim gpio" part=hw pin=(GPIO17|GPIO18) high=(true|false)`)
	on := map[string]bool{}
	refused := 0
	for _, m := range re.FindAllStringSubmatch(p.Log(), -1) {
		high := m[2] == "true"
		if m[1] == "GPIO18" {
			high = !high
		}
		on[m[1]] = high
		if on["GPIO17"] && on["GPIO18"] {
			t.Fatal("pump and drain were on together")
		}
	}
	rep.mu.Lock()
	for _, rs := range rep.by {
		if errCode(rs[0]) == "interlocked" {
			refused++
		}
	}
	rep.mu.Unlock()
	t.Logf("%d commands refused as interlocked", refused)
}

// TestStatusLEDStates: the status LED's state follows what is wrong.
func TestStatusLEDStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		over  func(r *rig) map[string]string
		state string
		fault string
	}{
		{"connected", func(r *rig) map[string]string { return nil }, "ok", "off"},
		{"broker down", func(r *rig) map[string]string { return map[string]string{"broker": `"tls://127.0.0.1:1"`} }, "connecting", "off"},
		{"wrong password", func(r *rig) map[string]string {
			return map[string]string{"password_file": "", "password": `"wrong"`}
		}, "auth", "on"},
		{"wrong CA", func(r *rig) map[string]string {
			return map[string]string{"ca_file": fmt.Sprintf("%q", r.pki.OtherCAFile)}
		}, "auth", "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCommandRig(t)
			r.writeConfig(tc.over(r))
			r.startAgent()
			st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.LEDs["status"] == tc.state })
			if st.State != tc.state || st.LEDs["fault"] != tc.fault {
				t.Fatalf("state %q, leds %v; want status %q, fault %q", st.State, st.LEDs, tc.state, tc.fault)
			}
		})
	}
}
