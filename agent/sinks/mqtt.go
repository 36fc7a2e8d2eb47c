package sinks

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/store"
)

// mqttSink publishes each record to a (local) broker, QoS 1.
type mqttSink struct {
	broker   string // tcp://host:port (this machine) or tls://host:port
	clientID string
	topic    template
	timeout  time.Duration
	client   mqtt.Client // nil until needed, and after a failure
}

func newMQTTSink(c Config) (*mqttSink, error) {
	if err := CheckTopic(c.Topic); err != nil {
		return nil, err
	}
	t, _ := parseTemplate(c.Topic, TopicFields)
	return &mqttSink{broker: c.Broker, clientID: "edge-agent-sink-" + c.Name, topic: t, timeout: c.Timeout}, nil
}

// connect makes a new connection. paho's own reconnecting is off: the
// sink's retry, with its backoff, connects again.
func (q *mqttSink) connect(ctx context.Context) error {
	o := mqtt.NewClientOptions().AddBroker(q.broker).SetClientID(q.clientID).
		SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(q.timeout).SetWriteTimeout(q.timeout).
		SetKeepAlive(30 * time.Second)
	if !strings.HasPrefix(q.broker, "tcp://") && !strings.HasPrefix(q.broker, "mqtt://") {
		o.SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	c := mqtt.NewClient(o)
	if err := q.wait(ctx, c.Connect(), time.After(q.timeout+time.Second)); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect to %s: %w", q.broker, err)
	}
	q.client = c
	return nil
}

// deliver publishes recs and waits for their PUBACKs, in order, at most
// timeout in all.
func (q *mqttSink) deliver(ctx context.Context, recs []store.Record) (int, error) {
	if q.client != nil && !q.client.IsConnectionOpen() {
		q.close()
	}
	if q.client == nil {
		if err := q.connect(ctx); err != nil {
			return 0, err
		}
	}
	toks := make([]mqtt.Token, len(recs))
	for i := range recs {
		toks[i] = q.client.Publish(q.topic.fill(&recs[i]), 1, false, recs[i].Payload)
	}
	deadline := time.After(q.timeout)
	for i, t := range toks {
		if err := q.wait(ctx, t, deadline); err != nil {
			q.close() // what is in flight is published again
			return i, fmt.Errorf("publish seq %d to %s: %w", recs[i].Seq, q.broker, err)
		}
	}
	return len(recs), nil
}

func (q *mqttSink) wait(ctx context.Context, t mqtt.Token, deadline <-chan time.Time) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-deadline:
		return fmt.Errorf("no answer within %s", q.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *mqttSink) close() {
	if q.client != nil {
		q.client.Disconnect(250)
		q.client = nil
	}
}
