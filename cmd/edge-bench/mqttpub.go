package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// pubConn is a minimal MQTT 3.1.1 publisher over TLS: CONNECT, pipelined
// QoS 1 PUBLISH, PUBACK. The bench's publishers must outrun every subject;
// paho's per-message tokens and channel hops cost more CPU per message than
// mosquitto does, so on two cores a paho flood measures paho.
type pubConn struct {
	conn net.Conn
	w    *bufio.Writer
	wmu  sync.Mutex // one writer at a time: publish loop, disconnect

	nextID uint16

	// window bounds the QoS 1 messages not yet acknowledged.
	window chan struct{}
	// onAck, when set, is called by the reader for each PUBACK.
	ackMu sync.Mutex
	onAck func(id uint16, at time.Time)

	readErr  chan error // the reader's end
	closeMux sync.Once
}

// dialPub connects as clientID with a clean session (or not) and a window
// of unacknowledged messages. Keepalive 0: the bench's connections live
// for seconds and must not need a ping loop.
func dialPub(addr string, tc *tls.Config, user, pass, clientID string, clean bool, window int) (*pubConn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, tc)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", clientID, err)
	}
	c := &pubConn{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), window: make(chan struct{}, max(window, 1)),
		readErr: make(chan error, 1)}
	if _, err := conn.Write(connectPacket(clientID, user, pass, clean)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", clientID, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(conn, 64<<10)
	typ, body, err := readPacket(r)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", clientID, err)
	}
	if typ != 2 || len(body) != 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connect %s: refused (packet type %d, %x)", clientID, typ, body)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read(r)
	return c, nil
}

// connectPacket is CONNECT for MQTT 3.1.1 (§3.1) with user name and
// password, keepalive 0.
func connectPacket(clientID, user, pass string, clean bool) []byte {
	var v []byte
	v = appendStr(v, "MQTT")
	v = append(v, 4) // protocol level 3.1.1
	flags := byte(0xC0)
	if clean {
		flags |= 0x02
	}
	v = append(v, flags, 0, 0) // keepalive 0
	v = appendStr(v, clientID)
	v = appendStr(v, user)
	v = appendStr(v, pass)
	return append(fixedHeader(0x10, len(v)), v...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// fixedHeader is the packet type byte and the remaining length (§2.2.3).
func fixedHeader(typ byte, n int) []byte {
	b := []byte{typ}
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// appendPublish appends a QoS 1 PUBLISH (§3.3) of payload to topic.
func appendPublish(b []byte, topic string, id uint16, payload []byte) []byte {
	b = append(b, fixedHeader(0x32, 2+len(topic)+2+len(payload))...)
	b = appendStr(b, topic)
	b = binary.BigEndian.AppendUint16(b, id)
	return append(b, payload...)
}

// readPacket reads one packet: its type (high nibble) and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h >> 4, body, nil
}

// read releases a window slot per PUBACK until the connection ends.
func (c *pubConn) read(r *bufio.Reader) {
	for {
		typ, body, err := readPacket(r)
		if err != nil {
			c.readErr <- err
			return
		}
		if typ != 4 || len(body) < 2 { // PUBACK; nothing else is expected
			continue
		}
		at := time.Now()
		c.ackMu.Lock()
		fn := c.onAck
		c.ackMu.Unlock()
		if fn != nil {
			fn(binary.BigEndian.Uint16(body), at)
		}
		select {
		case <-c.window:
		default:
		}
	}
}

func (c *pubConn) setOnAck(fn func(id uint16, at time.Time)) {
	c.ackMu.Lock()
	c.onAck = fn
	c.ackMu.Unlock()
}

// id is the next packet identifier, never 0 (§2.3.1). With a window far
// below 65535 an id is acknowledged long before it comes round again.
func (c *pubConn) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// floodResult is one flood as the publisher saw it.
type floodResult struct {
	first    time.Time // first PUBLISH handed to the socket
	lastAck  time.Time // the n-th PUBACK
	n        int
	publishD time.Duration
}

// flood publishes n messages to topic as fast as the broker acknowledges
// them, keeping the window full, and returns when all are acknowledged.
func (c *pubConn) flood(topic string, n int, payload func(i int) []byte) (floodResult, error) {
	var (
		mu    sync.Mutex
		acked int
		last  time.Time
		done  = make(chan struct{})
	)
	c.setOnAck(func(_ uint16, at time.Time) {
		mu.Lock()
		acked++
		if acked == n {
			last = at
			close(done)
		}
		mu.Unlock()
	})
	defer c.setOnAck(nil)
	res := floodResult{n: n}
	buf := make([]byte, 0, 512)
	for i := 0; i < n; i++ {
		select {
		case c.window <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait for a slot.
			if err := c.flush(); err != nil {
				return res, err
			}
			select {
			case c.window <- struct{}{}:
			case err := <-c.readErr:
				return res, fmt.Errorf("flood: connection lost after %d: %v", i, err)
			case <-time.After(30 * time.Second):
				return res, fmt.Errorf("flood: no PUBACK for 30 s after %d messages", i)
			}
		}
		buf = appendPublish(buf[:0], topic, c.id(), payload(i))
		c.wmu.Lock()
		_, err := c.w.Write(buf)
		c.wmu.Unlock()
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.first = time.Now()
		}
	}
	if err := c.flush(); err != nil {
		return res, err
	}
	select {
	case <-done:
	case err := <-c.readErr:
		return res, fmt.Errorf("flood: connection lost before the last PUBACK: %v", err)
	case <-time.After(60 * time.Second):
		return res, errors.New("flood: the last PUBACKs did not come within 60 s")
	}
	mu.Lock()
	res.lastAck = last
	mu.Unlock()
	res.publishD = res.lastAck.Sub(res.first)
	return res, nil
}

// paced publishes n messages to topic, one every `every`, each sent
// immediately (not waiting for the previous PUBACK); payload gets the
// send time. It returns each message's send time and waits for the last
// PUBACK.
func (c *pubConn) paced(topic string, n int, every time.Duration, payload func(i int, at time.Time) []byte) ([]time.Time, error) {
	var (
		mu    sync.Mutex
		acked int
		done  = make(chan struct{})
	)
	c.setOnAck(func(uint16, time.Time) {
		mu.Lock()
		acked++
		if acked == n {
			close(done)
		}
		mu.Unlock()
	})
	defer c.setOnAck(nil)
	sent := make([]time.Time, n)
	start := time.Now()
	buf := make([]byte, 0, 512)
	for i := 0; i < n; i++ {
		// Absolute schedule: a late send does not shift the ones after it.
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		select {
		case c.window <- struct{}{}:
		case err := <-c.readErr:
			return sent, fmt.Errorf("paced: connection lost: %v", err)
		}
		at := time.Now()
		buf = appendPublish(buf[:0], topic, c.id(), payload(i, at))
		c.wmu.Lock()
		_, err := c.w.Write(buf)
		if err == nil {
			err = c.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return sent, err
		}
		sent[i] = at
	}
	select {
	case <-done:
	case err := <-c.readErr:
		return sent, fmt.Errorf("paced: connection lost before the last PUBACK: %v", err)
	case <-time.After(30 * time.Second):
		return sent, errors.New("paced: the last PUBACKs did not come within 30 s")
	}
	return sent, nil
}

func (c *pubConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

// close sends DISCONNECT (§3.14: the will is not published) and closes.
func (c *pubConn) close() {
	c.closeMux.Do(func() {
		c.wmu.Lock()
		_, _ = c.w.Write([]byte{0xE0, 0})
		_ = c.w.Flush()
		c.wmu.Unlock()
		_ = c.conn.Close()
	})
}
