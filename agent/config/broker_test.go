package config

import (
	"strings"
	"testing"
)

func TestParseBroker(t *testing.T) {
	tests := []struct {
		in   string
		want Broker
		url  string
	}{
		{"tls://broker.example.com:8883", Broker{TLS: true, Host: "broker.example.com", Port: 8883}, "tls://broker.example.com:8883"},
		{"ssl://host:1883", Broker{TLS: true, Host: "host", Port: 1883}, "tls://host:1883"},
		{"mqtts://host", Broker{TLS: true, Host: "host", Port: 8883}, "tls://host:8883"},
		{"TLS://host", Broker{TLS: true, Host: "host", Port: 8883}, "tls://host:8883"},
		{"tcp://host", Broker{Host: "host", Port: 1883}, "tcp://host:1883"},
		{"mqtt://host:1884", Broker{Host: "host", Port: 1884}, "tcp://host:1884"},
		{"tcp://host:1883/", Broker{Host: "host", Port: 1883}, "tcp://host:1883"},
		{"host:1883", Broker{TLS: true, Host: "host", Port: 1883}, "tls://host:1883"},
		{"host", Broker{TLS: true, Host: "host", Port: 8883}, "tls://host:8883"},
		{"  host  ", Broker{TLS: true, Host: "host", Port: 8883}, "tls://host:8883"},
		{"10.0.0.1", Broker{TLS: true, Host: "10.0.0.1", Port: 8883}, "tls://10.0.0.1:8883"},
		{"10.0.0.1:1883", Broker{TLS: true, Host: "10.0.0.1", Port: 1883}, "tls://10.0.0.1:1883"},
		{"[::1]:8883", Broker{TLS: true, Host: "::1", Port: 8883}, "tls://[::1]:8883"},
		{"[::1]", Broker{TLS: true, Host: "::1", Port: 8883}, "tls://[::1]:8883"},
		{"::1", Broker{TLS: true, Host: "::1", Port: 8883}, "tls://[::1]:8883"},
		{"tcp://[fe80::1]:1883", Broker{Host: "fe80::1", Port: 1883}, "tcp://[fe80::1]:1883"},
		{"tls://[2001:db8::7]", Broker{TLS: true, Host: "2001:db8::7", Port: 8883}, "tls://[2001:db8::7]:8883"},
		{"host:65535", Broker{TLS: true, Host: "host", Port: 65535}, "tls://host:65535"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBroker(tt.in)
			if err != nil {
				t.Fatalf("ParseBroker(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseBroker(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.URL() != tt.url {
				t.Errorf("URL() = %q, want %q", got.URL(), tt.url)
			}
			if got.String() != tt.url {
				t.Errorf("String() = %q, want %q", got.String(), tt.url)
			}
		})
	}
}

func TestParseBrokerRejects(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"tls://host:99999", "1 to 65535"},
		{"tls://host:0", "1 to 65535"},
		{"tls://host:88x", "port"},
		{"host:-1", "port"},
		{"tls://host:", "empty port"},
		{"tls://:8883", "no host"},
		{"tls://", "no host"},
		{":8883", "no host"},
		{"tls://host:8883/mqtt", "path"},
		{"tls://host/x", "path"},
		{"tls://host?x=1", "query"},
		{"tls://host#frag", "fragment"},
		{"ws://host", "unsupported scheme"},
		{"https://host", "unsupported scheme"},
		{"://host", "missing scheme"},
		{"tcp:/host", "://"},
		{"tls://ho st", "bad broker address"},
		{"tls://[::1", "bad broker address"},
		{"tls://::1:8883", "brackets"},
		{"tls://user:pw@host", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBroker(tt.in)
			if err == nil {
				t.Fatalf("ParseBroker(%q) = %+v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseBroker(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseBrokerNeverQuotesCredentials(t *testing.T) {
	for _, in := range []string{"tls://gw:S3cretPW@host:8883", "gw:S3cretPW@host", "tcp://:S3cretPW@host:bad"} {
		_, err := ParseBroker(in)
		if err == nil {
			t.Fatalf("ParseBroker(%q): no error", in)
		}
		if strings.Contains(err.Error(), "S3cretPW") {
			t.Errorf("ParseBroker(%q) error %q quotes the password", in, err)
		}
	}
}

func TestZeroBroker(t *testing.T) {
	if got := (Broker{}).URL(); got != "" {
		t.Errorf("Broker{}.URL() = %q, want \"\"", got)
	}
}
