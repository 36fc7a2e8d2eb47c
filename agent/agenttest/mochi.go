package agenttest

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Mochi is an in-process mochi-mqtt broker with one TLS listener.
type Mochi struct {
	URL  string // tls://127.0.0.1:Port
	Port int
	Addr string // 127.0.0.1:Port

	server    *mochi.Server
	closeOnce sync.Once
	closeErr  error
}

// StartMochi starts a mochi-mqtt broker listening with TLS (1.2 or later,
// the PKI's server certificate, no client certificate asked) on a free
// port of 127.0.0.1. If users is empty any client may connect; otherwise
// a CONNECT must carry one of its user name and password pairs, and is
// refused with return code 5 (not authorised) if not, as mosquitto does.
// Every authenticated client may publish and subscribe to every topic.
// A nil logger discards mochi's log.
//
// Sessions: a client with clean session false keeps its subscriptions and
// QoS 1/2 messages queued while it is away, for as long as the broker runs
// (mochi keeps sessions in memory only).
func StartMochi(pki *PKI, users map[string]string, logger *slog.Logger) (*Mochi, error) {
	return StartMochiAddr(pki, users, logger, "127.0.0.1:0")
}

// StartMochiAddr is StartMochi on a given listen address (port 0 = free).
func StartMochiAddr(pki *PKI, users map[string]string, logger *slog.Logger, addr string) (*Mochi, error) {
	if pki == nil {
		return nil, errors.New("start mochi: no PKI")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pair, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("start mochi: server certificate: %w", err)
	}

	caps := mochi.NewDefaultServerCapabilities()
	// A disconnected 3.1.1 session (clean session false) is kept until this
	// many seconds after its client left: never, in practice.
	caps.MaximumSessionExpiryInterval = math.MaxUint32
	// 0 = queued messages never expire (mochi's default drops them after a
	// day offline, which a demo left overnight would hit).
	caps.MaximumMessageExpiryInterval = 0
	srv := mochi.New(&mochi.Options{
		Capabilities:           caps,
		Logger:                 logger,
		SysTopicResendInterval: 60,
	})
	if err := srv.AddHook(&passwordHook{users: maps.Clone(users)}, nil); err != nil {
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	ln, err := newMochiListener("tls", addr, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	})
	if err != nil {
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	if err := srv.AddListener(ln); err != nil {
		ln.ln.Close()
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	if err := srv.Serve(); err != nil { // returns at once, serving in goroutines
		srv.Close()
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	host, portStr, err := net.SplitHostPort(ln.Address())
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("start mochi: %w", err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on all addresses: reach it over loopback
	}
	port, _ := strconv.Atoi(portStr)
	hp := net.JoinHostPort(host, portStr)
	return &Mochi{URL: "tls://" + hp, Port: port, Addr: hp, server: srv}, nil
}

// MustMochi starts a mochi broker for a test and closes it on t.Cleanup.
func MustMochi(t testing.TB, pki *PKI, users map[string]string) *Mochi {
	t.Helper()
	m, err := StartMochi(pki, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Server returns the mochi server, for tests that inspect its clients or
// publish with an inline client.
func (m *Mochi) Server() *mochi.Server { return m.server }

// Close stops listening, disconnects every client and returns once every
// connection has ended: at once, or after 250 ms for a connection that has
// not sent its CONNECT yet (and at most about 5 s). Safe to call twice.
func (m *Mochi) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.server.Close() })
	return m.closeErr
}

// passwordHook authenticates CONNECTs against a fixed map and allows every
// topic. (mochi's hooks/auth would do, but it pulls in yaml.v3, which this
// module does not otherwise need.)
type passwordHook struct {
	mochi.HookBase
	users map[string]string
}

func (h *passwordHook) ID() string { return "agenttest-password" }

func (h *passwordHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate: mochi answers false with CONNACK "bad user name or
// password" (0x86), which it maps to 0x05 for MQTT 3.1.1 clients
// (packets.V5CodesToV3), the same code mosquitto sends.
func (h *passwordHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		return true
	}
	want, ok := h.users[string(pk.Connect.Username)]
	if !ok || !pk.Connect.PasswordFlag {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

func (h *passwordHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	return true
}

// Bounds for Mochi.Close: a grace period for mochi's own disconnects
// (DISCONNECT packets to MQTT 5 clients), then the connections are closed
// under it, then a last wait.
const (
	mochiCloseGrace = 250 * time.Millisecond
	mochiCloseWait  = 5 * time.Second
)

// mochiListener is a TLS listener for mochi (listeners.Listener) that, unlike
// listeners.TCP, has every connection it accepted ended before Close
// returns. mochi v2.7.9 calls ClientsWg.Add inside the connection goroutine,
// so with listeners.TCP a connection being set up races Server.Close's
// ClientsWg.Wait, which go test -race reports (mochi-mqtt/server issues
// #424, #488, #541). Waiting here for the connection goroutines orders every
// Add before that Wait, and makes Close mean "all connections are gone".
type mochiListener struct {
	id  string
	ln  net.Listener // bound by newMochiListener, before Serve and Close
	log *slog.Logger // set by Init, before Serve

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // one per connection goroutine; Add only under mu while !closed
}

func newMochiListener(id, addr string, tc *tls.Config) (*mochiListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &mochiListener{id: id, ln: tls.NewListener(ln, tc), conns: map[net.Conn]struct{}{}}, nil
}

func (l *mochiListener) ID() string       { return l.id }
func (l *mochiListener) Address() string  { return l.ln.Addr().String() }
func (l *mochiListener) Protocol() string { return "tcp" }

func (l *mochiListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *mochiListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()

		go func() {
			defer l.wg.Done()
			err := establish(l.id, c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			c.Close()
			if errors.Is(err, packets.ErrBadUsernameOrPassword) {
				l.log.Warn("connection refused", "remote", c.RemoteAddr(), "error", err)
			} else if err != nil {
				l.log.Debug("connection ended", "remote", c.RemoteAddr(), "error", err)
			}
		}()
	}
}

func (l *mochiListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()

	l.ln.Close()
	closeClients(l.id)
	if waitTimeout(&l.wg, mochiCloseGrace) {
		return
	}
	// Connections mochi does not know yet (mid-handshake, no CONNECT) or
	// that did not go: close them under their goroutines.
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	if !waitTimeout(&l.wg, mochiCloseWait) {
		l.log.Warn("connections still open after close", "wait", mochiCloseGrace+mochiCloseWait)
	}
}

// waitTimeout waits for wg up to d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
