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
		// the name to verify must be the IP (PITFALLS.md).
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
	} else if certAsked != nil {
		// Without a client certificate, note whether the broker asked for
		// one: under TLS 1.3 its refusal can arrive as a reset after the
		// handshake, which would otherwise read as "unreachable".
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			certAsked.Store(true)
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
	if cfg.Bootstrap.Enabled() && m.Broker.Host == "" {
		return sessionConfig{}, fmt.Errorf("bootstrap from the account service is not supported by this version yet: set mqtt.broker, mqtt.username and mqtt.password_file")
	}
	sc := sessionConfig{
		BrokerURL:   m.Broker.URL(),
		Username:    m.Username,
		Password:    m.Password,
		ClientID:    m.ClientID,
		NotifyTopic: m.NotifyTopic,
		StatusTopic: m.StatusTopic,
		Keepalive:   m.Keepalive,
		Insecure:    m.InsecureSkipVerify,
	}
	if m.Broker.TLS {
		sc.CertAsked = new(atomic.Bool)
		tc, err := tlsConfig(m, sc.CertAsked)
		if err != nil {
			return sessionConfig{}, err
		}
		sc.TLS = tc
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
