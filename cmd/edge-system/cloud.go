package main

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

// The gateway's identity and the rig's broker users (throw-away, this run
// only). The password is what the journal must never show.
const (
	deviceID  = "system-gw"
	agentUser = "gw-system"
	agentPass = "system-secret-never-logged"
	cloudUser = "cloud"
	cloudPass = "cloud-pass"
	// hostAlias is the host's loopback as QEMU's user network shows it to
	// the guest; the broker's certificate is for localhost, which the
	// agent verifies (mqtt.server_name).
	hostAlias = "10.0.2.2"
)

func notifyTopic() string { return "/sys/" + deviceID + "/thing/push/notify" }
func statusTopic() string { return "/sys/" + deviceID + "/thing/status" }

// cloud is the host side of MQTT: mosquitto with TLS and passwords on
// 127.0.0.1, a publisher of commands, a subscriber that keeps every reply
// by id and every payload on the device's retained status topic.
type cloud struct {
	pki    *agenttest.PKI
	broker *agenttest.Mosquitto
	pub    mqtt.Client
	sub    mqtt.Client

	mu      sync.Mutex
	replies map[string]reply
	status  []statusMsg
}

type statusMsg struct {
	At       time.Time
	Payload  string
	Retained bool
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

func startCloud(dir string) (*cloud, error) {
	pki, err := agenttest.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	m, err := agenttest.StartMosquitto(agenttest.MosquittoOptions{
		PKI:   pki,
		Users: map[string]string{agentUser: agentPass, cloudUser: cloudPass},
		Dir:   filepath.Join(dir, "mosquitto"),
		// The power cut's flood is queued for the gateway while it is
		// down: far above what the rig sends.
		Extra: []string{"max_queued_messages 1000000"},
	})
	if err != nil {
		return nil, err
	}
	c := &cloud{pki: pki, broker: m, replies: map[string]reply{}}
	if c.pub, err = agenttest.Publisher(m.URL, pki, cloudUser, cloudPass, "system-pub"); err != nil {
		_ = m.Stop()
		return nil, err
	}
	o, err := agenttest.ClientOptions(m.URL, pki, cloudUser, cloudPass, "system-sub")
	if err != nil {
		c.stop()
		return nil, err
	}
	if c.sub, err = agenttest.Connect(o); err != nil {
		c.stop()
		return nil, err
	}
	tok := c.sub.SubscribeMultiple(map[string]byte{"/sys/+/thing/push/reply": 1, statusTopic(): 1}, func(_ mqtt.Client, m mqtt.Message) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if m.Topic() == statusTopic() {
			c.status = append(c.status, statusMsg{At: time.Now(), Payload: string(m.Payload()), Retained: m.Retained()})
			return
		}
		var r reply
		if json.Unmarshal(m.Payload(), &r) == nil && r.ID != "" {
			c.replies[r.ID] = r
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.stop()
		return nil, fmt.Errorf("subscribe: %v", tok.Error())
	}
	return c, nil
}

func (c *cloud) stop() {
	for _, cl := range []mqtt.Client{c.pub, c.sub} {
		if cl != nil {
			cl.Disconnect(50)
		}
	}
	if c.broker != nil {
		_ = c.broker.Stop()
	}
}

func (c *cloud) publish(payload []byte) error {
	return agenttest.PublishQoS1(c.pub, notifyTopic(), payload, 10*time.Second)
}

// command publishes a command as docs/design.md#commands writes it and
// waits for its reply; sent is when the broker had it.
func (c *cloud) command(id, method string, params map[string]any, timeout time.Duration) (r reply, sent time.Time, err error) {
	cmd := map[string]any{"id": id, "method": method}
	if params != nil {
		cmd["params"] = params
	}
	b, _ := json.Marshal(cmd)
	sent = time.Now()
	if err := c.publish(b); err != nil {
		return reply{}, sent, err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		r, ok := c.replies[id]
		c.mu.Unlock()
		if ok {
			return r, sent, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return reply{}, sent, fmt.Errorf("no reply to %s within %v", b, timeout)
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
	o, err := agenttest.ClientOptions(c.broker.URL, c.pki, cloudUser, cloudPass, fmt.Sprintf("system-probe-%d", time.Now().UnixNano()))
	if err != nil {
		return "", err
	}
	cl, err := agenttest.Connect(o)
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
