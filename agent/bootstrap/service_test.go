package bootstrap

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"

	"github.com/edge-agent/edge-agent/agent/backoff"
)

// The secrets every test uses; checkSecrets asserts that no error carries
// any of them.
const (
	password     = "s3cret-Passw0rd!"
	appSecret    = "appSecret-4f9a1c77"
	token        = "tok-5e2b7d91aa"
	mqttPassword = "mqtt-pw-83c1e0"
	mqttUsername = "gw-5219709"
	accountUser  = "account-user"
	loginPath    = "/auth/auth/login"
	lbPath       = "/v1/auth/service/loadBalance"
	loginQuery   = "appId=app-77&tenantId=tenant-5&appSecret=" + appSecret
)

var secrets = []string{password, MD5Hex(password), strings.ToUpper(MD5Hex(password)), appSecret, token, mqttPassword}

// echoLogin and echo are what a careless service puts in its error
// messages: what the client sent, and (loadBalance) the token too.
var (
	echoLogin = fmt.Sprintf("user %s pass %s md5 %s MD5 %s app %s",
		accountUser, password, MD5Hex(password), strings.ToUpper(MD5Hex(password)), appSecret)
	echo = echoLogin + " token " + token
)

// pki is one throw-away CA for the package's tests (TestMain).
var pki *agenttest.PKI

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bootstrap-pki-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if pki, err = agenttest.NewPKI(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkSecrets fails the test if err's text holds a secret.
func checkSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error text holds the secret %q: %s", s, msg)
		}
	}
}

// asError returns err as an *Error, failing the test if it is not one.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *bootstrap.Error", err, err)
	}
	checkSecrets(t, err)
	if os.Getenv("SHOW_ERRORS") != "" {
		t.Logf("error: %v", err)
	}
	return e
}

// request is what the service saw of one request.
type request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// handler answers the n-th request (from 1) to its endpoint.
type handler func(w http.ResponseWriter, r *http.Request, n int)

// service is a fake account service on a real HTTPS server with a
// certificate from pki.
type service struct {
	srv *httptest.Server

	mu          sync.Mutex
	logins, lbs []request
	login, lb   handler
}

// answer writes v as a JSON answer (a string is written as is).
func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s, ok := v.(string); ok {
		io.WriteString(w, s)
		return
	}
	fmt.Fprint(w, mustJSON(v))
}

// fixed answers every request alike.
func fixed(status int, v any) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { answer(w, status, v) }
}

var (
	goodLogin = fixed(200, map[string]any{"Token": token})
	goodLB    = fixed(200, map[string]any{"broker": "ssl://127.0.0.1:1883", "username": mqttUsername, "password": mqttPassword})
)

// newService starts a service with the PKI's server certificate (or
// certFile/keyFile when given) that answers with login and lb (nil = the
// good answers).
func newService(t *testing.T, login, lb handler, certKey ...string) *service {
	t.Helper()
	s := &service{login: login, lb: lb}
	if s.login == nil {
		s.login = goodLogin
	}
	if s.lb == nil {
		s.lb = goodLB
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	cert, key := pki.ServerCert, pki.ServerKey
	if len(certKey) == 2 {
		cert, key = certKey[0], certKey[1]
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	quiet(s.srv)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	s.mu.Lock()
	var h handler
	var n int
	switch r.URL.Path {
	case loginPath:
		s.logins = append(s.logins, req)
		h, n = s.login, len(s.logins)
	case lbPath:
		s.lbs = append(s.lbs, req)
		h, n = s.lb, len(s.lbs)
	}
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r, n)
}

// counts returns how many login and loadBalance requests arrived.
func (s *service) counts() (logins, lbs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logins), len(s.lbs)
}

// quiet keeps the refused handshakes the tests cause out of the test log.
func quiet(srv *httptest.Server) {
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
}

// requests returns copies of what the service saw.
func (s *service) requests() (logins, lbs []request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.logins...), append([]request(nil), s.lbs...)
}

// options are Options for s with fast retries and a short timeout.
func (s *service) options() Options {
	return Options{
		LoginURL:       s.srv.URL + loginPath + "?" + loginQuery,
		LoadBalanceURL: s.srv.URL + lbPath,
		Username:       accountUser,
		Password:       password,
		CAFile:         pki.CAFile,
		Timeout:        2 * time.Second,
		Backoff:        backoff.Backoff{Min: time.Millisecond, Max: time.Millisecond},
	}
}

// client builds a Client from o, failing the test on error.
func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		checkSecrets(t, err)
		t.Fatalf("New: %v", err)
	}
	return c
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
