package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// commandsSection is issue item 2 for one run: relay.set commands at
// 100/s, alternating on and off, each with a unique id; publish → reply
// received, and publish → relay transition on the sim board.
//
// The transition: the sim backend reports every level it drives through
// the agent's log ("sim gpio" pin=… high=…, written synchronously inside
// the transition), followed by "relay switched" … id=…. The agent's log
// timestamps have 1 ms resolution, so the bench stamps each line as it
// reads it from the agent's stderr pipe instead: an upper bound of the
// transition by the pipe's latency (microseconds).
func commandsSection(e *env) {
	n := e.sz.commands
	e.progress("commands: %d relay.set at 100/s, agent on the sim board", n)
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

// replyLog stamps each reply on the reply topic by id as it arrives.
type replyLog struct {
	mu   sync.Mutex
	at   map[string]time.Time
	fail map[string]string // id → error code, for replies with ok false
}

func measureCommands(e *env, n int) error {
	a, err := e.newAgent("agent-commands", storeCfg{})
	if err != nil {
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
	tok := sub.Subscribe(a.topic("reply"), 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		var r struct {
			ID    string `json:"id"`
			OK    bool   `json:"ok"`
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(m.Payload(), &r) != nil {
			return
		}
		rl.mu.Lock()
		if _, seen := rl.at[r.ID]; !seen {
			rl.at[r.ID] = at
		}
		if !r.OK {
			rl.fail[r.ID] = r.Error.Code
		}
		rl.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe to replies: %v", tok.Error())
	}

	pub, err := e.broker.pub(e.id("cmd-pub"), 100)
	if err != nil {
		return err
	}
	defer pub.close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%06d", e.id("cmd"), i)
	}
	// The relay starts off (power_on default): even commands switch it on,
	// odd ones off, so every command is a transition.
	sent, err := pub.paced(a.topic("notify"), n, pacedEvery, func(i int, _ time.Time) []byte {
		return fmt.Appendf(nil, `{"id":%q,"method":"relay.set","params":{"relay":%q,"on":%v}}`, ids[i], benchRelay, i%2 == 0)
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rl.mu.Lock()
		got := len(rl.at)
		rl.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	var toReply, toTransition []float64
	missingReply, missingTrans := 0, 0
	rl.mu.Lock()
	failed := len(rl.fail)
	var firstFail string
	for id, code := range rl.fail {
		firstFail = id + ": " + code
		break
	}
	for i, id := range ids {
		if at, ok := rl.at[id]; ok {
			toReply = append(toReply, float64(at.Sub(sent[i]))/1e6)
		} else {
			missingReply++
		}
	}
	rl.mu.Unlock()
	tl.mu.Lock()
	for i, id := range ids {
		if at, ok := tl.byID[id]; ok {
			toTransition = append(toTransition, float64(at.Sub(sent[i]))/1e6)
		} else {
			missingTrans++
		}
	}
	tl.mu.Unlock()
	if missingReply > 0 || failed > 0 {
		return fmt.Errorf("%d of %d commands got no reply, %d were refused (e.g. %s)", missingReply, n, failed, firstFail)
	}
	e.rep.fig("cmd.reply.p50", "command publish → reply received, p50 at 100/s", "ms", 2).add(percentile(toReply, 50))
	e.rep.fig("cmd.reply.p99", "command publish → reply received, p99 at 100/s", "ms", 2).
		want("≤ 5 ms", func(v float64) bool { return v <= 5 }).add(percentile(toReply, 99))
	t50 := e.rep.fig("cmd.relay.p50", "command publish → relay transition (sim), p50", "ms", 2)
	t99 := e.rep.fig("cmd.relay.p99", "command publish → relay transition (sim), p99", "ms", 2)
	if missingTrans > 0 {
		why := fmt.Sprintf("%d of %d transitions not in the agent's log", missingTrans, n)
		t50.unavailable(why)
		t99.unavailable(why)
	} else {
		t50.add(percentile(toTransition, 50))
		t99.add(percentile(toTransition, 99))
	}
	if err := a.stop(); err != nil {
		return err
	}
	return a.dropSession()
}
