package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/store"
)

// sessionConfig is what the session needs, already resolved from the
// configuration file.
type sessionConfig struct {
	ClientID    string
	NotifyTopic string
	// RuleTopics are the [[rule]] filters, subscribed beside NotifyTopic.
	RuleTopics  []string
	StatusTopic string // "" = no online/offline status
	Keepalive   time.Duration
	Insecure    bool // TLS verification is off: warned about at every connect
	// Oversize bounds an inbound message's payload (max_message_size) and
	// marks the ones over it; nil = no bound.
	Oversize *oversizeMarker
}

// endpoint is where and as whom one connection attempt connects (secrets
// included, so it is never logged whole).
type endpoint struct {
	_         noEq        // never compared: no equality function in the binary
	BrokerURL string      // "tls://host:port" or "tcp://host:port"
	TLS       *tls.Config // nil for a plaintext broker
	Username  string
	Password  string
	// CertAsked is set when the broker asked for a client certificate
	// during the handshake (nil without TLS).
	CertAsked *atomic.Bool
	HasCert   bool // a client certificate is configured
}

func (e endpoint) same(o endpoint) bool {
	return e.BrokerURL == o.BrokerURL && e.Username == o.Username && e.Password == o.Password
}

// credSource supplies the endpoint: from the configuration, or from the
// account service (bootstrap).
type credSource interface {
	// endpoint returns what to connect with now.
	endpoint(ctx context.Context) (endpoint, error)
	// refused says the broker refused the credentials (CONNACK 4 or 5):
	// the next endpoint call fetches new ones where that is possible.
	refused()
	// refreshAt is when the credentials should be fetched again while
	// connected; zero = never.
	refreshAt() time.Time
	// refresh fetches them again and says whether the endpoint changed.
	refresh(ctx context.Context) (changed bool, err error)
}

const (
	connectTimeout = 15 * time.Second
	opTimeout      = 10 * time.Second // SUBACK, status PUBACK
	statusOnline   = "online"
	statusOffline  = "offline"
)

// session owns the paho client: it connects, subscribes on every connect,
// reconnects with jittered backoff, and hands each message to the writer.
type session struct {
	sessionDeps
	now func() time.Time

	// beat is stamped by the loop at least every heartbeatEvery, while it
	// waits too: the watchdog's proof that the session is not wedged.
	beat heartbeat

	lost chan error // connection-lost notifications from paho

	// out is the writer of the newest broker connection: received
	// messages are acknowledged into it (receive). An atomic.Value, not
	// atomic.Pointer[writeCoalescer]: the generic instance cost the ARM
	// binary 1.7 KB of its last few KB of rodata.
	out atomic.Value // *writeCoalescer
}

// sessionDeps is what the session is built with.
type sessionDeps struct {
	cfg     sessionConfig
	creds   credSource
	health  *health
	log     *slog.Logger
	handler mqtt.MessageHandler
	backoff *backoff.Backoff

	outbox     outboxStore // replies to publish; nil = none
	outboxWake wake        // poked when replies were queued
	onBacklog  func()      // replies were acknowledged: what is pending changed
}

// outboxStore is what the session needs of the store to publish replies.
type outboxStore interface {
	Outbox(after uint64, max int) ([]store.OutMsg, error)
	DeleteOutbox(ids ...uint64) error
}

func newSession(d sessionDeps) *session {
	if d.backoff == nil {
		d.backoff = &backoff.Backoff{Min: reconnectMin, Max: reconnectMax, Jitter: true}
	}
	return &session{sessionDeps: d, now: time.Now, lost: make(chan error, 1)}
}

func (s *session) options(ep endpoint) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(ep.BrokerURL).
		SetClientID(s.cfg.ClientID).
		SetUsername(ep.Username).
		SetPassword(ep.Password).
		// A stable client id plus CleanSession(false) makes the broker keep
		// QoS 1 messages while the gateway is away (docs/dependencies.md#paho-persistent-session).
		SetCleanSession(false).
		// 3.1.1 only: paho's silent fallback to 3.1 hides the real CONNACK code.
		SetProtocolVersion(4).
		SetKeepAlive(s.cfg.Keepalive).
		// A half-open connection is noticed within keepalive plus this.
		SetPingTimeout(min(10*time.Second, s.cfg.Keepalive)).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(opTimeout).
		// We own reconnection (jitter, a cap near a minute, a state an
		// operator can read); paho's own has no jitter and a 10-minute cap.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		// Acks go out only after the commit, in receive order (§4.6).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		// Session messages arrive before the SUBACK: a default handler makes
		// sure none of them goes unrouted and so unacknowledged forever.
		SetDefaultPublishHandler(s.receive).
		// Our opener: paho's, plus a writer that coalesces its packets.
		SetCustomOpenConnectionFn(openBrokerConn(newDialer(s.cfg.Keepalive), s.cfg.Oversize, func(w *writeCoalescer) { s.out.Store(w) })).
		// PUBACKs bypass paho (directAck): so must its store.
		SetStore(newInboundlessStore()).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		})
	if ep.TLS != nil {
		o.SetTLSConfig(ep.TLS.Clone())
	}
	if s.cfg.StatusTopic != "" {
		o.SetWill(s.cfg.StatusTopic, statusOffline, 1, true)
	}
	return o
}

// receive hands a message to the handler with an Ack that writes the
// PUBACK itself (directAck). paho runs it in the goroutine that serves the
// connection the message came on, and opens the next connection only after
// that goroutine has ended, so out is that connection's writer.
func (s *session) receive(c mqtt.Client, m mqtt.Message) {
	if out, _ := s.out.Load().(*writeCoalescer); out != nil && m.Qos() == 1 {
		m = &directAck{m: m, out: out}
	}
	s.handler(c, m)
}

// refreshRetry paces new attempts after a failed credential refresh while
// connected (the connection goes on with the credentials it has).
const refreshRetry = 5 * time.Minute

// run holds the session until ctx ends, then says offline and disconnects.
func (s *session) run(ctx context.Context) {
	var (
		client mqtt.Client
		cur    endpoint
	)
	for {
		s.beat.stamp()
		select {
		case <-s.lost: // a stale notification from the previous connection
		default:
		}
		ep, err := s.creds.endpoint(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			cause, refused := describeBootstrapErr(err)
			s.health.setBootstrap(cause, refused)
			if !s.wait(ctx, cause) {
				return
			}
			continue
		}
		s.health.setBootstrap("", false)
		if client == nil || !ep.same(cur) {
			// paho binds the broker and credentials to the client: a new
			// endpoint needs a new client (same client id, same session).
			client, cur = mqtt.NewClient(s.options(ep)), ep
		}
		s.health.setBroker(ep.BrokerURL)
		if s.cfg.Insecure {
			s.log.Warn("TLS certificate verification is OFF (mqtt.insecure_skip_verify = true): anyone on the path can impersonate the broker")
		}
		s.log.Info("connecting", "broker", ep.BrokerURL, "client_id", s.cfg.ClientID)
		if ep.CertAsked != nil {
			ep.CertAsked.Store(false)
		}
		err = s.connect(ctx, client)
		if err == nil {
			s.backoff.Reset()
			if ep.CertAsked != nil {
				ep.CertAsked.Store(false) // a later loss is no certificate refusal
			}
			s.health.setConnected(s.now())
			s.log.Info("connected and subscribed", "broker", ep.BrokerURL, "topics", s.topics())
			var changed bool
			err, changed = s.hold(ctx, client)
			if ctx.Err() != nil {
				s.shutdown(client)
				return
			}
			if changed {
				s.log.Info("credentials changed; reconnecting with the new ones")
				s.health.setDisconnected(s.now(), "reconnecting with new credentials", false)
				client.Disconnect(250)
				continue
			}
		} else if ctx.Err() != nil {
			if client.IsConnected() {
				s.shutdown(client)
			}
			return
		}
		cause, auth := describeConnErr(err, credentialKeys(s.creds))
		if !auth && ep.CertAsked != nil && ep.CertAsked.Load() {
			if ep.HasCert {
				cause = "TLS: the broker rejected the client certificate; check mqtt.cert_file and mqtt.key_file, and that the broker trusts their CA (" + cause + ")"
			} else {
				cause = "TLS: the broker requires a client certificate and none is configured; set mqtt.cert_file and mqtt.key_file (" + cause + ")"
			}
			auth = true
		}
		if refusedCredentials(err) {
			s.creds.refused()
		}
		s.health.setDisconnected(s.now(), cause, auth)
		if !s.wait(ctx, cause) {
			return
		}
	}
}

// topics lists what the session subscribes to, for log lines.
func (s *session) topics() string {
	return strings.Join(append([]string{s.cfg.NotifyTopic}, s.cfg.RuleTopics...), ", ")
}

// wait sleeps the next backoff interval, stamping the heartbeat as it
// goes; false if ctx ended.
func (s *session) wait(ctx context.Context, cause string) bool {
	d := s.backoff.Next()
	s.log.Warn("not connected", "cause", cause, "retry_in", d.Round(time.Millisecond))
	for d > 0 {
		s.beat.stamp()
		step := min(d, heartbeatEvery)
		if !s.backoff.SleepFor(ctx, step, nil) {
			return false
		}
		d -= step
	}
	return true
}

// hold keeps a connected session: it publishes the outbox, refreshes the
// credentials when due, and returns when the connection is lost (its
// error), when ctx ends, or when refreshed credentials differ (changed).
func (s *session) hold(ctx context.Context, client mqtt.Client) (lost error, changed bool) {
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publishOutbox(pubCtx, client) }()
	defer func() { stopPub(); <-pubDone }()
	retryAt := time.Time{}
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	for {
		s.beat.stamp()
		var refresh <-chan time.Time
		var timer *time.Timer
		if at := s.creds.refreshAt(); !at.IsZero() {
			if retryAt.After(at) {
				at = retryAt
			}
			timer = time.NewTimer(max(time.Until(at), 0))
			refresh = timer.C
		}
		stop := func() {
			if timer != nil {
				timer.Stop()
			}
		}
		select {
		case <-beat.C:
			stop()
			continue
		case <-ctx.Done():
			stop()
			return nil, false
		case err := <-s.lost:
			stop()
			return err, false
		case <-refresh:
			changed, err := s.creds.refresh(ctx)
			if err != nil {
				cause, _ := describeBootstrapErr(err)
				s.log.Warn("credential refresh failed; keeping the current ones", "cause", cause, "retry_in", refreshRetry)
				retryAt = time.Now().Add(refreshRetry)
				continue
			}
			retryAt = time.Time{}
			if changed {
				return nil, true
			}
		}
	}
}

// connect makes one attempt: CONNECT, SUBSCRIBE (checking the SUBACK), and
// the retained online status.
func (s *session) connect(ctx context.Context, client mqtt.Client) error {
	if err := s.waitToken(ctx, client.Connect(), connectTimeout+5*time.Second); err != nil {
		return err
	}
	// Subscribe on every connect: paho's SetResumeSubs does not resubscribe.
	filters := map[string]byte{s.cfg.NotifyTopic: 1}
	for _, t := range s.cfg.RuleTopics {
		filters[t] = 1
	}
	tok := client.SubscribeMultiple(filters, nil)
	if err := s.waitToken(ctx, tok, opTimeout); err != nil {
		client.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", s.topics(), err)
	}
	// A refused subscription is no token error (docs/dependencies.md#paho-suback-0x80-is-no-error): read the SUBACK.
	res := tok.(*mqtt.SubscribeToken).Result()
	for f := range filters {
		if code, ok := res[f]; !ok || code == 0x80 {
			client.Disconnect(0)
			return &subscribeRefusedError{topic: f}
		}
	}
	if s.cfg.StatusTopic != "" {
		if err := s.waitToken(ctx, client.Publish(s.cfg.StatusTopic, 1, true, statusOnline), opTimeout); err != nil {
			s.log.Warn("could not publish online status", "topic", s.cfg.StatusTopic, "err", err)
		}
	}
	return nil
}

// shutdown publishes the retained offline status (a clean disconnect does
// not fire the will) and disconnects, letting queued PUBACKs flush.
func (s *session) shutdown(client mqtt.Client) {
	if s.cfg.StatusTopic != "" {
		tok := client.Publish(s.cfg.StatusTopic, 1, true, statusOffline)
		tok.WaitTimeout(2 * time.Second)
	}
	client.Disconnect(500)
	s.health.setDisconnected(s.now(), "stopped", false)
	s.log.Info("disconnected", "cause", "shutdown")
}

var errTimeout = errors.New("timed out waiting for the broker")

// waitToken waits for a paho token, bounded by d and ctx (prefer a bounded
// wait to Wait: docs/dependencies.md#paho-half-open-writes), stamping the
// session's heartbeat meanwhile: a connect of many seconds is slow, not
// wedged.
func (s *session) waitToken(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	for {
		select {
		case <-tok.Done():
			return tok.Error()
		case <-t.C:
			return errTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-beat.C:
			s.beat.stamp()
		}
	}
}

type subscribeRefusedError struct{ topic string }

func (e *subscribeRefusedError) Error() string {
	return fmt.Sprintf("broker refused the subscription to %s (SUBACK 0x80); check the broker's ACL for this username", e.topic)
}

// newDialer bounds how long unacknowledged writes may hang on a half-open
// connection (paho #723): TCP_USER_TIMEOUT makes the kernel give up.
func newDialer(keepalive time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   connectTimeout,
		KeepAlive: keepalive,
		Control:   userTimeoutControl(keepalive + 10*time.Second),
	}
}

// outboxBatch is how many replies are in flight at once.
const outboxBatch = 32

// publishOutbox publishes queued replies at QoS 1, oldest first, and deletes
// each only after the broker's PUBACK, until ctx ends (the connection went
// away or the agent stops). What is not acknowledged stays for the next
// connection.
func (s *session) publishOutbox(ctx context.Context, client mqtt.Client) {
	if s.outbox == nil {
		return
	}
	for ctx.Err() == nil {
		msgs, err := s.outbox.Outbox(0, outboxBatch)
		if err != nil {
			s.log.Error("read outbox", "err", err)
			msgs = nil
		}
		if len(msgs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.outboxWake:
			case <-time.After(5 * time.Second): // a missed wake-up, or a read error
			}
			continue
		}
		toks := make([]mqtt.Token, len(msgs))
		for i, m := range msgs {
			toks[i] = client.Publish(m.Topic, 1, false, m.Payload)
		}
		var acked []uint64
		for i, tok := range toks {
			if err := s.waitToken(ctx, tok, opTimeout); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("reply not acknowledged; will retry", "topic", msgs[i].Topic, "err", err)
				}
				break
			}
			acked = append(acked, msgs[i].ID)
		}
		if err := s.outbox.DeleteOutbox(acked...); err != nil {
			s.log.Error("delete acknowledged replies", "err", err)
		} else if len(acked) > 0 && s.onBacklog != nil {
			s.onBacklog()
		}
		if len(acked) < len(msgs) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}
