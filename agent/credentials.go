package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edge-agent/edge-agent/agent/bootstrap"
	"github.com/edge-agent/edge-agent/agent/config"
)

// credentialsFrom picks the credential source the configuration asks for.
func credentialsFrom(cfg *config.Config, cache credCache, log *slog.Logger) (credSource, error) {
	if !cfg.Bootstrap.Enabled() {
		ep, err := endpointFor(cfg.MQTT, cfg.MQTT.Broker, cfg.MQTT.Username, cfg.MQTT.Password)
		if err != nil {
			return nil, err
		}
		return &staticCreds{mqtt: cfg.MQTT, ep: ep, log: log}, nil
	}
	b := cfg.Bootstrap
	opts := bootstrap.Options{
		LoginURL: b.LoginURL, LoadBalanceURL: b.LoadBalanceURL,
		Username: b.Username, Password: b.Password, CAFile: b.CAFile,
		TokenPath: b.TokenField, BrokerPath: b.BrokerField,
		UsernamePath: b.MQTTUsernameField, PasswordPath: b.MQTTPasswordField,
		AllowPlaintext: cfg.MQTT.AllowPlaintext,
		// Two tries per fetch; the session retries further with its own
		// jittered backoff, showing the bootstrap state meanwhile.
		Attempts: 2,
	}
	svc, err := newFetcher(opts)
	if err != nil {
		return nil, err
	}
	if cfg.MQTT.Broker.Host != "" {
		log.Warn("mqtt.broker is ignored: [bootstrap] gets the broker from the account service")
	}
	bc := newBootstrapCreds(svc, cache, cfg.MQTT, b.RefreshInterval, log.With("part", "bootstrap"))
	if b.PasswordFile != "" {
		bc.opts, bc.passwordFile, bc.newSvc = opts, b.PasswordFile, newFetcher
	}
	return bc, nil
}

func newFetcher(o bootstrap.Options) (fetcher, error) {
	c, err := bootstrap.New(o)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// staticCreds is the endpoint the configuration names. After the broker
// refused it, the password file (mqtt.password_file) is read again before
// the next attempt, so a corrected file is picked up without a restart.
//
// Only the session goroutine calls it.
type staticCreds struct {
	mqtt  config.MQTT
	ep    endpoint
	stale bool // the broker refused ep
	log   *slog.Logger
}

func (s *staticCreds) endpoint(context.Context) (endpoint, error) {
	if s.stale && s.mqtt.PasswordFile != "" {
		s.stale = false
		pw, err := config.ReadSecretFile(s.mqtt.PasswordFile)
		switch {
		case err != nil:
			s.log.Warn("cannot read mqtt.password_file again; trying the password read before", "err", err)
		case pw != s.ep.Password:
			ep, err := endpointFor(s.mqtt, s.mqtt.Broker, s.mqtt.Username, pw)
			if err != nil { // the TLS settings loaded at start: not expected
				s.log.Warn("mqtt.password_file has changed but cannot be used", "err", err)
				break
			}
			s.ep = ep
			s.log.Info("mqtt.password_file has changed; connecting with the password it now holds")
		}
	}
	return s.ep, nil
}

func (s *staticCreds) refused()                                        { s.stale = true }
func (*staticCreds) refreshAt() time.Time                              { return time.Time{} }
func (*staticCreds) refresh(context.Context) (changed bool, err error) { return false, nil }

// credentialKeys names the configuration keys behind the credentials the
// broker refused, for the message that says what to check.
func (s *staticCreds) credentialKeys() string {
	pw := "mqtt.password"
	if s.mqtt.PasswordFile != "" {
		pw = "mqtt.password_file (" + s.mqtt.PasswordFile + ")"
	}
	return "mqtt.username and " + pw
}

func (*bootstrapCreds) credentialKeys() string {
	return "the MQTT user name and password the account service hands out (they are fetched again)"
}

// credentialKeys names the keys behind src's credentials, for a refusal.
func credentialKeys(src credSource) string {
	if k, ok := src.(interface{ credentialKeys() string }); ok {
		return k.credentialKeys()
	}
	return "mqtt.username and mqtt.password"
}

// refusedCredentials: the broker refused the user name or password
// (mosquitto says 5, others 4; docs/dependencies.md#paho-return-codes-4-and-5).
func refusedCredentials(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised)
}

// credCache keeps the last good account-service credentials across restarts.
type credCache interface {
	Credentials() ([]byte, error)
	SetCredentials([]byte) error
}

// fetcher is what the agent needs of the account-service client.
type fetcher interface {
	Fetch(ctx context.Context) (bootstrap.Credentials, error)
	// CheckCached says why cached credentials are not for this client.
	CheckCached(bootstrap.Credentials) error
}

// bootstrapCreds gets the broker and MQTT credentials from the account
// service (login, then loadBalance), like the script it replaces, and keeps
// the last good ones in the store: a restart while the service is down
// still connects. They are fetched again when the broker refuses them, when
// the answer said they expire, and every refresh interval. Cached ones are
// used only if they were fetched for the configured account and pass the
// checks a fresh answer passes. Before each fetch the account password file
// is read again, so a corrected one is used without a restart.
//
// Only the session goroutine calls it.
type bootstrapCreds struct {
	svc      fetcher
	cache    credCache
	mqtt     config.MQTT
	interval time.Duration
	log      *slog.Logger

	// With bootstrap.password_file: svc was built from opts, and newSvc
	// builds another when the file's password changes.
	opts         bootstrap.Options
	passwordFile string
	newSvc       func(bootstrap.Options) (fetcher, error)

	cur   *bootstrap.Credentials
	stale bool // the broker refused cur

	fetched, failed atomic.Uint64 // fetches from the service, for metrics
}

// expiryMargin: refresh this long before the credentials say they expire.
const expiryMargin = time.Minute

func newBootstrapCreds(svc fetcher, cache credCache, m config.MQTT, interval time.Duration, log *slog.Logger) *bootstrapCreds {
	b := &bootstrapCreds{svc: svc, cache: cache, mqtt: m, interval: interval, log: log}
	raw, err := cache.Credentials()
	if err != nil {
		log.Error("read cached credentials", "err", err)
		return b
	}
	if raw != nil {
		var c bootstrap.Credentials
		if err := c.UnmarshalBinary(raw); err != nil {
			log.Warn("cached credentials unreadable; fetching new ones", "err", err)
			return b
		}
		if err := svc.CheckCached(c); err != nil {
			log.Warn("cached credentials not used; fetching new ones", "reason", err)
			return b
		}
		b.cur = &c
		log.Info("using cached credentials from the account service", "broker", c.Broker.URL(),
			"fetched_at", c.FetchedAt.UTC().Format(time.RFC3339))
	}
	return b
}

func (b *bootstrapCreds) endpoint(ctx context.Context) (endpoint, error) {
	if b.cur == nil || b.stale {
		if err := b.fetch(ctx); err != nil {
			return endpoint{}, err
		}
	}
	return endpointFor(b.mqtt, b.cur.Broker, b.cur.Username, b.cur.Password)
}

func (b *bootstrapCreds) fetch(ctx context.Context) error {
	b.reloadPassword()
	c, err := b.svc.Fetch(ctx)
	if err != nil {
		b.failed.Add(1)
		return err
	}
	b.fetched.Add(1)
	b.cur, b.stale = &c, false
	if raw, err := c.MarshalBinary(); err != nil {
		b.log.Error("encode credentials for the cache", "err", err)
	} else if err := b.cache.SetCredentials(raw); err != nil {
		// Connecting matters more than the cache: go on.
		b.log.Error("cache credentials", "err", err)
	}
	b.log.Info("credentials from the account service", "broker", c.Broker.URL(), "expires", c.Expires)
	return nil
}

// reloadPassword reads bootstrap.password_file again and, when it holds
// another password, logs in with that one from now on. A file that cannot
// be read keeps the password in use.
func (b *bootstrapCreds) reloadPassword() {
	if b.passwordFile == "" || b.newSvc == nil {
		return
	}
	pw, err := config.ReadSecretFile(b.passwordFile)
	if err != nil {
		b.log.Warn("cannot read bootstrap.password_file again; logging in with the password read before", "err", err)
		return
	}
	if pw == b.opts.Password {
		return
	}
	o := b.opts
	o.Password = pw
	svc, err := b.newSvc(o)
	if err != nil {
		b.log.Warn("bootstrap.password_file has changed but cannot be used", "err", err)
		return
	}
	b.svc, b.opts = svc, o
	b.log.Info("bootstrap.password_file has changed; logging in with the password it now holds")
}

func (b *bootstrapCreds) refused() { b.stale = true }

func (b *bootstrapCreds) refreshAt() time.Time {
	if b.cur == nil {
		return time.Time{}
	}
	at := b.cur.FetchedAt.Add(b.interval)
	if !b.cur.Expires.IsZero() {
		at = minTime(at, b.cur.Expires.Add(-expiryMargin))
	}
	return at
}

func (b *bootstrapCreds) refresh(ctx context.Context) (bool, error) {
	old := *b.cur
	if err := b.fetch(ctx); err != nil {
		return false, err
	}
	return old.Broker != b.cur.Broker || old.Username != b.cur.Username || old.Password != b.cur.Password, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// describeBootstrapErr says why the account service gave no credentials,
// and whether it refused the login (state auth) rather than being
// unreachable (state bootstrap). bootstrap's errors carry no secret.
func describeBootstrapErr(err error) (cause string, refused bool) {
	var be *bootstrap.Error
	if errors.As(err, &be) {
		// A refused login and a failed TLS check do not cure themselves
		// (state auth); an unreachable or malformed service may (bootstrap).
		return "account service: " + be.Error(), be.Refused() || be.TLSFailed()
	}
	return fmt.Sprintf("account service: %v", err), false
}
