package main

import (
	"encoding/json"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// cloud is the host side of MQTT: a mosquitto with TLS and passwords on
// 127.0.0.1 (the guest reaches it as testcloud.HostAlias), a publisher of
// commands, a subscriber that keeps every reply by id and every message
// on the devices' event topics.
type cloud struct {
	*testcloud.Cloud

	mu     sync.Mutex
	events []deviceEvent // every message on the event topics, in arrival order
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

// startCloud starts the broker (users for the agent and the cloud) and
// connects the clients.
func startCloud(dir string) (*cloud, error) {
	c := &cloud{}
	tc, err := testcloud.Start(testcloud.Options{
		Dir:       dir,
		Agents:    map[string]string{agentUser: agentPass},
		Name:      "hil",
		Subscribe: map[string]mqtt.MessageHandler{eventTopic("+"): c.onEvent},
	})
	if err != nil {
		return nil, err
	}
	c.Cloud = tc
	return c, nil
}

func (c *cloud) onEvent(_ mqtt.Client, m mqtt.Message) {
	e := deviceEvent{Topic: m.Topic(), Arrived: time.Now()}
	if json.Unmarshal(m.Payload(), &e) != nil {
		e.Cause = "unparsable: " + string(m.Payload())
	}
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func notifyTopic(device string) string { return "/sys/" + device + "/thing/push/notify" }

// publish sends a notification to the device's push topic (QoS 1).
func (c *cloud) publish(device string, payload []byte) error {
	return c.Publish(notifyTopic(device), payload)
}

// command publishes a command to device and waits for its reply.
func (c *cloud) command(device, id, method string, params map[string]any, timeout time.Duration) (testcloud.Reply, error) {
	r, _, err := c.Command(notifyTopic(device), id, method, params, timeout)
	return r, err
}
