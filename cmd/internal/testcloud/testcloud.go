// Package testcloud is the host side of the MQTT link through which make
// hil and make system test an agent in a QEMU guest: a certificate
// authority and a server certificate for localhost made for the run, a
// mosquitto with TLS and password users on the host's loopback, the
// cloud's publisher of commands and subscriber of their replies, and the
// [mqtt] table with which the agent in the guest reaches that broker. What
// else a rig watches (make hil the event topics, make system the status
// topic) it subscribes to through Options.Subscribe.
package testcloud

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// HostAlias is the host's loopback as the guest sees it: QEMU's user
// network maps 10.0.2.2 to 127.0.0.1 on this machine (the traffic never
// leaves QEMU's process). The broker's certificate is for localhost, so
// the agent verifies that name (mqtt.server_name).
const HostAlias = "10.0.2.2"

// The cloud's own user on the broker (throw-away, this run only).
const (
	cloudUser = "cloud"
	cloudPass = "cloud-pass"
)

// replyTopics matches every device's command reply topic
// (docs/design.md#commands).
const replyTopics = "/sys/+/thing/push/reply"

// Options are what Start needs.
type Options struct {
	Dir string // the certificates (Dir/pki) and the broker's files (Dir/mosquitto)
	// Agents are the agents' users on the broker (name → password),
	// which also takes the cloud's own.
	Agents map[string]string
	// Name prefixes the cloud's client ids (Name-pub, Name-sub).
	Name string
	// Subscribe are the topics (filters) the subscriber takes beside the
	// command replies, each at QoS 1, with their handlers; they are
	// subscribed again on every Connect.
	Subscribe map[string]mqtt.MessageHandler
}

// Cloud is the broker and the cloud's two clients. One goroutine (the
// rig's) uses it; the handlers run on paho's.
type Cloud struct {
	PKI    *agenttest.PKI
	Broker *agenttest.Mosquitto

	opts     Options
	replies  *replies
	pub, sub mqtt.Client
}

// Start makes the run's certificates, starts mosquitto with TLS, the users
// and a queue far above what a rig sends (make system's power cut queues
// a flood for the gateway while it is down, as cmd/edge-faults does for
// its agents), and connects the cloud's clients.
func Start(o Options) (*Cloud, error) {
	pki, err := agenttest.NewPKI(filepath.Join(o.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	users := map[string]string{cloudUser: cloudPass}
	for u, p := range o.Agents {
		users[u] = p
	}
	m, err := agenttest.StartMosquitto(agenttest.MosquittoOptions{
		PKI:   pki,
		Users: users,
		Dir:   filepath.Join(o.Dir, "mosquitto"),
		Extra: []string{"max_queued_messages 1000000"},
	})
	if err != nil {
		return nil, err
	}
	c := &Cloud{PKI: pki, Broker: m, opts: o, replies: newReplies()}
	if err := c.Connect(); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return c, nil
}

// Client is a new client connected as the cloud's user, with client id
// id (a rig's one-off look at the broker).
func (c *Cloud) Client(id string) (mqtt.Client, error) {
	o, err := agenttest.ClientOptions(c.Broker.URL, c.PKI, cloudUser, cloudPass, id)
	if err != nil {
		return nil, err
	}
	return agenttest.Connect(o)
}

// Connect (re)connects the publisher and the subscriber, after Start or
// a restart of the broker (the test clients do not reconnect by
// themselves). The replies kept so far stay.
func (c *Cloud) Connect() error {
	c.close()
	pub, err := c.Client(c.opts.Name + "-pub")
	if err != nil {
		return err
	}
	sub, err := c.Client(c.opts.Name + "-sub")
	if err != nil {
		pub.Disconnect(0)
		return err
	}
	topics := map[string]mqtt.MessageHandler{replyTopics: func(_ mqtt.Client, m mqtt.Message) { c.replies.add(m.Payload()) }}
	for t, h := range c.opts.Subscribe {
		topics[t] = h
	}
	for t, h := range topics {
		if tok := sub.Subscribe(t, 1, h); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			pub.Disconnect(0)
			sub.Disconnect(0)
			return fmt.Errorf("subscribe to %s: %v", t, tok.Error())
		}
	}
	c.pub, c.sub = pub, sub
	return nil
}

func (c *Cloud) close() {
	if c.pub != nil {
		c.pub.Disconnect(50)
		c.pub = nil
	}
	if c.sub != nil {
		c.sub.Disconnect(50)
		c.sub = nil
	}
}

// Stop disconnects the clients and stops the broker.
func (c *Cloud) Stop() {
	c.close()
	_ = c.Broker.Stop()
}

// Publish sends payload to topic at QoS 1 and waits for the broker's
// PUBACK.
func (c *Cloud) Publish(topic string, payload []byte) error {
	return agenttest.PublishQoS1(c.pub, topic, payload, 10*time.Second)
}

// Command publishes a command to topic exactly as docs/design.md#commands
// writes it and waits up to timeout for its reply; sent is the host's
// clock just before the publish.
func (c *Cloud) Command(topic, id, method string, params map[string]any, timeout time.Duration) (r Reply, sent time.Time, err error) {
	b, err := command(id, method, params)
	if err != nil {
		return Reply{}, time.Now(), err
	}
	sent = time.Now()
	if err := c.Publish(topic, b); err != nil {
		return Reply{}, sent, err
	}
	r, ok := c.replies.wait(id, timeout)
	if !ok {
		return Reply{}, sent, fmt.Errorf("no reply to %s within %v", b, timeout)
	}
	return r, sent, nil
}

// MQTTConfig is the [mqtt] table of the agent's config.toml in the guest:
// the broker on the host's loopback at port, as user, with its password
// and the broker's CA where the rigs install them (/etc/edge-agent, as
// scripts/install-image.sh does).
func MQTTConfig(port int, user string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("[mqtt]")
	w("broker = %q", fmt.Sprintf("tls://%s:%d", HostAlias, port))
	w("username = %q", user)
	w(`password_file = "/etc/edge-agent/mqtt.pass"`)
	w(`ca_file = "/etc/edge-agent/ca.pem"`)
	w(`server_name = "localhost"`)
	w(`keepalive = "10s"`)
	return b.String()
}

// command is a command's payload as docs/design.md#commands writes it.
func command(id, method string, params map[string]any) ([]byte, error) {
	cmd := map[string]any{"id": id, "method": method}
	if params != nil {
		cmd["params"] = params
	}
	return json.Marshal(cmd)
}

// Reply is one command reply as docs/design.md#commands defines it.
type Reply struct {
	ID     string         `json:"id"`
	OK     bool           `json:"ok"`
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// replies keeps every command reply by id, for the commands' senders to
// wait on.
type replies struct {
	mu      sync.Mutex
	byID    map[string]Reply
	arrived chan struct{} // poked on every reply
}

func newReplies() *replies {
	return &replies{byID: map[string]Reply{}, arrived: make(chan struct{}, 1)}
}

// add keeps the reply payload carries; a payload that is not a reply with
// an id is dropped.
func (r *replies) add(payload []byte) {
	var rp Reply
	if json.Unmarshal(payload, &rp) != nil || rp.ID == "" {
		return
	}
	r.mu.Lock()
	r.byID[rp.ID] = rp
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// wait returns the reply to id once it has arrived, or false after
// timeout.
func (r *replies) wait(id string, timeout time.Duration) (Reply, bool) {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		rp, ok := r.byID[id]
		r.mu.Unlock()
		if ok {
			return rp, true
		}
		select {
		case <-r.arrived:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			return Reply{}, false
		}
	}
}
