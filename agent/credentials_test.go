package agent

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/bootstrap"
	"github.com/edge-agent/edge-agent/agent/config"
)

// memCache is the store's credential cache in memory.
type memCache struct{ b []byte }

func (m *memCache) Credentials() ([]byte, error)  { return m.b, nil }
func (m *memCache) SetCredentials(b []byte) error { m.b = b; return nil }

// cannedFetcher answers Fetch with give and counts the fetches; CheckCached
// is the real client's.
type cannedFetcher struct {
	*bootstrap.Client
	give bootstrap.Credentials
	n    int
}

func (f *cannedFetcher) Fetch(context.Context) (bootstrap.Credentials, error) {
	f.n++
	return f.give, nil
}

var testAccount = bootstrap.Options{
	LoginURL:       "https://acct.example/auth/auth/login?appId=a&appSecret=s3cret",
	LoadBalanceURL: "https://acct.example/v1/auth/service/loadBalance",
	Username:       "gw-account",
	Password:       "account-pass",
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Cached credentials are used only when a fresh answer with them would be,
// and only by the account that fetched them; otherwise they are fetched
// anew.
func TestCachedCredentialsRechecked(t *testing.T) {
	mine := bootstrap.AccountID(testAccount.LoginURL, testAccount.LoadBalanceURL, testAccount.Username)
	cachedTLS := config.Broker{TLS: true, Host: "cached.example", Port: 8883}
	fresh := bootstrap.Credentials{Broker: config.Broker{TLS: true, Host: "fresh.example", Port: 8883},
		Username: "u", Password: "p", FetchedAt: time.Now(), Account: mine}
	for _, tt := range []struct {
		name      string
		plaintext bool // mqtt.allow_plaintext
		cached    bootstrap.Credentials
		wantFetch bool
	}{
		{"same account, TLS", false, bootstrap.Credentials{Broker: cachedTLS, Account: mine}, false},
		{"plaintext broker, plaintext not allowed", false,
			bootstrap.Credentials{Broker: config.Broker{Host: "cached.example", Port: 1883}, Account: mine}, true},
		{"plaintext broker, plaintext allowed", true,
			bootstrap.Credentials{Broker: config.Broker{Host: "cached.example", Port: 1883}, Account: mine}, false},
		{"another login URL", false, bootstrap.Credentials{Broker: cachedTLS,
			Account: bootstrap.AccountID("https://other.example/login?appSecret=x", testAccount.LoadBalanceURL, testAccount.Username)}, true},
		{"another user name", false, bootstrap.Credentials{Broker: cachedTLS,
			Account: bootstrap.AccountID(testAccount.LoginURL, testAccount.LoadBalanceURL, "gw-other")}, true},
		{"written without the account", false, bootstrap.Credentials{Broker: cachedTLS}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testAccount
			o.AllowPlaintext = tt.plaintext
			c, err := bootstrap.New(o)
			if err != nil {
				t.Fatal(err)
			}
			f := &cannedFetcher{Client: c, give: fresh}
			tt.cached.Username, tt.cached.Password, tt.cached.FetchedAt = "cu", "cp", time.Now()
			raw, err := tt.cached.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			cache := &memCache{b: raw}
			b := newBootstrapCreds(f, cache, config.MQTT{AllowPlaintext: tt.plaintext}, time.Hour, quietLog())
			ep, err := b.endpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := tt.cached.Broker.URL()
			if tt.wantFetch {
				want = fresh.Broker.URL()
			}
			if ep.BrokerURL != want || (f.n == 1) != tt.wantFetch {
				t.Errorf("endpoint %s after %d fetches; want %s (fetch: %v)", ep.BrokerURL, f.n, want, tt.wantFetch)
			}
			if tt.wantFetch {
				var stored bootstrap.Credentials
				if err := stored.UnmarshalBinary(cache.b); err != nil || stored.Broker != fresh.Broker || stored.Account != mine {
					t.Errorf("cache now holds %v (%v), want the fresh credentials", stored, err)
				}
			}
		})
	}
}
