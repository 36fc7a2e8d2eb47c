package agenttest

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// clientTimeout bounds each connect and publish of the helpers here.
const clientTimeout = 5 * time.Second

// ClientOptions returns paho options for a test client of brokerURL
// (tls://127.0.0.1:PORT or tcp://…): MQTT 3.1.1 only, TLS trusting only
// the PKI's CA (and offering its client certificate), clean session, no
// automatic reconnect or connect retry, so a refused connect is an error of
// the connect token. Adjust the result (SetCleanSession(false), handlers)
// before mqtt.NewClient.
func ClientOptions(brokerURL string, pki *PKI, user, pass, clientID string) (*mqtt.ClientOptions, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("broker url: %w", err)
	}
	o := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4). // no silent fallback to 3.1 that would hide the real CONNACK code
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(clientTimeout).
		SetWriteTimeout(clientTimeout).
		SetKeepAlive(30 * time.Second)
	if pki != nil && (u.Scheme == "tls" || u.Scheme == "ssl" || u.Scheme == "mqtts") {
		// ServerName set explicitly, as a broker given by IP needs
		// (docs/dependencies.md#paho-tls-servername-and-minversion).
		tc, err := pki.ClientTLSConfig(u.Hostname())
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// Publisher returns a connected paho client (see ClientOptions). A refused
// connect returns the connect token's error, e.g. packets.ErrorRefusedNotAuthorised
// for return code 5.
func Publisher(brokerURL string, pki *PKI, user, pass, clientID string) (mqtt.Client, error) {
	o, err := ClientOptions(brokerURL, pki, user, pass, clientID)
	if err != nil {
		return nil, err
	}
	return Connect(o)
}

// Connect makes a client from o and connects it within 5 s.
func Connect(o *mqtt.ClientOptions) (mqtt.Client, error) {
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(clientTimeout + time.Second) {
		c.Disconnect(0)
		return nil, errors.New("mqtt connect: timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect: %w", err)
	}
	return c, nil
}

// PublishQoS1 publishes payload to topic at QoS 1 and waits up to timeout
// for the PUBACK.
func PublishQoS1(c mqtt.Client, topic string, payload []byte, timeout time.Duration) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("publish %s: no PUBACK within %v", topic, timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}
