package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/agent/config"
)

// Steps of the flow, as Error.Step names them.
const (
	StepLogin       = "login"
	StepLoadBalance = "loadBalance"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultAttempts = 4
)

// maxAnswer bounds what is read of an answer; real ones are a few hundred
// bytes, and a gateway has little memory to give a misbehaving proxy.
const maxAnswer = 1 << 20

// Options says where the account service is and how to talk to it. Every
// zero field means the default documented on it.
type Options struct {
	// LoginURL is POSTed the login request. Its query (appId, tenantId,
	// appSecret) is sent as is and never appears in an error.
	LoginURL string
	// LoadBalanceURL is GETed with the token from the login answer.
	LoadBalanceURL string
	// Username and Password are the account's; the password is sent as
	// its MD5 hex, as the service expects. Both are required.
	Username, Password string

	// CAFile is a PEM file of the CAs that may sign the service's
	// certificate; "" = the system roots.
	CAFile string
	// AllowPlaintext permits http:// URLs and a plaintext broker (tcp://,
	// mqtt://) in the answer; both are refused without it
	// (mqtt.allow_plaintext).
	AllowPlaintext bool

	// Dotted paths ("data.token"; a number indexes an array: "data.0.url")
	// of the fields in the answers, matched exactly. "" = the defaults
	// listed in the package documentation. TokenPath is looked up in the
	// login answer, the next three in the loadBalance answer, ExpiryPath
	// in both (the earlier time wins).
	TokenPath, BrokerPath, UsernamePath, PasswordPath, ExpiryPath string

	// Timeout bounds each HTTP request, answer included; default 10s.
	Timeout time.Duration
	// Attempts is how often each of the two requests is tried before
	// Fetch gives up; default 4. Only network errors, timeouts, HTTP 408,
	// 429 and 5xx are tried again.
	Attempts int
	// Backoff paces the attempts of each request (a fresh copy each);
	// the zero value is DefaultBackoff: from 1s, doubling, capped at 30s,
	// jittered so a fleet that lost the service together does not return
	// to it in lockstep.
	Backoff backoff.Backoff
	// HTTPClient replaces the client New builds (then CAFile is unused).
	// The default trusts CAFile or the system roots, requires TLS 1.2,
	// honours HTTPS_PROXY, and does not follow redirects.
	HTTPClient *http.Client
	// Now is the clock for FetchedAt and relative expiry; default time.Now.
	Now func() time.Time
}

// Client fetches MQTT credentials from the account service. It holds no
// mutable state: Fetch may be called from several goroutines.
type Client struct {
	o        Options
	login    *url.URL
	lb       *url.URL
	hc       *http.Client
	body     []byte   // the login request, the same for every attempt
	secrets  redactor // password, its MD5, query values of both URLs
	loginLoc string   // LoginURL without query, for errors
	lbLoc    string
	account  string // AccountID of the options
}

// New checks o and builds the client. Its errors name the option that is
// wrong and never quote the login URL.
func New(o Options) (*Client, error) {
	c := &Client{o: o}
	var err error
	if c.login, err = checkURL("login URL", o.LoginURL, o.AllowPlaintext); err != nil {
		return nil, err
	}
	if c.lb, err = checkURL("loadBalance URL", o.LoadBalanceURL, o.AllowPlaintext); err != nil {
		return nil, err
	}
	if o.Username == "" {
		return nil, errors.New("bootstrap: username is empty")
	}
	if o.Password == "" {
		return nil, errors.New("bootstrap: password is empty")
	}
	for _, p := range []struct{ name, path string }{
		{"token path", o.TokenPath}, {"broker path", o.BrokerPath}, {"username path", o.UsernamePath},
		{"password path", o.PasswordPath}, {"expiry path", o.ExpiryPath},
	} {
		if p.path != "" && splitPath(p.path) == nil {
			return nil, fmt.Errorf("bootstrap: %s %q is not a dotted path like \"data.token\"", p.name, p.path)
		}
	}
	c.loginLoc, c.lbLoc = location(c.login), location(c.lb)
	c.account = AccountID(o.LoginURL, o.LoadBalanceURL, o.Username)

	if c.o.Timeout <= 0 {
		c.o.Timeout = DefaultTimeout
	}
	if c.o.Attempts <= 0 {
		c.o.Attempts = DefaultAttempts
	}
	if c.o.Backoff.Min == 0 {
		c.o.Backoff = DefaultBackoff
	}
	if c.o.Now == nil {
		c.o.Now = time.Now
	}
	c.hc = o.HTTPClient
	if c.hc == nil {
		if c.hc, err = httpClient(o.CAFile); err != nil {
			return nil, err
		}
	}

	md5 := MD5Hex(o.Password)
	// Field order and values as the service expects them
	// (docs/design.md#bootstrap): a struct keeps the order.
	c.body, err = json.Marshal(struct {
		Channel  string `json:"channel"`
		DeviceID string `json:"deviceId"`
		Password string `json:"password"`
		Username string `json:"username"`
	}{"1", "", md5, o.Username})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: login request: %w", err)
	}
	c.secrets = c.secrets.add(o.Password, md5, upper(md5))
	for _, u := range []*url.URL{c.login, c.lb} {
		for _, vs := range u.Query() {
			c.secrets = c.secrets.add(vs...)
		}
		if pw, ok := u.User.Password(); ok {
			c.secrets = c.secrets.add(pw)
		}
	}
	return c, nil
}

// checkURL parses an account-service URL; its errors never quote it (the
// login URL carries the app secret).
func checkURL(name, raw string, plaintext bool) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("bootstrap: %s is empty", name)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bootstrap: %s is not an absolute URL like https://host/path?query", name)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !plaintext {
			return nil, fmt.Errorf("bootstrap: %s is plain http (%s): the password and token would cross the network unencrypted; use https or allow plaintext", name, location(u))
		}
	default:
		return nil, fmt.Errorf("bootstrap: %s has scheme %q; use https", name, u.Scheme)
	}
	return u, nil
}

// location is u without user info, query or fragment: what errors show.
func location(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}

// httpClient is the default client: verified TLS 1.2 or newer, proxies from
// the environment, no redirects. A redirect is reported, not followed: it
// would resend the password or token to wherever the Location points.
func httpClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bootstrap: CA file %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// DefaultBackoff is Options.Backoff's default.
var DefaultBackoff = backoff.Backoff{Min: time.Second, Max: 30 * time.Second, Jitter: true}

// Fetch logs in and asks loadBalance for the broker and the MQTT
// credentials. Its error is always an *Error.
func (c *Client) Fetch(ctx context.Context) (Credentials, error) {
	red := c.secrets
	var cr Credentials
	var found []time.Time // expiry times seen in the answers

	err := c.do(ctx, StepLogin, c.loginLoc, red,
		func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.login.String(), bytes.NewReader(c.body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		},
		func(root any, start time.Time) *Error {
			tok, e := lookupString(root, c.o.TokenPath, tokenField, red)
			if e != nil {
				return e
			}
			cr.Token, cr.FetchedAt = tok, start
			ts, e := expiry(root, c.o.ExpiryPath, start)
			found = append(found[:0], ts...)
			return e
		})
	if err != nil {
		return Credentials{}, err
	}
	red = red.add(cr.Token)

	err = c.do(ctx, StepLoadBalance, c.lbLoc, red,
		func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.lb.String(), nil)
			if err == nil {
				// Set as written, not canonicalised ("Accesstoken"), to send
				// the header exactly as the seed script did.
				req.Header["accessToken"] = []string{cr.Token}
			}
			return req, err
		},
		func(root any, start time.Time) *Error {
			// The password first: once known, no message may carry it.
			lbRed := red
			if pass, e := lookupString(root, c.o.PasswordPath, passwordField, red); e == nil {
				lbRed = red.add(pass)
			}
			fail := func(e *Error) *Error { e.Msg = lbRed.clean(e.Msg); return e }
			addr, e := lookupString(root, c.o.BrokerPath, brokerField, lbRed)
			if e != nil {
				return fail(e)
			}
			b, err := config.ParseBroker(addr)
			if err != nil {
				return fail(&Error{Msg: fmt.Sprintf("answer's broker address is unusable: %v", err), kind: kindAnswer})
			}
			if !b.TLS && !c.o.AllowPlaintext {
				return fail(&Error{Msg: fmt.Sprintf("answer names a plaintext broker (%s); it is refused unless plaintext is allowed (mqtt.allow_plaintext)", b), kind: kindAnswer})
			}
			user, e := lookupString(root, c.o.UsernamePath, usernameField, lbRed)
			if e != nil {
				return fail(e)
			}
			pass, e := lookupString(root, c.o.PasswordPath, passwordField, lbRed)
			if e != nil {
				return fail(e)
			}
			ts, e := expiry(root, c.o.ExpiryPath, start)
			if e != nil {
				return fail(e)
			}
			cr.Broker, cr.Username, cr.Password = b, user, pass
			found = append(found, ts...)
			return nil
		})
	if err != nil {
		return Credentials{}, err
	}

	if c.o.ExpiryPath != "" && len(found) == 0 {
		return Credentials{}, &Error{Step: StepLoadBalance, URL: c.lbLoc, kind: kindAnswer,
			Msg: fmt.Sprintf("neither answer has the expiry field %q", c.o.ExpiryPath)}
	}
	if c.o.ExpiryPath == "" {
		// A token or password that is a JWT says when it expires.
		for _, s := range []string{cr.Token, cr.Password} {
			if t, ok := jwtExpiry(s); ok {
				found = append(found, t)
			}
		}
	}
	for _, t := range found {
		if cr.Expires.IsZero() || t.Before(cr.Expires) {
			cr.Expires = t
		}
	}
	cr.Account = c.account
	return cr, nil
}

// CheckCached says why credentials kept from an earlier Fetch must not be
// used by this client, or returns nil. They must come from the same
// account (login URL, loadBalance URL and user name: a cache written
// before a reconfiguration, or by an agent that did not record the
// account, is not trusted), and pass the checks a fresh answer passes: a
// plaintext broker only when plaintext is allowed. The error quotes
// neither URL.
func (c *Client) CheckCached(cr Credentials) error {
	if cr.Account != c.account {
		return errors.New("bootstrap: cached credentials were fetched for another login URL, loadBalance URL or user name")
	}
	if cr.Broker.Host == "" {
		return errors.New("bootstrap: cached credentials have no broker")
	}
	if !cr.Broker.TLS && !c.o.AllowPlaintext {
		return fmt.Errorf("bootstrap: cached credentials name a plaintext broker (%s); it is refused unless plaintext is allowed (mqtt.allow_plaintext)", cr.Broker)
	}
	return nil
}

// do runs one step: the request, tried up to Attempts times while it fails
// in a way that may pass, and parse on the JSON answer. parse's errors of
// kind unreachable are tried again too.
func (c *Client) do(ctx context.Context, step, loc string, red redactor,
	newReq func(context.Context) (*http.Request, error),
	parse func(root any, start time.Time) *Error,
) error {
	bo := c.o.Backoff // a fresh sequence for this step
	for n := 1; ; n++ {
		start := c.o.Now()
		root, status, e := c.once(ctx, newReq, red)
		if e == nil {
			e = parse(root, start)
		}
		if e == nil {
			return nil
		}
		e.Step, e.URL, e.Status, e.Attempts = step, loc, status, n
		e.Msg = red.clean(e.Msg)
		if e.kind != kindUnreachable || n >= c.o.Attempts {
			return e
		}
		if !bo.Sleep(ctx, nil) {
			return &Error{Step: step, URL: loc, Attempts: n, Msg: "cancelled", err: ctx.Err(), kind: kindCancelled}
		}
	}
}

// once makes one request and decodes its answer. status is the answer's
// HTTP status, 0 if none came.
func (c *Client) once(ctx context.Context, newReq func(context.Context) (*http.Request, error), red redactor) (root any, status int, e *Error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, &Error{Msg: "cancelled", err: err, kind: kindCancelled}
	}
	rctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := newReq(rctx)
	if err != nil {
		return nil, 0, &Error{Msg: "cannot build the request", kind: kindAnswer}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "edge-agent")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, c.transportError(ctx, rctx, err, "")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, 0, c.transportError(ctx, rctx, err, "reading the answer: ")
	}
	if rctx.Err() != nil {
		// The transport may still hand over what arrived while it gave up
		// (a server that ended its answer when the connection closed):
		// past the deadline, nothing read counts.
		return nil, 0, c.transportError(ctx, rctx, rctx.Err(), "")
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, statusError(resp, body, red)
	}
	if len(body) > maxAnswer {
		return nil, resp.StatusCode, &Error{Msg: "answer is larger than 1 MiB", kind: kindAnswer}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, resp.StatusCode, &Error{Msg: "answer is empty", kind: kindAnswer}
	}
	root, err = decodeJSON(body)
	if err != nil {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if ct == "" {
			ct = "none"
		}
		return nil, resp.StatusCode, &Error{Msg: fmt.Sprintf("answer is not JSON (Content-Type %s): %v", ct, err), err: err, kind: kindAnswer}
	}
	return root, resp.StatusCode, nil
}

// decodeJSON decodes one JSON value, keeping numbers exact (epoch
// milliseconds do not fit a float's integers everywhere).
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// statusError describes an answer whose HTTP status is not 2xx. The status
// text is Go's, not the server's reason phrase.
func statusError(resp *http.Response, body []byte, red redactor) *Error {
	code := resp.StatusCode
	e := &Error{Status: code, Msg: fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)), kind: kindHTTP}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.kind = kindRefused
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		e.kind = kindUnreachable
	case code >= 300 && code < 400:
		loc := "elsewhere"
		if u, err := resp.Location(); err == nil {
			loc = location(u)
		}
		e.Msg += fmt.Sprintf(": redirect to %s not followed; configure that URL", loc)
		return e
	}
	if root, err := decodeJSON(body); err == nil {
		if m := serviceMessage(root, red); m != "" {
			e.Msg += ": service says " + m
		}
	}
	return e
}
