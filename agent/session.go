package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/store"
)

// sessionConfig is what the session needs, already resolved from the
// configuration file (secrets included, so it is never logged whole).
type sessionConfig struct {
	BrokerURL   string      // "tls://host:port" or "tcp://host:port"
	TLS         *tls.Config // nil for a plaintext broker
	Username    string
	Password    string
	ClientID    string
	NotifyTopic string
	StatusTopic string // "" = no online/offline status
	Keepalive   time.Duration
	Insecure    bool // TLS verification is off: warned about at every connect
	// CertAsked is set when the broker asked for a client certificate we
	// do not have (nil without TLS or with a client certificate).
	CertAsked *atomic.Bool
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
	cfg     sessionConfig
	health  *health
	log     *slog.Logger
	handler mqtt.MessageHandler
	backoff *backoff
	now     func() time.Time

	lost chan error // connection-lost notifications from paho

	outbox     outboxStore   // replies to publish; nil = none
	outboxWake chan struct{} // the dispatcher queued a reply
}

// outboxStore is what the session needs of the store to publish replies.
type outboxStore interface {
	Outbox(after uint64, max int) ([]store.OutMsg, error)
	DeleteOutbox(ids ...uint64) error
}

// wakeOutbox tells the session there are replies to publish.
func (s *session) wakeOutbox() {
	select {
	case s.outboxWake <- struct{}{}:
	default:
	}
}

func newSession(cfg sessionConfig, h *health, log *slog.Logger, handler mqtt.MessageHandler, bo *backoff) *session {
	return &session{cfg: cfg, health: h, log: log, handler: handler, backoff: bo, now: time.Now,
		lost: make(chan error, 1), outboxWake: make(chan struct{}, 1)}
}

func (s *session) options() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(s.cfg.BrokerURL).
		SetClientID(s.cfg.ClientID).
		SetUsername(s.cfg.Username).
		SetPassword(s.cfg.Password).
		// A stable client id plus CleanSession(false) makes the broker keep
		// QoS 1 messages while the gateway is away (PITFALLS.md).
		SetCleanSession(false).
		// 3.1.1 only: paho's silent fallback to 3.1 hides the real CONNACK code.
		SetProtocolVersion(4).
		SetKeepAlive(s.cfg.Keepalive).
		SetPingTimeout(10 * time.Second).
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
		SetDefaultPublishHandler(s.handler).
		SetDialer(newDialer(s.cfg.Keepalive)).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		})
	if s.cfg.TLS != nil {
		o.SetTLSConfig(s.cfg.TLS.Clone())
	}
	if s.cfg.StatusTopic != "" {
		o.SetWill(s.cfg.StatusTopic, statusOffline, 1, true)
	}
	return o
}

// run holds the session until ctx ends, then says offline and disconnects.
func (s *session) run(ctx context.Context) {
	client := mqtt.NewClient(s.options())
	for {
		select {
		case <-s.lost: // a stale notification from the previous connection
		default:
		}
		if s.cfg.Insecure {
			s.log.Warn("TLS certificate verification is OFF (mqtt.insecure_skip_verify = true): anyone on the path can impersonate the broker")
		}
		s.log.Info("connecting", "broker", s.cfg.BrokerURL, "client_id", s.cfg.ClientID)
		if s.cfg.CertAsked != nil {
			s.cfg.CertAsked.Store(false)
		}
		err := s.connect(ctx, client)
		if err == nil {
			s.backoff.reset()
			if s.cfg.CertAsked != nil {
				s.cfg.CertAsked.Store(false) // a later loss is no certificate refusal
			}
			s.health.setConnected(s.now())
			s.log.Info("connected and subscribed", "broker", s.cfg.BrokerURL, "topic", s.cfg.NotifyTopic)
			pubCtx, stopPub := context.WithCancel(ctx)
			pubDone := make(chan struct{})
			go func() { defer close(pubDone); s.publishOutbox(pubCtx, client) }()
			select {
			case <-ctx.Done():
			case err = <-s.lost:
			}
			stopPub()
			<-pubDone
			if ctx.Err() != nil {
				s.shutdown(client)
				return
			}
		} else if ctx.Err() != nil {
			if client.IsConnected() {
				s.shutdown(client)
			}
			return
		}
		cause, auth := describeConnErr(err)
		if !auth && s.cfg.CertAsked != nil && s.cfg.CertAsked.Load() {
			cause, auth = "TLS: the broker requires a client certificate and none is configured; set mqtt.cert_file and mqtt.key_file ("+cause+")", true
		}
		s.health.setDisconnected(s.now(), cause, auth)
		wait := s.backoff.next()
		s.log.Warn("not connected", "cause", cause, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// connect makes one attempt: CONNECT, SUBSCRIBE (checking the SUBACK), and
// the retained online status.
func (s *session) connect(ctx context.Context, client mqtt.Client) error {
	if err := waitToken(ctx, client.Connect(), connectTimeout+5*time.Second); err != nil {
		return err
	}
	// Subscribe on every connect: paho's SetResumeSubs does not resubscribe.
	tok := client.Subscribe(s.cfg.NotifyTopic, 1, nil)
	if err := waitToken(ctx, tok, opTimeout); err != nil {
		client.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", s.cfg.NotifyTopic, err)
	}
	// A refused subscription is no token error (PITFALLS.md): read the SUBACK.
	if code, ok := tok.(*mqtt.SubscribeToken).Result()[s.cfg.NotifyTopic]; !ok || code == 0x80 {
		client.Disconnect(0)
		return &subscribeRefusedError{topic: s.cfg.NotifyTopic}
	}
	if s.cfg.StatusTopic != "" {
		if err := waitToken(ctx, client.Publish(s.cfg.StatusTopic, 1, true, statusOnline), opTimeout); err != nil {
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

// waitToken waits for a paho token, bounded by d and ctx (PITFALLS: prefer
// WaitTimeout to Wait).
func waitToken(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errTimeout
	case <-ctx.Done():
		return ctx.Err()
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
			if err := waitToken(ctx, tok, opTimeout); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("reply not acknowledged; will retry", "topic", msgs[i].Topic, "err", err)
				}
				break
			}
			acked = append(acked, msgs[i].ID)
		}
		if err := s.outbox.DeleteOutbox(acked...); err != nil {
			s.log.Error("delete acknowledged replies", "err", err)
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
