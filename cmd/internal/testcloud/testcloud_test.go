package testcloud

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pelletier/go-toml/v2"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// device connects as the agent's user and answers every relay.set on
// gw-1's push topic with bad_command, after a reply without an id and one
// that is not JSON (which the cloud must pass over).
func device(t *testing.T, c *Cloud) mqtt.Client {
	t.Helper()
	o, err := agenttest.ClientOptions(c.Broker.URL, c.PKI, "gw", "gw-pass", "gw")
	if err != nil {
		t.Fatal(err)
	}
	o.SetDefaultPublishHandler(func(cl mqtt.Client, m mqtt.Message) {
		var cmd struct {
			ID     string         `json:"id"`
			Method string         `json:"method"`
			Params map[string]any `json:"params"`
		}
		if json.Unmarshal(m.Payload(), &cmd) != nil || cmd.Method != "relay.set" || cmd.Params["relay"] != "pump" {
			t.Errorf("the device got %s", m.Payload())
			return
		}
		for _, p := range []string{`not json`, `{"ok":true}`,
			fmt.Sprintf(`{"id":%q,"ok":false,"error":{"code":"bad_command","message":"no such relay"}}`, cmd.ID)} {
			cl.Publish("/sys/gw-1/thing/push/reply", 1, false, p)
		}
	})
	cl, err := agenttest.Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	if tok := cl.Subscribe("/sys/gw-1/thing/push/notify", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device subscribe: %v", tok.Error())
	}
	return cl
}

// The broker takes the users it was given and no one else, over TLS with
// the run's CA; a command reaches the device as docs/design.md#commands
// writes it and Command returns its reply, whatever else is on the reply
// topics; the rig's own subscription gets its messages; a command never
// answered times out; after a broker restart Connect brings the clients
// and the subscriptions back.
func TestCloud(t *testing.T) {
	events := make(chan string, 10)
	c, err := Start(Options{
		Dir:    t.TempDir(),
		Agents: map[string]string{"gw": "gw-pass"},
		Name:   "test",
		Subscribe: map[string]mqtt.MessageHandler{"/sys/+/thing/event": func(_ mqtt.Client, m mqtt.Message) {
			events <- string(m.Payload())
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := agenttest.Publisher(c.Broker.URL, c.PKI, "gw", "wrong", "intruder"); err == nil {
		t.Error("a wrong password connected")
	}
	exchange := func(id string) {
		t.Helper()
		gw := device(t, c)
		defer gw.Disconnect(50)
		r, sent, err := c.Command("/sys/gw-1/thing/push/notify", id, "relay.set", map[string]any{"relay": "pump", "on": true}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID != id || r.OK || r.Error == nil || r.Error.Code != "bad_command" || r.Error.Message != "no such relay" || sent.IsZero() {
			t.Errorf("reply = %+v, sent %v", r, sent)
		}
		if err := agenttest.PublishQoS1(gw, "/sys/gw-1/thing/event", []byte(id), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e != id {
				t.Errorf("event %q, want %q", e, id)
			}
		case <-time.After(10 * time.Second):
			t.Error("the rig's own subscription got no event within 10 s")
		}
	}
	exchange("c1")
	if _, _, err := c.Command("/sys/gw-2/thing/push/notify", "c2", "relay.set", nil, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no reply to") {
		t.Errorf("a command no device answers: %v", err)
	}
	if err := c.Broker.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	exchange("c3")
}

func TestCommandPayload(t *testing.T) {
	for _, params := range []map[string]any{nil, {"relay": "pump", "on": true}} {
		b, err := command("id-1", "relay.set", params)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		_, has := got["params"]
		if got["id"] != "id-1" || got["method"] != "relay.set" || has != (params != nil) {
			t.Errorf("command(params %v) = %s", params, b)
		}
	}
}

// The [mqtt] table is valid TOML naming the broker by the guest's alias
// for the host and verifying the certificate's name, localhost.
func TestMQTTConfig(t *testing.T) {
	var doc struct {
		MQTT struct {
			Broker       string `toml:"broker"`
			Username     string `toml:"username"`
			PasswordFile string `toml:"password_file"`
			CAFile       string `toml:"ca_file"`
			ServerName   string `toml:"server_name"`
			Keepalive    string `toml:"keepalive"`
		} `toml:"mqtt"`
	}
	cfg := MQTTConfig(34567, "gw-1")
	if err := toml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, cfg)
	}
	m := doc.MQTT
	if m.Broker != fmt.Sprintf("tls://%s:34567", HostAlias) || m.Username != "gw-1" || m.ServerName != "localhost" ||
		!strings.HasPrefix(m.PasswordFile, "/etc/edge-agent/") || !strings.HasPrefix(m.CAFile, "/etc/edge-agent/") || m.Keepalive == "" {
		t.Errorf("[mqtt] = %+v\n%s", m, cfg)
	}
}
