package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/agent/config"
)

// tlsConfig builds the client TLS settings for m: verified against ca_file
// (or the system roots), TLS 1.2 at least, server_name when the broker is
// an IP, and the client certificate when there is one.
func tlsConfig(m config.MQTT, certAsked *atomic.Bool) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         m.ServerName,
		InsecureSkipVerify: m.InsecureSkipVerify,
	}
	if tc.ServerName == "" {
		// Set explicitly: paho dials with the host as given, and for an IP
		// the name to verify must be the IP (docs/dependencies.md#paho-tls-servername-and-minversion).
		tc.ServerName = m.Broker.Host
	}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.ca_file %s: no PEM certificate in it", m.CAFile)
		}
		tc.RootCAs = pool
	}
	if m.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
		if err != nil {
			// The error names files, never key material.
			return nil, fmt.Errorf("mqtt.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if certAsked != nil {
		// Note whether the broker asked for a client certificate: under TLS
		// 1.3 it checks (or misses) it after the handshake, and its refusal
		// can arrive as a reset on our first write, which would otherwise
		// read as "unreachable".
		own := tc.Certificates
		tc.Certificates = nil
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			certAsked.Store(true)
			if len(own) > 0 {
				return &own[0], nil
			}
			return &tls.Certificate{}, nil
		}
	}
	return tc, nil
}

// clientSuffixer is what the session config needs of the store.
type clientSuffixer interface {
	ClientSuffix(draw func() int) (int, error)
}

// sessionConfigFrom resolves the session's settings from the configuration.
// The default client id is "{device_id}@{n}" with n drawn once and kept in
// the store: a client id that changed on every start (the old script's)
// would throw away the broker's persistent session and its queued messages.
func sessionConfigFrom(cfg *config.Config, db clientSuffixer) (sessionConfig, error) {
	m := cfg.MQTT
	sc := sessionConfig{
		ClientID:    m.ClientID,
		NotifyTopic: m.NotifyTopic,
		StatusTopic: m.StatusTopic,
		Keepalive:   m.Keepalive,
		Insecure:    m.InsecureSkipVerify,
		Oversize:    newOversizeMarker(m.MaxMessageSize),
	}
	if sc.ClientID == "" {
		n, err := db.ClientSuffix(func() int { return 1 + rand.IntN(9999) })
		if err != nil {
			return sessionConfig{}, fmt.Errorf("client id: %w", err)
		}
		sc.ClientID = cfg.DeviceID + "@" + strconv.Itoa(n)
	}
	return sc, nil
}

// endpointFor builds the endpoint for broker b with the [mqtt] TLS
// settings (ca_file, client certificate, server_name) and the credentials.
func endpointFor(m config.MQTT, b config.Broker, username, password string) (endpoint, error) {
	ep := endpoint{BrokerURL: b.URL(), Username: username, Password: password, HasCert: m.CertFile != ""}
	if b.TLS {
		m.Broker = b
		ep.CertAsked = new(atomic.Bool)
		tc, err := tlsConfig(m, ep.CertAsked)
		if err != nil {
			return endpoint{}, err
		}
		ep.TLS = tc
	}
	return ep, nil
}
