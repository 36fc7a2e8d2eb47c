package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// What a publisher can send must not wedge, bloat or mislead the agent.

// startWriter runs a writer on db for the test's lifetime.
func startWriter(t *testing.T, db *store.DB) *writer {
	t.Helper()
	w := newWriter(writerConfig{Inbox: db, Health: newHealth(time.Now()), Log: quietLogger(), NotifyTopic: "n", ReplyTopic: "r"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// ackCounter counts acks and tells when n have come.
type ackCounter struct {
	mu   sync.Mutex
	n    int
	want int
	all  chan struct{}
}

func newAckCounter(want int) *ackCounter { return &ackCounter{want: want, all: make(chan struct{})} }

func (a *ackCounter) ack() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	if a.n == a.want {
		close(a.all)
	}
}

func (a *ackCounter) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-a.all:
	case <-time.After(d):
		a.mu.Lock()
		defer a.mu.Unlock()
		t.Fatalf("%d of %d messages acknowledged after %v: ingest is wedged", a.n, a.want, d)
	}
}

// A batch holding more pending bytes than retain_bytes is split and stored
// in parts as the dispatcher makes room, instead of being retried whole
// forever (reproduced on the old writer with 3000 QoS 0 × 2 KB commands and
// retain_bytes = 512KiB).
func TestWriterSplitsBatchOverPendingBound(t *testing.T) {
	db, err := store.Open(t.TempDir(), &store.Options{RetainBytes: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	freed := newWake()
	w := newWriter(writerConfig{Inbox: db, Health: newHealth(time.Now()), Log: quietLogger(), NotifyTopic: "n", Freed: freed})

	const n = 600
	acks := newAckCounter(n)
	pad := strings.Repeat("x", 2000)
	for i := range n {
		w.enqueue(inbound{ack: acks.ack, msg: store.Message{ReceivedAt: time.Now(), Topic: "n",
			Payload: fmt.Appendf(nil, `{"id":"c%d","method":"agent.ping","pad":%q}`, i, pad)}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	// The dispatcher's part: handle what is pending, and say so.
	go func() {
		for ctx.Err() == nil {
			seqs, _ := db.PendingSeqs(0, 100)
			if len(seqs) > 0 {
				if _, err := db.Apply(store.Change{Handled: seqs}); err == nil {
					freed.poke()
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	acks.wait(t, 30*time.Second)
	cancel()
	<-done
	st, _ := db.Stats()
	if st.LastSeq != n {
		t.Errorf("last seq %d, want %d: every message stored once", st.LastSeq, n)
	}
}

type reply0 struct {
	ID    *string
	OK    bool
	Error struct{ Code, Message string }
}

func outboxReplies(t *testing.T, db *store.DB) []reply0 {
	t.Helper()
	out, err := db.Outbox(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var rs []reply0
	for _, m := range out {
		var r reply0
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatalf("reply %q: %v", m.Payload, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// Messages that must never run are stored, acknowledged and refused with
// bad_command as they arrive, never held pending, and do not stop the
// message after them.
func TestWriterRefusesOnArrival(t *testing.T) {
	big := func(n int) []byte {
		return fmt.Appendf(nil, `{"id":"big","method":"relay.set","params":{"relay":"pump","on":true},"pad":%q}`, strings.Repeat("x", n))
	}
	tests := []struct {
		name     string
		retain   int64
		msg      store.Message
		wantID   string // "" = null
		wantText string
	}{
		{"retained command", 0,
			store.Message{Topic: "n", Retained: true, Payload: []byte(`{"id":"r1","method":"relay.set","params":{"relay":"pump","on":true}}`)},
			"r1", "retained"},
		{"600 KiB command, retain_bytes 512KiB", 512 << 10,
			store.Message{Topic: "n", Payload: big(600 << 10)}, "big", "at most"},
		{"oversize marker of a command", 0,
			store.Message{Topic: "n", Oversize: 100 << 20, Payload: []byte(`{"id":"o1","method":"relay.set","par`)},
			"", "max_message_size"},
		{"command larger than retain_bytes", 32 << 10,
			store.Message{Topic: "n", Payload: big(40 << 10)}, "big", "retain_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts *store.Options
			if tt.retain > 0 {
				opts = &store.Options{RetainBytes: tt.retain}
			}
			db, err := store.Open(t.TempDir(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			w := startWriter(t, db)
			acks := newAckCounter(2)
			tt.msg.ReceivedAt = time.Now()
			w.enqueue(inbound{msg: tt.msg, ack: acks.ack})
			w.enqueue(inbound{msg: store.Message{ReceivedAt: time.Now(), Topic: "n", Payload: []byte("after")}, ack: acks.ack})
			acks.wait(t, 10*time.Second)

			st, _ := db.Stats()
			if st.Pending != 0 || st.LastSeq != 2 {
				t.Errorf("stats %+v: want 2 records, none pending", st)
			}
			rs := outboxReplies(t, db)
			if len(rs) != 1 {
				t.Fatalf("%d replies, want 1 refusal", len(rs))
			}
			r := rs[0]
			gotID := ""
			if r.ID != nil {
				gotID = *r.ID
			}
			if r.OK || r.Error.Code != codeBadCommand || gotID != tt.wantID || !strings.Contains(r.Error.Message, tt.wantText) {
				t.Errorf("reply %+v (id %q), want bad_command for id %q mentioning %q", r, gotID, tt.wantID, tt.wantText)
			}
			if in, _ := w.stats.status(); in.Refused != 1 {
				t.Errorf("status ingest.refused = %d, want 1", in.Refused)
			}
		})
	}
}

// The writer's queue is bounded in bytes: a publisher's large messages wait
// at the handler (and so at the broker) instead of piling up in memory.
func TestWriterQueueBoundedInBytes(t *testing.T) {
	w := newWriter(writerConfig{Health: newHealth(time.Now()), Log: quietLogger()})
	msg := func() inbound {
		return inbound{msg: store.Message{Topic: "t", Payload: make([]byte, 1<<20)}, ack: func() {}}
	}
	queued := 0
	for queued < 100 {
		ok := make(chan bool, 1)
		go func() { ok <- w.enqueue(msg()) }()
		select {
		case <-ok:
			queued++
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	close(w.done) // as when the writer stops: waiting handlers give up
	if queued*(1<<20) > queueBytes {
		t.Fatalf("%d MiB queued without a writer; the bound is %d MiB", queued, queueBytes>>20)
	}
	if queued == 0 {
		t.Fatal("not even one message was let in")
	}
}

// streamConn is a net.Conn whose reads come from r.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c streamConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func publishBytes(t *testing.T, topic string, qos byte, id uint16, retain bool, payload []byte) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Retain, p.Payload = topic, qos, id, retain, payload
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zeros is an endless reader of zero bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// The size limiter hands paho a PUBLISH over the limit as a small marker
// with the same topic, flags and packet id, reading the payload away in
// pieces; everything else passes unchanged.
func TestSizeLimiterRewritesOversizePublish(t *testing.T) {
	m := newOversizeMarker(1 << 20)
	small := publishBytes(t, "a/b", 1, 5, false, []byte("hello"))
	const bigSize = 50 << 20
	// A 50 MB PUBLISH streamed, never materialised: header, topic, id,
	// "{" and then zeros.
	bigHead := publishBytes(t, "big/topic", 1, 7, true, []byte(`{"method"`))
	remaining := 2 + len("big/topic") + 2 + bigSize // topic length, topic, packet id, payload
	hdr := []byte{bigHead[0]}
	hdr = appendLength(hdr, int64(remaining))
	varHeader := bigHead[len(bigHead)-len(`{"method"`)-(2+len("big/topic")+2) : len(bigHead)-len(`{"method"`)]
	big := io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(varHeader), bytes.NewReader([]byte(`{"method"`)),
		io.LimitReader(zeros{}, bigSize-int64(len(`{"method"`))))
	ping := []byte{0xd0, 0}
	qos0 := publishBytes(t, "q0", 0, 0, false, make([]byte, 2<<20))

	l := newSizeLimiter(streamConn{r: io.MultiReader(bytes.NewReader(small), big, bytes.NewReader(ping), bytes.NewReader(qos0))}, m)

	got, err := packets.ReadPacket(l)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.(*packets.PublishPacket); p.TopicName != "a/b" || p.MessageID != 5 || string(p.Payload) != "hello" {
		t.Fatalf("small publish changed: %+v", p)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err = packets.ReadPacket(l)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*packets.PublishPacket)
	if p.TopicName != "big/topic" || p.MessageID != 7 || p.Qos != 1 || !p.Retain {
		t.Fatalf("oversize publish: topic %q id %d qos %d retain %v; want big/topic, 7, 1, true", p.TopicName, p.MessageID, p.Qos, p.Retain)
	}
	size, head, ok := m.decode(p.Payload)
	if !ok || size != bigSize || len(head) != oversizeHead || !bytes.HasPrefix(head, []byte(`{"method"`)) {
		t.Fatalf("marker: ok %v size %d head %d bytes %q", ok, size, len(head), head[:min(len(head), 12)])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a 50 MB message allocated %d bytes; the limit is 1 MiB", alloc)
	}

	if got, err = packets.ReadPacket(l); err != nil || got.Details().Qos != 0 {
		t.Fatalf("ping after the oversize message: %v %v", got, err)
	}
	if _, ok := got.(*packets.PingrespPacket); !ok {
		t.Fatalf("got %T, want the PINGRESP", got)
	}
	got, err = packets.ReadPacket(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := m.decode(got.(*packets.PublishPacket).Payload); !ok {
		t.Fatal("a 2 MiB QoS 0 message was not marked")
	}
	// A publisher cannot forge a marker: another process's token.
	if _, _, ok := newOversizeMarker(1 << 20).decode(p.Payload); ok {
		t.Fatal("a marker of another token was taken as one")
	}
}

func TestSizeLimiterRefusesHugeControlPacket(t *testing.T) {
	hdr := appendLength([]byte{0x90}, 1<<20) // SUBACK claiming 1 MiB
	l := newSizeLimiter(streamConn{r: io.MultiReader(bytes.NewReader(hdr), zeros{})}, newOversizeMarker(1<<20))
	if _, err := packets.ReadPacket(l); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("err = %v, want a refusal of the oversize control packet", err)
	}
}

// failingLookups is a store whose command-id lookups fail while fail is set.
type failingLookups struct {
	*store.DB
	mu   sync.Mutex
	fail bool
}

func (f *failingLookups) LookupCommand(id string) (store.Command, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return store.Command{}, false, errors.New("read: input/output error")
	}
	return f.DB.LookupCommand(id)
}

func testBank(t *testing.T, cfgs ...relay.Config) (*relay.Bank, *brokenLine) {
	t.Helper()
	line := &brokenLine{}
	bank, err := relay.Open(cfgs, func(string, bool) (relay.Line, error) { return line, nil }, relay.BootStates(cfgs, nil, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return bank, line
}

// At most once fails closed: while the store cannot say whether an id ran,
// the command waits; it runs once the store answers.
func TestDispatcherLookupFailsClosed(t *testing.T) {
	db := openTestStore(t)
	st := &failingLookups{DB: db, fail: true}
	bank, _ := testBank(t, relay.Config{Name: "pump", Pin: "P1"})
	d := &dispatcher{db: st, bank: bank, log: quietLogger(), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: time.Now}
	if _, err := db.Append([]store.Message{{Topic: "n", Pending: true,
		Payload: []byte(`{"id":"x1","method":"relay.set","params":{"relay":"pump","on":true}}`)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	d.drain(ctx)
	cancel()
	if s, _ := bank.State("pump"); s.On {
		t.Fatal("the relay switched although the store could not say whether the command ran before")
	}
	if s, _ := db.Stats(); s.Pending != 1 {
		t.Fatalf("pending = %d, want the command still pending", s.Pending)
	}
	st.mu.Lock()
	st.fail = false
	st.mu.Unlock()
	d.drain(context.Background())
	if s, _ := bank.State("pump"); !s.On {
		t.Fatal("the relay did not switch once the store answered")
	}
}

type identifyCounter struct{ calls []time.Duration }

func (c *identifyCounter) Identify(d time.Duration) { c.calls = append(c.calls, d) }

func dispatchOne(t *testing.T, d *dispatcher, db *store.DB, payload string) reply0 {
	t.Helper()
	before := len(outboxReplies(t, db))
	if _, err := db.Append([]store.Message{{Topic: "n", Pending: true, Payload: []byte(payload)}}); err != nil {
		t.Fatal(err)
	}
	d.drain(context.Background())
	rs := outboxReplies(t, db)
	if len(rs) != before+1 {
		t.Fatalf("%d new replies, want 1", len(rs)-before)
	}
	return rs[len(rs)-1]
}

// led.identify is at most once like every command: an id recorded as
// started (a crash after the LEDs began) is finished, not blinked again;
// and its duration is bounded.
func TestIdentifyAtMostOnceAndBounded(t *testing.T) {
	db := openTestStore(t)
	leds := &identifyCounter{}
	bank, _ := testBank(t)
	d := &dispatcher{db: db, bank: bank, leds: leds, log: quietLogger(), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: time.Now}

	r := dispatchOne(t, d, db, `{"id":"i1","method":"led.identify","params":{"for":"5s"}}`)
	if !r.OK || len(leds.calls) != 1 {
		t.Fatalf("first identify: reply %+v, %d calls", r, len(leds.calls))
	}
	if c, ok, _ := db.LookupCommand("i1"); !ok || !c.Done {
		t.Fatalf("identify's id not recorded: %+v %v", c, ok)
	}
	// A crash after the LEDs started: the id is recorded started, not done.
	if _, err := db.Apply(store.Change{Command: &store.CommandChange{ID: "i2",
		Command: store.Command{Seq: 99, Reply: okReply("i2", map[string]string{"identify": "5s"})}}}); err != nil {
		t.Fatal(err)
	}
	r = dispatchOne(t, d, db, `{"id":"i2","method":"led.identify","params":{"for":"5s"}}`)
	if !r.OK || len(leds.calls) != 1 {
		t.Fatalf("redelivered identify after a crash: reply %+v, %d calls; want its reply and no new blink", r, len(leds.calls))
	}
	r = dispatchOne(t, d, db, `{"id":"i3","method":"led.identify","params":{"for":"2562047h"}}`)
	if r.OK || r.Error.Code != codeBadParams || len(leds.calls) != 1 {
		t.Fatalf("identify for 2562047h: reply %+v, %d calls; want bad_params", r, len(leds.calls))
	}
}

// A sender's text is bounded in the agent's log lines, and replies speak
// the sender's terms, not encoding/json's Go types.
func TestHostileTextBoundedInLogsAndReplies(t *testing.T) {
	db := openTestStore(t)
	var logs bytes.Buffer
	bank, _ := testBank(t, relay.Config{Name: "pump", Pin: "P1"})
	d := &dispatcher{db: db, bank: bank, log: slog.New(slog.NewTextHandler(&logs, nil)), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: time.Now}

	method := strings.Repeat("m", 1<<20)
	r := dispatchOne(t, d, db, `{"id":"a","method":"`+method+`"}`)
	if r.Error.Code != codeUnknownMethod {
		t.Fatalf("reply %+v", r)
	}
	if logs.Len() > 4096 {
		t.Errorf("a 1 MB method made %d bytes of log", logs.Len())
	}
	r = dispatchOne(t, d, db, `{"id":"b","method":"relay.set","params":{"relay":"pump","on":"yes"}}`)
	if r.Error.Code != codeBadParams || strings.Contains(r.Error.Message, "Go") || strings.Contains(r.Error.Message, "json:") ||
		!strings.Contains(r.Error.Message, "params.on must be true or false") {
		t.Errorf("bad_params message %q leaks Go internals or does not say what is wrong", r.Error.Message)
	}
	r = dispatchOne(t, d, db, `{"id":"c","method":"relay.set","params":{"relay":"pump","on":true,"fro":"5s"}}`)
	if !strings.Contains(r.Error.Message, `unknown param "fro" (known: relay, on, for)`) {
		t.Errorf("unknown param message %q", r.Error.Message)
	}
}

// The control socket's relay set goes the commands' way: a negative `for`
// is refused, max_on caps what is applied and the caller learns it, and a
// line that cannot be driven leaves the recorded state as it was.
func TestLocalRelayIsTheCommandPath(t *testing.T) {
	db := openTestStore(t)
	bank, line := testBank(t, relay.Config{Name: "pump", Pin: "P1", MaxOn: 10 * time.Minute})
	d := &dispatcher{db: db, bank: bank, log: quietLogger(), notifyTopic: "n", replyTopic: "r",
		status: func() Status { return Status{} }, now: time.Now}
	ctx := context.Background()

	if _, err := d.setLocal(ctx, relayRequest{name: "pump", on: true, dur: -5 * time.Second}); err == nil {
		t.Fatal("relay set pump on -for -5s was accepted")
	}
	if s, _ := bank.State("pump"); s.On {
		t.Fatal("a refused request switched the relay")
	}
	st, err := d.setLocal(ctx, relayRequest{name: "pump", on: true, dur: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Deadline.Sub(st.Since); got != 10*time.Minute {
		t.Errorf("applied for %v, want max_on's 10m reported back", got)
	}
	line.fail = true
	if _, err := d.setLocal(ctx, relayRequest{name: "pump", on: false}); err == nil {
		t.Fatal("a failed GPIO write was reported as done")
	}
	if rs, _ := db.Relays(); !rs["pump"].On {
		t.Error("the store says off after the GPIO write failed; it must keep the state the relay is in")
	}
}
