package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// After a refusal the password file is read again: a corrected one is
// used at the next attempt, and the message names the key in use.
func TestStaticCredsRereadPasswordFileAfterRefusal(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "mqtt.pass")
	os.WriteFile(pass, []byte("wrong\n"), 0o600)
	m := config.MQTT{Broker: config.Broker{Host: "b", Port: 1883}, Username: "u", PasswordFile: pass, Password: "wrong"}
	cfg := &config.Config{MQTT: m}
	src, err := credentialsFrom(cfg, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := src.endpoint(context.Background())
	if ep.Password != "wrong" {
		t.Fatal("first endpoint lacks the configured password")
	}
	os.WriteFile(pass, []byte("right\r\n"), 0o600)
	if ep, _ := src.endpoint(context.Background()); ep.Password != "wrong" {
		t.Error("the file was read again without a refusal")
	}
	src.refused()
	if ep, _ := src.endpoint(context.Background()); ep.Password != "right" || ep.BrokerURL != "tcp://b:1883" || ep.Username != "u" {
		t.Errorf("after a refusal: endpoint %s as %q, password fixed: %v", ep.BrokerURL, ep.Username, ep.Password == "right")
	}
	// An unreadable file keeps the password in use.
	os.Remove(pass)
	src.refused()
	if ep, _ := src.endpoint(context.Background()); ep.Password != "right" {
		t.Error("a missing file lost the password")
	}
	if k := credentialKeys(src); !strings.Contains(k, "mqtt.password_file") || !strings.Contains(k, pass) {
		t.Errorf("credential keys %q, want mqtt.password_file and its path", k)
	}
	inline, _ := credentialsFrom(&config.Config{MQTT: config.MQTT{Broker: m.Broker, Password: "x"}}, nil, quietLog())
	if k := credentialKeys(inline); k != "mqtt.username and mqtt.password" {
		t.Errorf("inline password: credential keys %q", k)
	}
}

// The account password file is read again before each fetch; a changed
// password logs in from then on.
func TestBootstrapRereadPasswordFile(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "account.pass")
	os.WriteFile(pass, []byte(testAccount.Password+"\n"), 0o600)
	var built []string
	newSvc := func(o bootstrap.Options) (fetcher, error) {
		built = append(built, o.Password)
		c, err := bootstrap.New(o)
		if err != nil {
			return nil, err
		}
		return &cannedFetcher{Client: c, give: bootstrap.Credentials{Broker: config.Broker{TLS: true, Host: "b", Port: 8883}}}, nil
	}
	svc, _ := newSvc(testAccount)
	var logBuf bytes.Buffer
	b := newBootstrapCreds(svc, &memCache{}, config.MQTT{}, time.Hour, slog.New(slog.NewTextHandler(&logBuf, nil)))
	b.opts, b.passwordFile, b.newSvc = testAccount, pass, newSvc
	if _, err := b.endpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pass, []byte("fixed-pass\n"), 0o600)
	b.refused()
	if _, err := b.endpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(built) != 2 || built[1] != "fixed-pass" || b.opts.Password != "fixed-pass" {
		t.Fatalf("clients built with %d passwords; current fixed: %v", len(built), b.opts.Password == "fixed-pass")
	}
	if strings.Contains(logBuf.String(), "fixed-pass") || strings.Contains(logBuf.String(), testAccount.Password) {
		t.Error("a password is in the log")
	}
}
