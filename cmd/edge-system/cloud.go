package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// The gateway's identity and its user on the rig's broker (throw-away,
// this run only). The password is what the journal must never show.
const (
	deviceID  = "system-gw"
	agentUser = "gw-system"
	agentPass = "system-secret-never-logged"
)

func notifyTopic() string { return "/sys/" + deviceID + "/thing/push/notify" }
func statusTopic() string { return "/sys/" + deviceID + "/thing/status" }

// cloud is the host side of MQTT: mosquitto with TLS and passwords on
// 127.0.0.1 (the guest reaches it as testcloud.HostAlias), a publisher of
// commands, a subscriber that keeps every reply by id and every payload on
// the device's retained status topic.
type cloud struct {
	*testcloud.Cloud

	mu     sync.Mutex
	status []statusMsg
}

type statusMsg struct {
	At       time.Time
	Payload  string
	Retained bool
}

func startCloud(dir string) (*cloud, error) {
	c := &cloud{}
	tc, err := testcloud.Start(testcloud.Options{
		Dir:       dir,
		Agents:    map[string]string{agentUser: agentPass},
		Name:      "system",
		Subscribe: map[string]mqtt.MessageHandler{statusTopic(): c.onStatus},
	})
	if err != nil {
		return nil, err
	}
	c.Cloud = tc
	return c, nil
}

func (c *cloud) onStatus(_ mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = append(c.status, statusMsg{At: time.Now(), Payload: string(m.Payload()), Retained: m.Retained()})
}

func (c *cloud) publish(payload []byte) error { return c.Publish(notifyTopic(), payload) }

// command publishes a command and waits for its reply; sent is the host's
// clock just before the publish.
func (c *cloud) command(id, method string, params map[string]any, timeout time.Duration) (testcloud.Reply, time.Time, error) {
	return c.Command(notifyTopic(), id, method, params, timeout)
}

// statusSince is the status topic's payloads that arrived after t.
func (c *cloud) statusSince(t time.Time) []statusMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []statusMsg
	for _, s := range c.status {
		if s.At.After(t) {
			out = append(out, s)
		}
	}
	return out
}

// retainedStatus asks the broker, with a fresh subscription, what it keeps
// retained on the status topic now (what a dashboard opening later sees).
func (c *cloud) retainedStatus() (string, error) {
	cl, err := c.Client(fmt.Sprintf("system-probe-%d", time.Now().UnixNano()))
	if err != nil {
		return "", err
	}
	defer cl.Disconnect(50)
	got := make(chan string, 1)
	tok := cl.Subscribe(statusTopic(), 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			select {
			case got <- string(m.Payload()):
			default:
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return "", fmt.Errorf("subscribe: %v", tok.Error())
	}
	select {
	case p := <-got:
		return p, nil
	case <-time.After(2 * time.Second):
		return "", fmt.Errorf("nothing retained on %s", statusTopic())
	}
}

func isOffline(payload string) bool { return strings.Contains(payload, "offline") }
