package bootstrap

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
)

func TestCredentialsRoundTrip(t *testing.T) {
	for _, c := range []Credentials{
		{Broker: config.Broker{TLS: true, Host: "broker.example.com", Port: 1883}, Username: mqttUsername, Password: mqttPassword,
			Token: token, FetchedAt: now, Expires: now.Add(2 * time.Hour)},
		{Broker: config.Broker{TLS: true, Host: "::1", Port: 8883}, Username: "u", Password: "p", Token: "t", FetchedAt: now.Add(time.Nanosecond),
			Account: AccountID("https://a/l?appSecret=x", "https://a/lb", "u")},
		{Broker: config.Broker{Host: "10.0.0.1", Port: 1883}, Username: "u", Password: "p", Token: "t", FetchedAt: now.In(time.FixedZone("CST", 8*3600))},
	} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%v): %v", c, err)
		}
		var got Credentials
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(%s): %v", b, err)
		}
		if got.Broker != c.Broker || got.Username != c.Username || got.Password != c.Password || got.Token != c.Token || got.Account != c.Account ||
			!got.FetchedAt.Equal(c.FetchedAt) || !got.Expires.Equal(c.Expires) || got.Expires.IsZero() != c.Expires.IsZero() {
			t.Errorf("round trip of %v gave %v (password %q, token %q)", c, got, got.Password, got.Token)
		}
	}
}

func TestCredentialsUnmarshalErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`not json ` + mqttPassword, "not valid JSON"},
		{`{"v":2,"broker":"tls://h:1"}`, "version 2, want 1"},
		{`{"v":1,"password":"` + mqttPassword + `"}`, "empty broker address"},
		{`{"v":1,"broker":"ftp://h"}`, "unsupported scheme"},
	} {
		var c Credentials
		err := c.UnmarshalBinary([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("UnmarshalBinary(%s) = %v, want an error with %q", tt.in, err, tt.want)
		}
		checkSecrets(t, err)
	}
	if _, err := (Credentials{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary of credentials without a broker succeeded")
	}
}

// Printing or logging Credentials never shows the secrets.
func TestCredentialsPrintNoSecrets(t *testing.T) {
	c := Credentials{Broker: config.Broker{TLS: true, Host: "h", Port: 1883}, Username: mqttUsername, Password: mqttPassword,
		Token: token, FetchedAt: now, Expires: now.Add(time.Hour)}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("fetched", "creds", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("fetched", "creds", &c)
	outs := []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, &c), buf.String()}
	for _, out := range outs {
		if strings.Contains(out, mqttPassword) || strings.Contains(out, token) {
			t.Errorf("printed credentials hold a secret: %s", out)
		}
	}
	if !strings.Contains(outs[0], "tls://h:1883") || !strings.Contains(outs[0], mqttUsername) || !strings.Contains(buf.String(), "tls://h:1883") {
		t.Errorf("printed credentials lack the broker or user: %s / %s", outs[0], buf.String())
	}
}

func TestMD5Hex(t *testing.T) {
	for in, want := range map[string]string{
		"":         "d41d8cd98f00b204e9800998ecf8427e",
		"password": "5f4dcc3b5aa765d61d8327deb882cf99",
		"pässwort": "82c81e1208ef287416f23e0f15e7e2ed",
	} {
		if got := MD5Hex(in); got != want {
			t.Errorf("MD5Hex(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	b := DefaultBackoff
	for n, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		if got := b.Next(); got < d/2 || got >= d {
			t.Fatalf("wait %d = %v, want in [%v, %v)", n+1, got, d/2, d)
		}
	}
}

// Cached credentials are used only by the account that fetched them, and
// only if a fresh answer with them would pass: a plaintext broker is
// refused without allow_plaintext, from the cache as from the service.
func TestCheckCached(t *testing.T) {
	o := Options{LoginURL: "https://acct.example/login?appSecret=" + appSecret, LoadBalanceURL: "https://acct.example/lb",
		Username: accountUser, Password: password}
	c := newClient(t, o)
	mine := AccountID(o.LoginURL, o.LoadBalanceURL, o.Username)
	tlsBroker := config.Broker{TLS: true, Host: "b", Port: 8883}
	tcpBroker := config.Broker{Host: "b", Port: 1883}
	plain := o
	plain.AllowPlaintext = true
	for _, tt := range []struct {
		name   string
		client *Client
		cr     Credentials
		want   string // "" = usable
	}{
		{"same account", c, Credentials{Broker: tlsBroker, Account: mine}, ""},
		{"another login URL", c, Credentials{Broker: tlsBroker,
			Account: AccountID("https://acct.example/login?appSecret=other", o.LoadBalanceURL, o.Username)}, "another login URL"},
		{"another user", c, Credentials{Broker: tlsBroker, Account: AccountID(o.LoginURL, o.LoadBalanceURL, "someone-else")}, "another login URL"},
		{"another loadBalance URL", c, Credentials{Broker: tlsBroker, Account: AccountID(o.LoginURL, "https://other/lb", o.Username)}, "another login URL"},
		{"no account recorded", c, Credentials{Broker: tlsBroker}, "another login URL"},
		{"plaintext broker refused", c, Credentials{Broker: tcpBroker, Account: mine}, "plaintext broker (tcp://b:1883)"},
		{"plaintext broker allowed", newClient(t, plain), Credentials{Broker: tcpBroker, Account: mine}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.client.CheckCached(tt.cr)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckCached: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckCached: %v, want an error with %q", err, tt.want)
			}
			checkSecrets(t, err)
		})
	}
	// What the cache stores keeps the account.
	b, _ := Credentials{Broker: tlsBroker, Account: mine}.MarshalBinary()
	var back Credentials
	if err := back.UnmarshalBinary(b); err != nil || c.CheckCached(back) != nil {
		t.Errorf("round trip through the cache: %v, %v", err, c.CheckCached(back))
	}
}
