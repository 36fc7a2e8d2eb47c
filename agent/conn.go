package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// openBrokerConn is paho's connection opener for the schemes the config
// allows (config.ParseBroker), doing what paho's own does (the dialer's
// TCP_USER_TIMEOUT, a SOCKS proxy from all_proxy, the TLS handshake within
// the connect timeout), and wraps the connection in a sizeLimiter for what
// it reads and a writeCoalescer for what it writes.
func openBrokerConn(dialer *net.Dialer, limit *oversizeMarker) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		switch uri.Scheme {
		case "tcp", "mqtt":
			return newWriteCoalescer(newSizeLimiter(raw, limit)), nil
		case "ssl", "tls", "mqtts", "tcps":
			c := tls.Client(raw, opts.TLSConfig)
			ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
			defer cancel()
			if err := c.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return newWriteCoalescer(newSizeLimiter(c, limit)), nil
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
