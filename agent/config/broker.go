package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Broker is a parsed MQTT broker address. The zero Broker means "none
// configured" (the bootstrap flow supplies one).
type Broker struct {
	TLS  bool
	Host string // without brackets, also for IPv6
	Port int
}

// Default ports (MQTT over TLS and plain MQTT, IANA).
const (
	DefaultTLSPort   = 8883
	DefaultPlainPort = 1883
)

// ParseBroker parses a broker address as the config file and the account
// service write it:
//
//	tls://host:port, ssl://…, mqtts://…   TLS
//	tcp://host:port, mqtt://…             plaintext
//	host:port, host, [::1]:8883, ::1      no scheme: TLS
//
// The port defaults to 8883 for TLS and 1883 for plaintext. TLS is never
// inferred from the port: the account service answers "ssl://host:1883".
// Errors never repeat credentials that were (wrongly) put into the address.
func ParseBroker(s string) (Broker, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Broker{}, errors.New("empty broker address")
	}
	// Checked before url.Parse, whose errors quote the whole input.
	if strings.Contains(s, "@") {
		return Broker{}, errors.New("broker address must not contain credentials (user@host); use mqtt.username and mqtt.password_file")
	}
	if ip := net.ParseIP(s); ip != nil && strings.Contains(s, ":") {
		// A bare IPv6 address: its colons are not a port separator.
		return Broker{TLS: true, Host: s, Port: DefaultTLSPort}, nil
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if i := strings.Index(s, ":/"); i > 0 && !strings.ContainsAny(s[:i], ".[]") {
			return Broker{}, fmt.Errorf("scheme %q must be followed by \"://\"", s[:i])
		}
		scheme, rest = "tls", s
	}
	var b Broker
	switch strings.ToLower(scheme) {
	case "tls", "ssl", "mqtts":
		b.TLS = true
	case "tcp", "mqtt":
	case "":
		return Broker{}, errors.New("missing scheme before \"://\"")
	default:
		return Broker{}, fmt.Errorf("unsupported scheme %q (want tls, ssl, mqtts, tcp or mqtt)", scheme)
	}
	u, err := url.Parse("x://" + rest)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Broker{}, fmt.Errorf("bad broker address: %v", err)
	}
	if u.Path != "" && u.Path != "/" {
		return Broker{}, fmt.Errorf("broker address must not have a path (%q)", u.Path)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return Broker{}, errors.New("broker address must not have a query or fragment")
	}
	b.Host = u.Hostname()
	if b.Host == "" {
		return Broker{}, errors.New("broker address has no host")
	}
	if strings.Contains(u.Host, "]") && !strings.HasPrefix(u.Host, "[") {
		return Broker{}, errors.New("bad broker address: stray \"]\"")
	}
	if strings.Contains(b.Host, ":") && !strings.HasPrefix(u.Host, "[") {
		// "::1:8883" could be a port or the last group of the address.
		return Broker{}, errors.New("an IPv6 broker address with a scheme or port needs brackets, like tls://[::1]:8883")
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return Broker{}, errors.New("broker address has an empty port after \":\"")
		}
		b.Port = DefaultPlainPort
		if b.TLS {
			b.Port = DefaultTLSPort
		}
		return b, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Broker{}, fmt.Errorf("broker port %q is not a number from 1 to 65535", port)
	}
	b.Port = n
	return b, nil
}

// URL returns the address as paho wants it: "tls://host:port" or
// "tcp://host:port" (IPv6 hosts in brackets). The zero Broker gives "".
func (b Broker) URL() string {
	if b.Host == "" {
		return ""
	}
	scheme := "tcp://"
	if b.TLS {
		scheme = "tls://"
	}
	return scheme + net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
}

// String is URL: the canonical form, fit for logs and status (it holds no
// secret).
func (b Broker) String() string { return b.URL() }
