package bootstrap

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
)

// Credentials are what the account service hands out for the MQTT session.
// Password and Token are secrets: String, GoString and LogValue leave them
// out, so printing or logging Credentials is safe; MarshalBinary keeps
// them (the store writes those bytes to a file of mode 0600).
type Credentials struct {
	Broker   config.Broker
	Username string // MQTT
	Password string // MQTT; secret
	Token    string // the login answer's access token; secret
	// FetchedAt is when the login request that issued Token went out.
	FetchedAt time.Time
	// Expires is the earliest expiry the answers (or the token, as a JWT)
	// carry; zero = unknown. Fetch again before it.
	Expires time.Time
	// Account is AccountID of the service and user that issued them: a
	// cache holds them for that account only (Client.CheckCached).
	Account string
}

// String describes c without its secrets.
func (c Credentials) String() string {
	s := fmt.Sprintf("%s as %q, fetched %s", c.Broker, c.Username, c.FetchedAt.Format(time.RFC3339))
	if !c.Expires.IsZero() {
		s += ", expires " + c.Expires.Format(time.RFC3339)
	}
	return s
}

// GoString keeps %#v from printing the secrets.
func (c Credentials) GoString() string { return "bootstrap.Credentials{" + c.String() + "}" }

// LogValue keeps slog from printing the secrets.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("broker", c.Broker.String()),
		slog.String("username", c.Username),
		slog.Time("fetched_at", c.FetchedAt),
	}
	if !c.Expires.IsZero() {
		attrs = append(attrs, slog.Time("expires", c.Expires))
	}
	return slog.GroupValue(attrs...)
}

// credentialsV1 is the encoding; V says which, so a later version can read
// what this one stored.
type credentialsV1 struct {
	V         int       `json:"v"`
	Broker    string    `json:"broker"` // config.Broker.URL()
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	Token     string    `json:"token"`
	FetchedAt time.Time `json:"fetched_at"`
	Expires   time.Time `json:"expires,omitzero"`
	Account   string    `json:"account,omitempty"`
}

// MarshalBinary encodes c, secrets included, for the store's cache.
func (c Credentials) MarshalBinary() ([]byte, error) {
	if c.Broker.Host == "" {
		return nil, errors.New("bootstrap: credentials without a broker")
	}
	return json.Marshal(credentialsV1{
		V: 1, Broker: c.Broker.URL(), Username: c.Username, Password: c.Password,
		Token: c.Token, FetchedAt: c.FetchedAt, Expires: c.Expires, Account: c.Account,
	})
}

// UnmarshalBinary decodes what MarshalBinary encoded. Its errors never
// quote the bytes.
func (c *Credentials) UnmarshalBinary(b []byte) error {
	var v credentialsV1
	if err := json.Unmarshal(b, &v); err != nil {
		return errors.New("bootstrap: cached credentials are not valid JSON")
	}
	if v.V != 1 {
		return fmt.Errorf("bootstrap: cached credentials have version %d, want 1", v.V)
	}
	br, err := config.ParseBroker(v.Broker)
	if err != nil {
		return fmt.Errorf("bootstrap: cached credentials: %w", err)
	}
	*c = Credentials{Broker: br, Username: v.Username, Password: v.Password, Token: v.Token,
		FetchedAt: v.FetchedAt, Expires: v.Expires, Account: v.Account}
	return nil
}

// MD5Hex is the password as the account service expects it: the lowercase
// hex MD5 of its UTF-8 bytes. (MD5 is the service's choice, not a
// protection: the hash is as good as the password to anyone who sees it.)
func MD5Hex(password string) string {
	sum := md5.Sum([]byte(password))
	return hex.EncodeToString(sum[:])
}

// AccountID names the account that fetches credentials: the hex SHA-256 of
// the login URL, the loadBalance URL and the user name. A hash, not the
// URLs: the login URL carries the app secret.
func AccountID(loginURL, loadBalanceURL, username string) string {
	h := sha256.New()
	for _, s := range []string{loginURL, loadBalanceURL, username} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
