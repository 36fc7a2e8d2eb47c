package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestParseMosquittoDebug(t *testing.T) {
	const cid = "bench-x-r1-agent-latency-agent"
	const topic = "/sys/bench-x-r1-agent-latency/thing/push/notify"
	send := "2026-11-27T07:51:34: Sending PUBLISH to " + cid + " (d0, q1, r0, m17, '" + topic + "', ... (150 bytes))"
	if mid, dup, ok := parseSendPublish(send, cid, topic); !ok || mid != 17 || dup {
		t.Errorf("parseSendPublish = %d, %v, %v", mid, dup, ok)
	}
	again := "x: Sending PUBLISH to " + cid + " (d1, q1, r0, m17, '" + topic + "', ... (150 bytes))"
	if _, dup, ok := parseSendPublish(again, cid, topic); !ok || !dup {
		t.Errorf("a resent PUBLISH: dup %v ok %v", dup, ok)
	}
	for _, l := range []string{
		"x: Sending PUBLISH to " + cid + " (d0, q1, r1, m2, '/sys/other/thing/status', ... (6 bytes))",
		"x: Sending PUBLISH to " + cid + "-2 (d0, q1, r0, m17, '" + topic + "', ... (150 bytes))",
		"x: Received PUBLISH from " + cid + " (d0, q1, r0, m17, '" + topic + "', ... (150 bytes))",
	} {
		if _, _, ok := parseSendPublish(l, cid, topic); ok {
			t.Errorf("parseSendPublish accepted %q", l)
		}
	}
	if mid, ok := parsePuback("x: Received PUBACK from "+cid+" (Mid: 17, RC:0)", cid); !ok || mid != 17 {
		t.Errorf("parsePuback = %d, %v", mid, ok)
	}
	if _, ok := parsePuback("x: Sending PUBACK to "+cid+" (m17, rc0)", cid); ok {
		t.Error("parsePuback accepted the broker's own PUBACK")
	}
}

func TestPubackTracker(t *testing.T) {
	tr := newPubackTracker("a", "t", 3)
	t0 := time.Unix(100, 0)
	lines := []string{
		"Sending PUBLISH to a (d0, q1, r0, m5, 't', ... (150 bytes))",
		"Sending PUBLISH to a (d0, q1, r0, m6, 't', ... (150 bytes))",
		"Received PUBACK from a (Mid: 6, RC:0)",
		"Received PUBACK from a (Mid: 5, RC:0)",
		"Sending PUBLISH to a (d0, q1, r0, m5, 't', ... (150 bytes))", // id 5 reused
		"Received PUBACK from a (Mid: 5, RC:0)",
	}
	for i, l := range lines {
		tr.line(l, t0.Add(time.Duration(i)*time.Millisecond))
	}
	want := []time.Duration{3, 2, 5}
	for i, w := range want {
		if got := tr.acked[i].Sub(t0); got != w*time.Millisecond {
			t.Errorf("message %d acknowledged at +%v, want +%v", i, got, w*time.Millisecond)
		}
	}
	if tr.ackedCount() != 3 {
		t.Errorf("ackedCount = %d", tr.ackedCount())
	}
}

func TestSlogField(t *testing.T) {
	line := `time=2026-11-27T07:51:36.023Z level=INFO msg="relay switched" part=command relay=pump on=true until=0001-01-01T00:00:00.000Z id=bench-x-r1-cmd-000100`
	for key, want := range map[string]string{
		"time": "2026-11-27T07:51:36.023Z", "msg": "relay switched", "relay": "pump",
		"id": "bench-x-r1-cmd-000100", "on": "true", "missing": "",
	} {
		if got := slogField(line, key); got != want {
			t.Errorf("slogField(%q) = %q, want %q", key, got, want)
		}
	}
	if got := slogField(`msg="a \"quoted\" b" x=1`, "msg"); got != `a "quoted" b` {
		t.Errorf("escaped quotes: %q", got)
	}
}

func TestTransitionLog(t *testing.T) {
	tl := &transitionLog{pin: "GPIO17", byID: map[string]time.Time{}}
	t0 := time.Unix(0, 0)
	tl.line(`time=x level=INFO msg="sim gpio" part=hw pin=GPIO17 high=false initial=true`, t0)
	tl.line(`time=x level=INFO msg="sim gpio" part=hw pin=GPIO17 high=true initial=false`, t0.Add(time.Millisecond))
	tl.line(`time=x level=INFO msg="sim gpio" part=hw pin=GPIO22 high=true initial=false`, t0.Add(2*time.Millisecond))
	tl.line(`time=x level=INFO msg="relay switched" part=command relay=pump on=true id=c1`, t0.Add(3*time.Millisecond))
	tl.line(`time=x level=INFO msg="relay switched" part=command relay=pump on=true id=c2`, t0.Add(4*time.Millisecond))
	if got := tl.byID["c1"].Sub(t0); got != time.Millisecond {
		t.Errorf("c1's transition at +%v, want its sim gpio line's +1ms", got)
	}
	if got := tl.byID["c2"].Sub(t0); got != 4*time.Millisecond {
		t.Errorf("c2 without a gpio line: +%v, want its own line's +4ms", got)
	}
}

func TestProcParsers(t *testing.T) {
	stat := "1234 (edge agent) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 123 456 789"
	if got, err := parseStatCPU(stat); err != nil || got != 3.25 {
		t.Errorf("parseStatCPU = %v, %v; want 3.25", got, err)
	}
	status := "Name:\tedge-agent\nVmHWM:\t   18232 kB\nVmRSS:\t    9644 kB\n"
	m, err := parseStatusKB(status, "VmRSS", "VmHWM")
	if err != nil || m["VmRSS"] != 9644 || m["VmHWM"] != 18232 {
		t.Errorf("parseStatusKB = %v, %v", m, err)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Error("a missing field is no error")
	}
}

func TestMQTTPackets(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []byte
	}{{0, []byte{0x30, 0}}, {127, []byte{0x30, 0x7f}}, {128, []byte{0x30, 0x80, 0x01}}, {16383, []byte{0x30, 0xff, 0x7f}}, {16384, []byte{0x30, 0x80, 0x80, 0x01}}} {
		if got := fixedHeader(0x30, c.n); !bytes.Equal(got, c.want) {
			t.Errorf("fixedHeader(%d) = %x, want %x", c.n, got, c.want)
		}
	}
	p := appendPublish(nil, "a/b", 0x0102, []byte("hi"))
	want := []byte{0x32, 9, 0, 3, 'a', '/', 'b', 1, 2, 'h', 'i'}
	if !bytes.Equal(p, want) {
		t.Errorf("appendPublish = %x, want %x", p, want)
	}
	typ, body, err := readPacket(bufio.NewReader(bytes.NewReader(p)))
	if err != nil || typ != 3 || !bytes.Equal(body, want[2:]) {
		t.Errorf("readPacket = %d, %x, %v", typ, body, err)
	}
	conn := connectPacket("id", "u", "p", true)
	if conn[0] != 0x10 || conn[2+6] != 4 || conn[2+7] != 0xC2 {
		t.Errorf("CONNECT = %x", conn)
	}
	c := &pubConn{}
	c.nextID = 0xFFFF
	if id := c.id(); id != 1 {
		t.Errorf("packet id after 0xFFFF = %d, want 1 (never 0)", id)
	}
}

func TestNoise(t *testing.T) {
	busy, steal, err := parseProcStat("cpu  100 10 50 1000 5 3 2 7 0 0\ncpu0 1 2 3\n")
	if err != nil || math.Abs(busy-1.65) > 1e-9 || math.Abs(steal-0.07) > 1e-9 {
		t.Errorf("parseProcStat = %v, %v, %v; want 1.65, 0.07", busy, steal, err)
	}
	a := cpuSample{at: time.Unix(0, 0), busy: 10, ours: 4}
	b := cpuSample{at: time.Unix(10, 0), busy: 20, ours: 12, steal: 1}
	n := noiseBetween(a, b, 2)
	// 10 s busy of which 8 ours: 2 s of 20 CPU-seconds = 10%.
	if n.others < 0.0999 || n.others > 0.1001 || n.steal != 0.05 {
		t.Errorf("noise = %+v", n)
	}
}

func TestReplyParsers(t *testing.T) {
	for _, c := range []struct {
		parse    func([]byte) (string, string, bool)
		in       string
		id, fail string
		ok       bool
	}{
		{parseAgentReply, `{"id":"c1","ok":true,"result":{"on":true}}`, "c1", "", true},
		{parseAgentReply, `{"id":"c2","ok":false,"error":{"code":"interlocked"}}`, "c2", "interlocked", true},
		{parseAgentReply, `not json`, "", "", false},
		{parseAlinkReply, `{"id":"123","code":200,"data":{}}`, "123", "", true},
		{parseAlinkReply, `{"id":"124","code":460,"data":{},"message":"pump: bad"}`, "124", "code 460 pump: bad", true},
		{parseAlinkReply, `{"id":"125","data":{}}`, "", "", false},
	} {
		id, fail, ok := c.parse([]byte(c.in))
		if id != c.id || fail != c.fail || ok != c.ok {
			t.Errorf("%s: %q, %q, %v; want %q, %q, %v", c.in, id, fail, ok, c.id, c.fail, c.ok)
		}
	}
	var v struct {
		ID     string         `json:"id"`
		Method string         `json:"method"`
		Params map[string]int `json:"params"`
	}
	if err := json.Unmarshal(propertySet("9", true), &v); err != nil || v.ID != "9" || v.Method != "thing.service.property.set" || v.Params["PowerSwitch"] != 1 {
		t.Errorf("propertySet: %+v, %v", v, err)
	}
}
