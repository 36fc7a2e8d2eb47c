package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// cloud is the host side of MQTT: a mosquitto with TLS and passwords on
// 127.0.0.1 (the guest reaches it as 10.0.2.2), a publisher of commands
// and a subscriber that keeps every reply by id.
type cloud struct {
	pki    *agenttest.PKI
	broker *agenttest.Mosquitto

	pub mqtt.Client
	sub mqtt.Client

	mu      sync.Mutex
	replies map[string]reply
	arrived chan struct{} // poked on every reply
	events  []deviceEvent // every message on the event topics, in arrival order
}

// deviceEvent is one message on a device's event topic
// (docs/design.md#inputs-relay-feedback-and-safe-state): an input's
// debounced change, or a relay the agent switched by itself.
type deviceEvent struct {
	Topic   string    `json:"-"`
	Arrived time.Time `json:"-"` // the host's clock, as the subscriber got it
	Input   string    `json:"input"`
	Active  bool      `json:"active"`
	Relay   string    `json:"relay"`
	On      bool      `json:"on"`
	Cause   string    `json:"cause"`
	At      string    `json:"at"`
	Seq     int64     `json:"seq"`
}

// eventTopic is [mqtt] event_topic's default for device.
func eventTopic(device string) string { return "/sys/" + device + "/thing/event" }

// eventsSince returns the events on device's topic that arrived after t.
func (c *cloud) eventsSince(device string, t time.Time) []deviceEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []deviceEvent
	for _, e := range c.events {
		if e.Topic == eventTopic(device) && e.Arrived.After(t) {
			out = append(out, e)
		}
	}
	return out
}

// reply is one command reply as docs/design.md#commands defines it.
type reply struct {
	ID     string         `json:"id"`
	OK     bool           `json:"ok"`
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startCloud starts the broker (users for the agent and the cloud, a
// queue far above what the rig sends, as cmd/edge-faults does) and
// connects the clients.
func startCloud(dir string) (*cloud, error) {
	pki, err := agenttest.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	m, err := agenttest.StartMosquitto(agenttest.MosquittoOptions{
		PKI:   pki,
		Users: map[string]string{agentUser: agentPass, cloudUser: cloudPass},
		Dir:   filepath.Join(dir, "mosquitto"),
		Extra: []string{"max_queued_messages 1000000"},
	})
	if err != nil {
		return nil, err
	}
	c := &cloud{pki: pki, broker: m, replies: map[string]reply{}, arrived: make(chan struct{}, 1)}
	if err := c.connect(); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return c, nil
}

// connect (re)connects the publisher and the reply subscriber, after a
// start or a broker restart (the test clients do not reconnect by
// themselves).
func (c *cloud) connect() error {
	c.close()
	pub, err := agenttest.Publisher(c.broker.URL, c.pki, cloudUser, cloudPass, "hil-pub")
	if err != nil {
		return err
	}
	o, err := agenttest.ClientOptions(c.broker.URL, c.pki, cloudUser, cloudPass, "hil-replies")
	if err != nil {
		pub.Disconnect(0)
		return err
	}
	sub, err := agenttest.Connect(o)
	if err != nil {
		pub.Disconnect(0)
		return err
	}
	tok := sub.Subscribe("/sys/+/thing/push/reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		var r reply
		if json.Unmarshal(m.Payload(), &r) != nil || r.ID == "" {
			return
		}
		c.mu.Lock()
		c.replies[r.ID] = r
		c.mu.Unlock()
		select {
		case c.arrived <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		pub.Disconnect(0)
		sub.Disconnect(0)
		return fmt.Errorf("subscribe to the reply topics: %v", tok.Error())
	}
	tok = sub.Subscribe(eventTopic("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		e := deviceEvent{Topic: m.Topic(), Arrived: time.Now()}
		if json.Unmarshal(m.Payload(), &e) != nil {
			e.Cause = "unparsable: " + string(m.Payload())
		}
		c.mu.Lock()
		c.events = append(c.events, e)
		c.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		pub.Disconnect(0)
		sub.Disconnect(0)
		return fmt.Errorf("subscribe to the event topics: %v", tok.Error())
	}
	c.pub, c.sub = pub, sub
	return nil
}

func (c *cloud) close() {
	if c.pub != nil {
		c.pub.Disconnect(50)
		c.pub = nil
	}
	if c.sub != nil {
		c.sub.Disconnect(50)
		c.sub = nil
	}
}

func (c *cloud) stop() {
	c.close()
	if c.broker != nil {
		_ = c.broker.Stop()
	}
}

func notifyTopic(device string) string { return "/sys/" + device + "/thing/push/notify" }

// publish sends a notification to the device's push topic (QoS 1).
func (c *cloud) publish(device string, payload []byte) error {
	return agenttest.PublishQoS1(c.pub, notifyTopic(device), payload, 10*time.Second)
}

// command publishes a command exactly as docs/design.md#commands writes it
// and waits for its reply.
func (c *cloud) command(device, id, method string, params map[string]any, timeout time.Duration) (reply, error) {
	cmd := map[string]any{"id": id, "method": method}
	if params != nil {
		cmd["params"] = params
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return reply{}, err
	}
	if err := c.publish(device, b); err != nil {
		return reply{}, err
	}
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		r, ok := c.replies[id]
		c.mu.Unlock()
		if ok {
			return r, nil
		}
		select {
		case <-c.arrived:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			return reply{}, fmt.Errorf("no reply to %s within %v", b, timeout)
		}
	}
}
