package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/net/proxy"
)

// openBrokerConn is paho's connection opener for the schemes the config
// allows (config.ParseBroker), doing what paho's own does (the dialer's
// TCP_USER_TIMEOUT, a SOCKS proxy from all_proxy, the TLS handshake within
// the connect timeout), and wraps the connection in a sizeLimiter for what
// it reads and a writeCoalescer for what it writes. opened, if not nil, is
// given each new connection's writer (the session writes PUBACKs to it).
func openBrokerConn(dialer *net.Dialer, limit *oversizeMarker, opened func(*writeCoalescer)) mqtt.OpenConnectionFunc {
	wrap := func(c net.Conn) net.Conn {
		w := newWriteCoalescer(newSizeLimiter(c, limit))
		if opened != nil {
			opened(w)
		}
		return w
	}
	return func(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		switch uri.Scheme {
		case "tcp", "mqtt":
			return wrap(raw), nil
		case "ssl", "tls", "mqtts", "tcps":
			c := tls.Client(raw, opts.TLSConfig)
			ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
			defer cancel()
			if err := c.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return wrap(c), nil
		}
		_ = raw.Close()
		return nil, fmt.Errorf("unsupported broker scheme %q", uri.Scheme)
	}
}

// writeCoalescer sits between paho and the broker connection. paho writes
// every packet with a Write of its own, from one goroutine: draining a
// backlog that is one TLS record and one write(2) per PUBACK, which took a
// third of the agent's CPU, and the writer's ack loop waited on each. Here
// a Write only copies into a buffer; a goroutine of the coalescer's own
// writes out whatever has gathered meanwhile, so the acks of a 1000-message
// commit leave in a few records, while a lone reply still leaves at once.
//
// A write error is kept and returned by every later Write, and the
// connection is closed so paho's reader sees it too. Bytes accepted but not
// yet written when the connection fails are lost, like bytes in a socket
// buffer: an unsent PUBACK makes the broker send the message again (it is
// stored already), an unsent PUBLISH is sent again from the outbox.
type writeCoalescer struct {
	net.Conn

	mu      sync.Mutex
	cond    sync.Cond // buf gained data, lost data, or err/closing changed
	buf     []byte    // accepted, not yet handed to Conn.Write
	spare   []byte    // the other buffer, reused
	err     error     // sticky: the first write error, or net.ErrClosed
	closing bool
	done    chan struct{} // closed when flush returns
}

// coalesceMax bounds what Write buffers: beyond it, Write waits for the
// flush, as a full socket buffer would make it wait.
const coalesceMax = 64 << 10

// closeFlushTimeout bounds how long Close spends writing what is buffered
// (the last acks and the DISCONNECT) to a broker that does not read.
const closeFlushTimeout = 2 * time.Second

func newWriteCoalescer(c net.Conn) *writeCoalescer {
	w := &writeCoalescer{Conn: c, done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.flush()
	return w
}

func (w *writeCoalescer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && len(w.buf) > 0 && len(w.buf)+len(p) > coalesceMax {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	w.cond.Broadcast()
	return len(p), nil
}

// flush is the goroutine that writes: it owns the underlying Write. When a
// write fails it closes the connection, so the reader, and with it paho,
// notices; outside the lock, since tls.Conn.Close writes an alert that can
// wait seconds on a stuck connection, and Writers must see the error now.
func (w *writeCoalescer) flush() {
	defer close(w.done)
	if w.writeAll() != nil {
		_ = w.Conn.Close()
	}
}

// writeAll writes out what Write buffers until Close leaves nothing to
// write (nil) or a write fails (its error, kept in w.err).
func (w *writeCoalescer) writeAll() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.buf) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.buf) == 0 {
			return nil // closing, all written
		}
		out := w.buf
		w.buf = w.spare[:0]
		// buf is empty again: a Write waiting for room may go on filling
		// it while out is written.
		w.cond.Broadcast()
		w.mu.Unlock()
		_, err := w.Conn.Write(out)
		w.mu.Lock()
		w.spare = out[:0]
		if err != nil {
			w.err = err
			w.cond.Broadcast()
			return err
		}
		w.cond.Broadcast()
	}
}

// Close writes what is buffered (within closeFlushTimeout), then closes.
func (w *writeCoalescer) Close() error {
	w.mu.Lock()
	w.closing = true
	w.cond.Broadcast()
	w.mu.Unlock()
	_ = w.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	<-w.done
	w.mu.Lock()
	if w.err == nil {
		w.err = net.ErrClosed
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	return w.Conn.Close()
}

// directAck is a received QoS 1 message whose Ack writes its PUBACK straight
// into the writer of the connection it arrived on. paho's own Ack turns
// every acknowledgement into a formatted store key ("i.%d"), a store
// deletion, a packet, a channel send and a wake-up of paho's sending
// goroutine: 8% of the agent's CPU while draining a backlog, more than the
// bbolt commit the acknowledgement waits for. paho needs none of it for
// QoS 1 with manual acks (its store's inbound entries only protect QoS 2
// flows; see inboundlessStore). Ack is called once per message (the writer
// acknowledges each once, in receive order). The methods are spelt out on
// the pointer, not promoted from an embedded Message: promotion generates a
// second set for the value type, bytes the ARM binary has no room for.
type directAck struct {
	m   mqtt.Message
	out *writeCoalescer
}

func (d *directAck) Duplicate() bool   { return d.m.Duplicate() }
func (d *directAck) Qos() byte         { return d.m.Qos() }
func (d *directAck) Retained() bool    { return d.m.Retained() }
func (d *directAck) Topic() string     { return d.m.Topic() }
func (d *directAck) MessageID() uint16 { return d.m.MessageID() }
func (d *directAck) Payload() []byte   { return d.m.Payload() }

// Ack writes the PUBACK (MQTT 3.1.1 §3.4). An error means the connection
// is gone: the broker sends the message again.
func (d *directAck) Ack() {
	id := d.m.MessageID()
	_, _ = d.out.Write([]byte{0x40, 2, byte(id >> 8), byte(id)})
}

// inboundlessStore is paho's in-memory store without its entries for
// received QoS 1 PUBLISHes. paho puts each one there on arrival and deletes
// it in its own Ack, which directAck replaces, so they would pile up (up to
// 65,535 payloads). Nothing reads them: on a reconnect paho discards a
// received PUBLISH it finds there (the broker sends it again anyway).
// Everything else (our replies in flight, subscriptions) is kept as paho's
// MemoryStore keeps it.
type inboundlessStore struct{ s *mqtt.MemoryStore }

func newInboundlessStore() *inboundlessStore { return &inboundlessStore{mqtt.NewMemoryStore()} }

func (s *inboundlessStore) Put(key string, p packets.ControlPacket) {
	if pub, ok := p.(*packets.PublishPacket); ok && pub.Qos == 1 && strings.HasPrefix(key, "i.") {
		return
	}
	s.s.Put(key, p)
}

func (s *inboundlessStore) Open()                                { s.s.Open() }
func (s *inboundlessStore) Get(key string) packets.ControlPacket { return s.s.Get(key) }
func (s *inboundlessStore) All() []string                        { return s.s.All() }
func (s *inboundlessStore) Del(key string)                       { s.s.Del(key) }
func (s *inboundlessStore) Close()                               { s.s.Close() }
func (s *inboundlessStore) Reset()                               { s.s.Reset() }
