package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
)

// hostile is one payload and what the agent must answer
// (docs/design.md#commands): no reply for a plain notification, else
// exactly one reply.
type hostile struct {
	name    string
	payload []byte
	reply   bool
	// For the fixed cases: the reply's id (nil = null), ok and error code.
	// Generated cases (exact false) are checked for a well-formed reply
	// only.
	exact bool
	id    *string
	ok    bool
	code  string
}

func str(s string) *string { return &s }

// maxCommandBytes is the largest command the agent accepts (agent/command.go);
// a possible command over it is refused as it is stored.
const maxCommandBytes = 64 << 10

const hostileRelays = `
[[relay]]
name = "lamp"
pin = "GPIO22"
`

// hostileCases are the fixed payloads: invalid JSON, huge payloads, deep
// nesting, wrong types, invalid UTF-8, null and huge ids, unknown fields.
func hostileCases() []hostile {
	var hs []hostile
	plain := func(name string, p []byte) {
		hs = append(hs, hostile{name: name, payload: p})
	}
	refused := func(name, p string, id *string, code string) {
		hs = append(hs, hostile{name: name, payload: []byte(p), reply: true, exact: true, id: id, code: code})
	}
	okc := func(name, p string, id string) {
		hs = append(hs, hostile{name: name, payload: []byte(p), reply: true, exact: true, id: str(id), ok: true})
	}
	deep := func(n int, open, close string) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	kib256 := 256 << 10

	// Invalid JSON that looks like a command.
	for i, p := range []string{
		`{`, `{"id":"bj1","method":"agent.ping"`, `{"id":"bj2","method":}`, `{"id":"bj3" "method":"agent.ping"}`,
		`{'id':'bj4','method':'agent.ping'}`, `{"id":"bj5","method":"agent.ping",}`, `{"id":"bj6","method":"agent.ping"} {"id":"x"}`,
		`{"id":"bj7","method":"agent.ping"}}`, `{"id":"bj8","method":"agent.ping"}]`, `{"id":"bj9","method":"agent.ping"}x`,
		`{"id":"bj10","method":"agent.ping","params":{"a":01}}`, `{"id":"bj11","method":"agent.ping","params":{"a":NaN}}`,
		`{"id":"bj12","method":"agent.ping","params":{"a":"\x"}}`, "{\"id\":\"bj13\u0000\",\"method\":\"agent.ping\"}",
		"\n\t {\"id\":\"bj14\"", `{}}`, `{"a":1}garbage`, `{"id":"bj17","method":"agent.ping"}` + "\x00",
	} {
		refused(fmt.Sprintf("bad json %d", i), p, nil, "bad_json")
	}
	// Deep nesting: past encoding/json's 10000 levels is invalid JSON.
	refused("params nested 10,000 deep", `{"id":"deep1","method":"agent.ping","params":{"a":`+deep(10000, `{"a":`, `}`)+`}}`, nil, "bad_json")
	refused("array nested 10,000 deep", `{"id":"deep2","method":"agent.ping","params":{"a":`+deep(10000, `[`, `]`)+`}}`, nil, "bad_json")
	refused("nested 100,000 deep", `{"id":"deep3","method":`+deep(100000, `[`, `]`)+`}`, nil, "bad_json")
	refused("params nested 5,000 deep", `{"id":"deep4","method":"agent.ping","params":{"a":`+deep(5000, `{"a":`, `}`)+`}}`, str("deep4"), "bad_params")
	plain("array nested 10,000 deep", []byte(deep(10000, `[`, `]`)))

	// 256 KiB payloads.
	pad := strings.Repeat("x", kib256)
	// Over 64 KiB, larger than any command: refused as it arrives
	// (bad_command; bad_json if it is not JSON), never held pending.
	refused("256 KiB param", `{"id":"big1","method":"agent.ping","params":{"pad":"`+pad+`"}}`, str("big1"), "bad_command")
	refused("256 KiB method", `{"id":"big2","method":"`+pad+`"}`, str("big2"), "bad_command")
	refused("256 KiB id", `{"id":"`+pad+`","method":"agent.ping"}`, nil, "bad_command")
	refused("256 KiB of {", strings.Repeat("{", kib256), nil, "bad_json")
	refused("256 KiB of trailing space", `{"id":"big5","method":"agent.ping"}`+strings.Repeat(" ", kib256), str("big5"), "bad_command")
	plain("256 KiB binary", bytes.Repeat([]byte{0, 0xff, 0x80, '{'}, kib256/4))
	plain("256 KiB object without method", []byte(`{"data":"`+pad+`"}`))
	refused("256 KiB relay name", `{"id":"big6","method":"relay.set","params":{"relay":"`+pad+`","on":true}}`, str("big6"), "bad_command")
	refused("256 KiB unknown key", `{"id":"big7","method":"agent.ping","`+pad+`":1}`, str("big7"), "bad_command")
	refused("256 KiB unknown param", `{"id":"big8","method":"agent.ping","params":{"`+pad+`":1}}`, str("big8"), "bad_command")
	refused("1000 KiB id", `{"id":"`+strings.Repeat("i", 1000<<10)+`","method":"agent.ping"}`, nil, "bad_command")
	okc("64 KiB command", `{"id":"big9","method":"agent.ping"}`+strings.Repeat(" ", 64<<10-len(`{"id":"big9","method":"agent.ping"}`)), "big9")

	// Wrong types.
	for i, p := range []string{
		`{"id":42,"method":"agent.ping"}`, `{"id":true,"method":"agent.ping"}`, `{"id":{"a":1},"method":"agent.ping"}`,
		`{"id":["a"],"method":"agent.ping"}`, `{"id":1e400,"method":"agent.ping"}`,
	} {
		refused(fmt.Sprintf("id of a wrong type %d", i), p, nil, "bad_command")
	}
	refused("method a number", `{"id":"wt1","method":7}`, str("wt1"), "bad_command")
	refused("method empty", `{"id":"wt2","method":""}`, str("wt2"), "bad_command")
	refused("method null", `{"id":"wt3","method":null}`, str("wt3"), "bad_command")
	refused("expires_at a number", `{"id":"wt4","method":"agent.ping","expires_at":1}`, str("wt4"), "bad_command")
	refused("expires_at not a time", `{"id":"wt5","method":"agent.ping","expires_at":"tomorrow"}`, str("wt5"), "bad_command")
	refused("expired", `{"id":"wt6","method":"agent.ping","expires_at":"2001-01-01T00:00:00Z"}`, str("wt6"), "expired")
	for i, p := range []string{`[1]`, `"x"`, `7`, `true`} {
		id := fmt.Sprintf("wp%d", i)
		refused("params "+p, `{"id":"`+id+`","method":"agent.ping","params":`+p+`}`, str(id), "bad_params")
	}
	for i, p := range []string{
		`{"relay":"lamp","on":"yes"}`, `{"relay":42,"on":true}`, `{"relay":"lamp","on":true,"for":42}`,
		`{"relay":"lamp","on":true,"for":"-5s"}`, `{"relay":"lamp","on":true,"for":"forever"}`, `{"relay":"lamp","on":1e999}`,
		`{"relay":"lamp","on":null}`, `{"relay":"lamp"}`, `{"relay":"","on":true}`, `{"relay":"lamp","on":false,"for":"1s"}`,
		`{"relay":["lamp"],"on":true}`, `{"relay":"lamp","on":true,"om":true}`,
	} {
		id := fmt.Sprintf("rp%d", i)
		refused("relay.set params "+p, `{"id":"`+id+`","method":"relay.set","params":`+p+`}`, str(id), "bad_params")
	}
	refused("toggle with on", `{"id":"tg1","method":"relay.toggle","params":{"relay":"lamp","on":true}}`, str("tg1"), "bad_params")
	refused("unknown relay", `{"id":"ur1","method":"relay.set","params":{"relay":"lamp\u0000","on":true}}`, str("ur1"), "unknown_relay")
	refused("identify for a number", `{"id":"li1","method":"led.identify","params":{"for":30}}`, str("li1"), "bad_params")

	// Null, empty and huge ids.
	refused("id null", `{"id":null,"method":"agent.ping"}`, nil, "bad_command")
	refused("no id", `{"method":"agent.ping"}`, nil, "bad_command")
	refused("id empty", `{"id":"","method":"agent.ping"}`, nil, "bad_command")
	refused("id 129 bytes", `{"id":"`+strings.Repeat("a", 129)+`","method":"agent.ping"}`, nil, "bad_command")
	okc("id 128 bytes", `{"id":"`+strings.Repeat("b", 128)+`","method":"agent.ping"}`, strings.Repeat("b", 128))

	// Unknown fields.
	refused("unknown top-level key", `{"id":"uk1","method":"agent.ping","force":true}`, str("uk1"), "bad_command")
	refused("misspelt params", `{"id":"uk2","method":"agent.ping","parms":{}}`, str("uk2"), "bad_command")
	refused("unknown param", `{"id":"uk3","method":"agent.ping","params":{"x":1}}`, str("uk3"), "bad_params")
	refused("unknown method", `{"id":"uk4","method":"Agent.Ping"}`, str("uk4"), "unknown_method")
	refused("unknown method with a NUL", `{"id":"uk5","method":"agent.ping\u0000"}`, str("uk5"), "unknown_method")

	// Invalid UTF-8: stored byte-exact; in a JSON string it reads as U+FFFD.
	plain("invalid UTF-8", []byte{0xff, 0xfe, 0xfd, 0x80})
	plain("UTF-8 BOM before a command", []byte("\xef\xbb\xbf{\"id\":\"bom\",\"method\":\"agent.ping\"}"))
	okc("invalid UTF-8 in the id", "{\"id\":\"\xff\xfe\",\"method\":\"agent.ping\"}", "\ufffd\ufffd")
	okc("lone surrogate in the id", `{"id":"\ud800","method":"agent.ping"}`, "\ufffd")
	refused("invalid UTF-8 key", "{\"id\":\"u8a\",\"method\":\"agent.ping\",\"\xff\":1}", str("u8a"), "bad_command")
	refused("invalid UTF-8 outside strings", "{\xff}", nil, "bad_json")
	okc("escaped NUL in the id", `{"id":"nul\u0000id","method":"agent.ping"}`, "nul\x00id")

	// Not objects, or objects without a method: plain notifications.
	for _, p := range []string{``, `null`, `true`, `"str"`, `123`, `[]`, `[{"id":"x","method":"agent.ping"}]`, `{}`, `{"id":"nm"}`, `{"Method":"agent.ping","id":"case"}`} {
		plain("plain "+p, []byte(p))
	}
	okc("white space before {", " \n\t{\"id\":\"ws\",\"method\":\"agent.ping\"}", "ws")
	okc("params null", `{"id":"pn","method":"agent.ping","params":null,"expires_at":null}`, "pn")
	return hs
}

// mutate makes a random variant of a valid command: bytes flipped,
// inserted, deleted, or the payload cut.
func mutate(rnd *rand.Rand, i int) []byte {
	templates := []string{
		`{"id":"r%d","method":"agent.ping"}`,
		`{"id":"r%d","method":"relay.set","params":{"relay":"lamp","on":true,"for":"1s"}}`,
		`{"id":"r%d","method":"relay.toggle","params":{"relay":"lamp"},"expires_at":"2099-01-01T00:00:00Z"}`,
		`{"id":"r%d","method":"led.identify","params":{"for":"1s"}}`,
		`{"id":"r%d","method":"agent.status"}`,
	}
	b := []byte(fmt.Sprintf(templates[rnd.IntN(len(templates))], i))
	alphabet := []byte(`{}[]":,\ 0123456789.-+eEtruefalsn` + "\x00\xff\x7f")
	for n := 1 + rnd.IntN(4); n > 0 && len(b) > 1; n-- {
		j := 1 + rnd.IntN(len(b)-1) // keep the leading '{': a command, well formed or not
		switch rnd.IntN(4) {
		case 0:
			b[j] = alphabet[rnd.IntN(len(alphabet))]
		case 1:
			b = append(b[:j], append([]byte{alphabet[rnd.IntN(len(alphabet))]}, b[j:]...)...)
		case 2:
			b = append(b[:j], b[j+1:]...)
		case 3:
			b = b[:j]
		}
	}
	return b
}

// wantsReply says whether a payload gets a reply: one that starts with '{'
// (after white space) does, unless it is a JSON object without "method".
func wantsReply(p []byte) bool {
	t := bytes.TrimLeft(p, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	if !json.Valid(p) {
		return true
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		return true
	}
	_, ok := m["method"]
	return ok
}

var knownCodes = map[string]bool{"bad_json": true, "bad_command": true, "unknown_method": true, "unknown_relay": true,
	"bad_params": true, "expired": true, "interlocked": true, "hardware": true}

// runHostile sends every hostile payload through the broker, interleaved
// with pings. The agent must stay connected, store every payload
// byte-exact in order, and answer each command exactly once, in order,
// with the expected refusal.
func runHostile(e *env, p params, r *result) {
	rnd := rng(p, "hostile")
	m := e.scenarioBroker(r, "hostile", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("hostile")
	cfg := newAgentConfig("faults-hostile", m.URL)
	cfg.extra = hostileRelays
	_, a, st0, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer a.kill()
	notify := cfg.topic("notify")
	rl, pub, ok := e.cloudClients(r, m.URL, cfg, "faults-hostile")
	if !ok {
		return
	}
	defer rl.close()
	defer pub.Disconnect(100)

	cases := hostileCases()
	fixed := len(cases)
	for i := 0; i < p.hostileRand; i++ {
		pl := mutate(rnd, i)
		cases = append(cases, hostile{name: fmt.Sprintf("mutant %d %q", i, control.PayloadPrefix(pl, 60)), payload: pl, reply: wantsReply(pl)})
	}
	// A ping every 25 payloads: the agent keeps answering in between.
	var all []hostile
	for i, c := range cases {
		all = append(all, c)
		if i%25 == 24 {
			id := fmt.Sprintf("alive-%d", i)
			all = append(all, hostile{name: id, payload: []byte(`{"id":"` + id + `","method":"agent.ping"}`), reply: true, exact: true, id: str(id), ok: true})
		}
	}
	wantReplies := 0
	var bytesSent int
	for _, c := range all {
		if err := agenttest.PublishQoS1(pub, notify, c.payload, 10*time.Second); err != nil {
			r.fail("publish %s: %v", c.name, err)
			return
		}
		bytesSent += len(c.payload)
		if c.reply {
			wantReplies++
		}
	}
	st, err := waitStatus(cfg.dataDir, 60*time.Second, func(s status) bool {
		return s.Inbox.Total >= len(all) && s.Inbox.Pending == 0 && s.Outbox.Pending == 0
	})
	if err != nil {
		r.fail("%v\n%s", err, tail(a.Log(), 10))
		return
	}
	waitFor(10*time.Second, func() bool { return rl.len() >= wantReplies })
	time.Sleep(300 * time.Millisecond)

	// Connected throughout: the same connection as before the first payload.
	if !st.Connected || !st.Since.Equal(st0.Since) || !a.alive() {
		r.fail("the agent did not stay connected: connected=%v since %v (was %v) alive=%v", st.Connected, st.Since, st0.Since, a.alive())
	}
	// Every payload stored, byte-exact, in order.
	recs, err := export(cfg.dataDir)
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	if len(recs) != len(all) {
		r.fail("%d records stored, want %d", len(recs), len(all))
	}
	for i := 0; i < min(len(recs), len(all)); i++ {
		b, err := recs[i].Bytes()
		if err != nil || !bytes.Equal(b, all[i].payload) {
			r.fail("record %d (%s) not stored byte-exact", recs[i].Seq, all[i].name)
			break
		}
	}
	// One reply per command. A payload over 64 KiB is refused as it is
	// stored, its reply queued in the same commit; the others are answered
	// by the dispatcher after it. Each of the two kinds is answered in
	// order; between them, a refusal on arrival may overtake a dispatched
	// reply to an earlier payload.
	replies, raw := rl.snapshot()
	if len(replies) != wantReplies {
		r.fail("%d replies, want %d", len(replies), wantReplies)
	}
	var onArrival, dispatched []hostile
	for _, c := range all {
		switch {
		case !c.reply:
		case len(c.payload) > maxCommandBytes:
			onArrival = append(onArrival, c)
		default:
			dispatched = append(dispatched, c)
		}
	}
	bad := 0
	for j := range replies {
		got, gotRaw := replies[j], raw[j]
		var c hostile
		problem := ""
		switch {
		case len(onArrival) > 0 && checkReply(onArrival[0], got) == "":
			c, onArrival = onArrival[0], onArrival[1:]
		case len(dispatched) > 0:
			c, dispatched = dispatched[0], dispatched[1:]
			problem = checkReply(c, got)
		case len(onArrival) > 0:
			c, onArrival = onArrival[0], onArrival[1:]
			problem = checkReply(c, got)
		default:
			c.name, problem = "?", "a reply no command was waiting for"
		}
		// A refusal quotes the sender's words, bounded: the id (128
		// bytes) and 512 bytes of message, escaped.
		if problem == "" && got["ok"] == false && len(gotRaw) > 8<<10 {
			problem = fmt.Sprintf("a refusal of %d bytes", len(gotRaw))
		}
		if problem != "" {
			bad++
			if bad <= 8 {
				r.fail("%s: %s (reply %s)", c.name, problem, control.PayloadPrefix(gotRaw, 160))
			}
		}
	}
	if strings.Contains(a.Log(), agentPass) {
		r.fail("the MQTT password is in the agent's log")
	}
	r.fig("payloads", "%d (%d fixed, %d generated, %d pings), %.1f MiB", len(all), fixed, p.hostileRand, len(all)-len(cases), float64(bytesSent)/(1<<20))
	r.fig("stored byte-exact", "%d of %d", len(recs), len(all))
	r.fig("replies", "%d of %d expected; %d wrong", len(replies), wantReplies, bad)
	r.fig("connection", "kept (no reconnect)")
	summarise("hostile", "%d payloads: %d stored, %d commands answered, %d wrong replies, connection kept", len(all), len(recs), len(replies), bad)
}

func checkReply(c hostile, got map[string]any) string {
	if got == nil {
		return "reply is not a JSON object"
	}
	ok, isBool := got["ok"].(bool)
	if !isBool {
		return "reply has no boolean ok"
	}
	if !ok {
		e, _ := got["error"].(map[string]any)
		code, _ := e["code"].(string)
		msg, _ := e["message"].(string)
		if !knownCodes[code] || msg == "" {
			return fmt.Sprintf("error without a known code and a message: %v", e)
		}
	}
	if !c.exact {
		return ""
	}
	id, hasID := got["id"]
	switch {
	case c.id == nil && id != nil:
		return fmt.Sprintf("id %v, want null", id)
	case c.id != nil && (!hasID || id != *c.id):
		return fmt.Sprintf("id %q, want %q", id, control.PayloadPrefix([]byte(*c.id), 40))
	case ok != c.ok:
		return fmt.Sprintf("ok=%v, want %v", ok, c.ok)
	case !ok && errCode(got) != c.code:
		return fmt.Sprintf("code %q, want %q", errCode(got), c.code)
	}
	return ""
}
