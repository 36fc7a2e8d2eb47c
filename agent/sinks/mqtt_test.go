package sinks

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// A real mosquitto on loopback gets every record QoS 1, in order and
// byte-exact, on the templated topic; after the broker is down and back,
// the sink connects again through its retry and goes on.
func TestMQTTSinkPublishes(t *testing.T) {
	broker := agenttest.MustMosquitto(t, agenttest.MosquittoOptions{PKI: agenttest.MustPKI(t), Plain: true, Persistence: true})

	var mu sync.Mutex
	var got []mqtt.Message
	o, err := agenttest.ClientOptions(broker.PlainURL, nil, "", "", "watcher")
	if err != nil {
		t.Fatal(err)
	}
	// A persistent session: what the sink publishes before the watcher is
	// back after the broker's restart waits for it.
	// The handler is the default one too: the queued messages arrive
	// before the SUBACK (docs/dependencies.md#paho-default-handler-before-connect).
	handler := func(_ mqtt.Client, msg mqtt.Message) {
		mu.Lock()
		got = append(got, msg)
		mu.Unlock()
	}
	o.SetCleanSession(false).SetDefaultPublishHandler(handler)
	subscribe := func() mqtt.Client {
		c, err := agenttest.Connect(o)
		if err != nil {
			t.Fatal(err)
		}
		tok := c.Subscribe("local/#", 1, handler)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		return c
	}
	watcher := subscribe()
	defer func() { watcher.Disconnect(100) }()
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	db := openStore(t, nil)
	var payloads [][]byte
	for i := range 300 {
		payloads = append(payloads, fmt.Appendf(nil, "p-%d\x00\xff", i))
	}
	appendMsgs(t, db, "/sys/gw/thing/push/notify", payloads...)
	m, _ := newManager(t, []Config{{Name: "bus", Type: TypeMQTT, Broker: broker.PlainURL, Topic: "local/{seq}{topic}"}}, db)
	start(t, m)
	waitFor(t, "300 on the bus", func() bool { return received() == 300 })
	mu.Lock()
	for i, msg := range got {
		if want := fmt.Sprintf("local/%d/sys/gw/thing/push/notify", i+1); msg.Topic() != want {
			t.Errorf("message %d on %q, want %q", i, msg.Topic(), want)
		}
		if !bytes.Equal(msg.Payload(), payloads[i]) || msg.Qos() != 1 {
			t.Errorf("message %d: %q QoS %d, want %q QoS 1", i, msg.Payload(), msg.Qos(), payloads[i])
		}
	}
	got = nil
	mu.Unlock()
	waitFor(t, "cursor 300", func() bool { return status(m, "bus").Cursor == 300 })

	// The broker goes away: the sink fails and retries; back, it delivers.
	watcher.Disconnect(100)
	if err := broker.Stop(); err != nil {
		t.Fatal(err)
	}
	m.Stored(appendMsgs(t, db, "t", []byte("while down")))
	waitFor(t, "a failed attempt", func() bool { return status(m, "bus").Failed > 0 })
	if err := broker.Restart(); err != nil {
		t.Fatal(err)
	}
	watcher = subscribe()
	// Retries back off (10-50 ms here); the record arrives once connected.
	waitFor(t, "the record after the restart", func() bool { return status(m, "bus").Cursor == 301 })
	waitFor(t, "it on the bus", func() bool { return received() >= 1 })
	mu.Lock()
	if string(got[0].Payload()) != "while down" || got[0].Topic() != "local/301t" {
		t.Errorf("after restart: %q on %q", got[0].Payload(), got[0].Topic())
	}
	mu.Unlock()
	if st := status(m, "bus"); !strings.Contains(st.LastError, "connect to tcp://127.0.0.1:") {
		t.Errorf("last_error %q, want the failed connect", st.LastError)
	}
}
