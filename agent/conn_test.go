package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// countingConn counts the Writes that reach the connection and can be made
// slow, as a socket whose peer reads slowly.
type countingConn struct {
	net.Conn
	writes atomic.Int64
	delay  time.Duration
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	time.Sleep(c.delay)
	return c.Conn.Write(p)
}

// tcpPair is a real loopback TCP connection: a (the coalesced side) and b.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); acc <- c }()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestWriteCoalescerKeepsOrderAndCoalesces: 10,000 small writes (PUBACKs
// are 4 bytes) arrive intact and in order, in far fewer writes to the
// connection than Write calls.
func TestWriteCoalescerKeepsOrderAndCoalesces(t *testing.T) {
	a, b := tcpPair(t)
	cc := &countingConn{Conn: a, delay: 50 * time.Microsecond}
	w := newWriteCoalescer(cc)

	const n = 10_000
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	for i := range n {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)}
		want.Write(p)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want the %d written, in order", len(all), want.Len())
	}
	writes := cc.writes.Load()
	t.Logf("%d writes reached the connection for %d Write calls", writes, n)
	if writes > n/10 {
		t.Fatalf("%d writes reached the connection for %d Write calls: not coalesced", writes, n)
	}
}

// TestWriteCoalescerLoneWriteLeavesAtOnce: with nothing else to send, one
// Write reaches the peer without waiting for more.
func TestWriteCoalescerLoneWriteLeavesAtOnce(t *testing.T) {
	a, b := tcpPair(t)
	w := newWriteCoalescer(a)
	defer w.Close()
	if _, err := w.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q, %v; want ping without a further write", buf, err)
	}
}

// TestWriteCoalescerErrorIsSticky: once the connection fails, Write says so
// (paho then reports the connection lost) and keeps saying so.
func TestWriteCoalescerErrorIsSticky(t *testing.T) {
	a, b := tcpPair(t)
	w := newWriteCoalescer(a)
	b.Close()
	_ = a.(*net.TCPConn).SetLinger(0)
	a.Close() // the underlying write now fails
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = w.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("Write kept succeeding on a closed connection")
	}
	if _, err2 := w.Write([]byte("y")); err2 == nil {
		t.Fatal("the write error was not sticky")
	}
	if err := w.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("close: %v", err)
	}
}

// TestWriteCoalescerCloseBoundedByStuckPeer: a peer that never reads cannot
// hold Close (and so the agent's shutdown) past closeFlushTimeout, and a
// Write blocked on the full buffer is released with an error.
func TestWriteCoalescerCloseBoundedByStuckPeer(t *testing.T) {
	a, _ := tcpPair(t) // the peer never reads
	w := newWriteCoalescer(a)
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		chunk := make([]byte, 32<<10)
		for werr == nil {
			_, werr = w.Write(chunk) // fills socket buffers, then blocks
		}
	}()
	// Wait until the buffer is full: the writer is then blocked in Write
	// (the flush swaps the buffer out and wakes it, so it fills again
	// while the flush hangs on the peer).
	for full := false; !full; {
		w.mu.Lock()
		full = len(w.buf)+32<<10 > coalesceMax
		w.mu.Unlock()
		runtime.Gosched()
	}
	start := time.Now()
	w.Close()
	if took := time.Since(start); took > closeFlushTimeout+2*time.Second {
		t.Fatalf("Close took %v with a peer that does not read", took)
	}
	wg.Wait()
	if werr == nil {
		t.Fatal("blocked Write not released with an error")
	}
}

// received is a message as paho hands it to the handler (its Ack must not
// be called: directAck replaces it).
type received struct {
	id  uint16
	qos byte
	t   *testing.T
}

func (r received) Duplicate() bool   { return false }
func (r received) Qos() byte         { return r.qos }
func (r received) Retained() bool    { return false }
func (r received) Topic() string     { return "t" }
func (r received) MessageID() uint16 { return r.id }
func (r received) Payload() []byte   { return nil }
func (r received) Ack()              { r.t.Error("paho's Ack called; want the PUBACK written directly") }

// TestSessionReceiveAcksOnItsConnection: a QoS 1 message handed to the
// handler by the session acknowledges itself with a PUBACK of its packet id
// (0x40 0x02 id) on the newest connection, in the order acked; paho's own
// Ack is never called.
func TestSessionReceiveAcksOnItsConnection(t *testing.T) {
	a, b := tcpPair(t)
	s := &session{}
	s.handler = func(_ mqtt.Client, m mqtt.Message) { m.Ack() }
	s.out.Store(newWriteCoalescer(a))
	for _, id := range []uint16{0x1234, 1, 0xffff} {
		s.receive(nil, received{id: id, qos: 1, t: t})
	}
	if err := s.out.Load().(*writeCoalescer).Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	want := []byte{0x40, 2, 0x12, 0x34, 0x40, 2, 0, 1, 0x40, 2, 0xff, 0xff}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read % x, want % x", got, want)
	}
}

// TestInboundlessStoreDropsOnlyReceivedQoS1: received QoS 1 PUBLISHes are
// not kept (nothing would delete them: directAck bypasses paho's Ack), what
// we send is kept for paho's resume.
func TestInboundlessStoreDropsOnlyReceivedQoS1(t *testing.T) {
	s := newInboundlessStore()
	s.Open()
	in := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	in.Qos, in.MessageID = 1, 5
	out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	out.Qos, out.MessageID = 1, 5
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 6
	s.Put("i.5", in)
	s.Put("o.5", out)
	s.Put("i.6", rel)
	if s.Get("i.5") != nil {
		t.Error("a received QoS 1 PUBLISH was kept")
	}
	if s.Get("o.5") != out || s.Get("i.6") != rel {
		t.Error("an outbound PUBLISH or a PUBREL was not kept")
	}
}
