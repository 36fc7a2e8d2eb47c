package bootstrap

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"

	"github.com/edge-agent/edge-agent/agent/backoff"
)

// The requests are exactly what the seed script sent.
func TestFetchSendsWhatTheServiceExpects(t *testing.T) {
	s := newService(t, nil, nil)
	o := s.options()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o.Now = func() time.Time { return now }
	cr, err := newClient(t, o).Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}

	logins, lbs := s.requests()
	if len(logins) != 1 || len(lbs) != 1 {
		t.Fatalf("requests: %d login, %d loadBalance; want 1 each", len(logins), len(lbs))
	}
	login := logins[0]
	if login.Method != http.MethodPost {
		t.Errorf("login method = %s, want POST", login.Method)
	}
	if got := login.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("login Content-Type = %q, want application/json", got)
	}
	if login.RawQuery != loginQuery {
		t.Errorf("login query = %q, want %q (login_url's query sent as is)", login.RawQuery, loginQuery)
	}
	wantBody := `{"channel":"1","deviceId":"","password":"` + MD5Hex(password) + `","username":"` + accountUser + `"}`
	if string(login.Body) != wantBody {
		t.Errorf("login body = %s\nwant          %s", login.Body, wantBody)
	}

	lb := lbs[0]
	if lb.Method != http.MethodGet {
		t.Errorf("loadBalance method = %s, want GET", lb.Method)
	}
	if got := lb.Header.Values("accessToken"); len(got) != 1 || got[0] != token {
		t.Errorf("loadBalance accessToken header = %q, want [%q]", got, token)
	}
	if len(lb.Body) != 0 {
		t.Errorf("loadBalance has a body: %q", lb.Body)
	}

	want := Credentials{
		Broker:   config.Broker{TLS: true, Host: "127.0.0.1", Port: 1883},
		Username: mqttUsername, Password: mqttPassword, Token: token,
		FetchedAt: now,
		Account:   AccountID(o.LoginURL, o.LoadBalanceURL, accountUser),
	}
	if cr != want {
		t.Errorf("credentials = %#v (password %q, token %q)\nwant          %#v", cr, cr.Password, cr.Token, want)
	}
}

// Where the fields sit in the answers: the defaults and configured paths.
func TestAnswerShapes(t *testing.T) {
	lbTop := map[string]any{"broker": "ssl://h:1883", "username": "u", "password": "p-secret"}
	tests := []struct {
		name      string
		login, lb any
		paths     Options
		wantToken string
		wantUser  string
		wantPass  string
		wantHost  string
	}{
		{name: "top level", login: map[string]any{"Token": "t1"}, lb: lbTop,
			wantToken: "t1", wantUser: "u", wantPass: "p-secret", wantHost: "h"},
		{name: "lowercase token, envelope with code", login: map[string]any{"code": 0, "msg": "ok", "token": "t2"}, lb: lbTop,
			wantToken: "t2", wantUser: "u", wantPass: "p-secret", wantHost: "h"},
		{name: "under data", login: map[string]any{"code": 200, "data": map[string]any{"accessToken": "t3"}},
			lb:        map[string]any{"code": 200, "data": map[string]any{"brokerUrl": "tls://d:8883", "userName": "du", "Password": "dp-secret"}},
			wantToken: "t3", wantUser: "du", wantPass: "dp-secret", wantHost: "d"},
		{name: "numbers as text", login: map[string]any{"Token": "t4"},
			lb:        map[string]any{"data": map[string]any{"address": "n:1", "mqttUser": 5219709, "mqttPassword": 1234567}},
			wantToken: "t4", wantUser: "5219709", wantPass: "1234567", wantHost: "n"},
		{name: "top level wins over data", login: map[string]any{"Token": "top", "data": map[string]any{"Token": "inner"}}, lb: lbTop,
			wantToken: "top", wantUser: "u", wantPass: "p-secret", wantHost: "h"},
		{name: "configured paths",
			login: map[string]any{"result": map[string]any{"auth": map[string]any{"tk": "t5"}}, "Token": "not this"},
			lb: map[string]any{"servers": []any{map[string]any{"mq": "ssl://p:1883"}}, "cred": map[string]any{"u": "pu", "p": "pp-secret"},
				"broker": "tls://wrong:1", "username": "wrong", "password": "wrong"},
			paths:     Options{TokenPath: "result.auth.tk", BrokerPath: "servers.0.mq", UsernamePath: "cred.u", PasswordPath: "cred.p"},
			wantToken: "t5", wantUser: "pu", wantPass: "pp-secret", wantHost: "p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, fixed(200, tt.login), fixed(200, tt.lb))
			o := s.options()
			o.TokenPath, o.BrokerPath, o.UsernamePath, o.PasswordPath = tt.paths.TokenPath, tt.paths.BrokerPath, tt.paths.UsernamePath, tt.paths.PasswordPath
			cr, err := newClient(t, o).Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if cr.Token != tt.wantToken || cr.Username != tt.wantUser || cr.Password != tt.wantPass || cr.Broker.Host != tt.wantHost {
				t.Errorf("got token %q, user %q, password %q, host %q; want %q, %q, %q, %q",
					cr.Token, cr.Username, cr.Password, cr.Broker.Host, tt.wantToken, tt.wantUser, tt.wantPass, tt.wantHost)
			}
			if _, lbs := s.requests(); lbs[0].Header.Get("accessToken") != tt.wantToken {
				got := lbs[0].Header.Get("accessToken")
				t.Errorf("accessToken sent = %q, want %q", got, tt.wantToken)
			}
		})
	}
}

// Every broker form the service may answer is parsed, not sliced.
func TestBrokerForms(t *testing.T) {
	tests := []struct {
		addr      string
		plaintext bool // AllowPlaintext
		want      config.Broker
		wantErr   string
	}{
		{addr: "ssl://broker.example.com:1883", want: config.Broker{TLS: true, Host: "broker.example.com", Port: 1883}},
		{addr: "tls://10.0.0.5:8884", want: config.Broker{TLS: true, Host: "10.0.0.5", Port: 8884}},
		{addr: "mqtts://b.example", want: config.Broker{TLS: true, Host: "b.example", Port: 8883}},
		{addr: "SSL://b.example:1883", want: config.Broker{TLS: true, Host: "b.example", Port: 1883}},
		{addr: "b.example:1883", want: config.Broker{TLS: true, Host: "b.example", Port: 1883}},
		{addr: "b.example", want: config.Broker{TLS: true, Host: "b.example", Port: 8883}},
		{addr: "[::1]:1883", want: config.Broker{TLS: true, Host: "::1", Port: 1883}},
		{addr: "tcp://b.example:1883", plaintext: true, want: config.Broker{Host: "b.example", Port: 1883}},
		{addr: "mqtt://b.example", plaintext: true, want: config.Broker{Host: "b.example", Port: 1883}},
		{addr: "tcp://b.example:1883", wantErr: "plaintext broker (tcp://b.example:1883)"},
		{addr: "ftp://b.example", wantErr: `broker address is unusable: unsupported scheme "ftp"`},
		{addr: "ssl://b.example:99999", wantErr: "broker address is unusable"},
		{addr: "ssl://user:" + mqttPassword + "@b.example", wantErr: "must not contain credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			s := newService(t, nil, fixed(200, map[string]any{"broker": tt.addr, "username": "u", "password": mqttPassword}))
			o := s.options()
			o.AllowPlaintext = tt.plaintext
			cr, err := newClient(t, o).Fetch(context.Background())
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Fetch = %v, want an error with %q", cr.Broker, tt.wantErr)
				}
				e := asError(t, err)
				if e.Step != StepLoadBalance || !strings.Contains(err.Error(), tt.wantErr) || e.Unreachable() || e.Refused() {
					t.Errorf("error = %q (step %s, unreachable %v, refused %v); want a loadBalance answer error with %q",
						err, e.Step, e.Unreachable(), e.Refused(), tt.wantErr)
				}
				if _, lbs := s.counts(); lbs != 1 {
					t.Errorf("%d loadBalance requests, want 1 (a bad answer is not retried)", lbs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if cr.Broker != tt.want {
				t.Errorf("broker = %+v, want %+v", cr.Broker, tt.want)
			}
		})
	}
}

// HTTP statuses: what is retried, what is refused, how the error reads.
func TestHTTPErrors(t *testing.T) {
	serviceSays := map[string]any{"code": 1, "msg": "no: " + echoLogin}
	tests := []struct {
		name            string
		login, lb       handler
		wantStep        string
		wantStatus      int
		wantLogins      int
		wantLBs         int
		wantUnreachable bool
		wantRefused     bool
		wantText        []string // substrings of the error text
	}{
		{name: "login 500", login: fixed(500, serviceSays), wantStep: StepLogin, wantStatus: 500, wantLogins: 4,
			wantUnreachable: true, wantText: []string{"bootstrap: login: HTTP 500 Internal Server Error", "4 attempts", `service says "no: user account-user pass *** md5 *** MD5 *** app ***"`}},
		{name: "loadBalance 502", lb: fixed(502, "<html>bad gateway</html>"), wantStep: StepLoadBalance, wantStatus: 502,
			wantLogins: 1, wantLBs: 4, wantUnreachable: true, wantText: []string{"bootstrap: loadBalance: HTTP 502 Bad Gateway (https://127.0.0.1:"}},
		{name: "login 429", login: fixed(429, ""), wantStep: StepLogin, wantStatus: 429, wantLogins: 4, wantUnreachable: true,
			wantText: []string{"HTTP 429 Too Many Requests"}},
		{name: "login 401", login: fixed(401, serviceSays), wantStep: StepLogin, wantStatus: 401, wantLogins: 1,
			wantRefused: true, wantText: []string{"bootstrap: login: HTTP 401 Unauthorized: service says", "/auth/auth/login)"}},
		{name: "loadBalance 403", lb: fixed(403, map[string]any{"message": "expired: " + echo}), wantStep: StepLoadBalance,
			wantStatus: 403, wantLogins: 1, wantLBs: 1, wantRefused: true,
			wantText: []string{`HTTP 403 Forbidden: service says "expired: user account-user pass *** md5 *** MD5 *** app *** token ***"`}},
		{name: "loadBalance answer echoing the MQTT password", lb: fixed(200, map[string]any{"code": 0, "password": mqttPassword,
			"username": "u", "broker": "ssl://h/" + mqttPassword}), wantStep: StepLoadBalance, wantStatus: 200, wantLogins: 1, wantLBs: 1,
			wantText: []string{`broker address is unusable: broker address must not have a path ("/***")`}},
		{name: "login 404", login: fixed(404, "not found"), wantStep: StepLogin, wantStatus: 404, wantLogins: 1,
			wantText: []string{"HTTP 404 Not Found"}},
		{name: "login redirect", login: func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, "https://elsewhere.example/login?appSecret="+appSecret, http.StatusFound)
		}, wantStep: StepLogin, wantStatus: 302, wantLogins: 1,
			wantText: []string{"HTTP 302 Found: redirect to https://elsewhere.example/login not followed"}},
		{name: "login 200 saying it failed", login: fixed(200, map[string]any{"code": 401, "msg": "用户名或密码错误 " + echoLogin}),
			wantStep: StepLogin, wantStatus: 200, wantLogins: 1, wantRefused: true,
			wantText: []string{`login: answer has no token and says the request failed: service says "用户名或密码错误 user account-user pass ***`}},
		{name: "login 200 with an empty token and a failure code", login: fixed(200, map[string]any{"code": "A0210", "Token": "", "msg": "locked"}),
			wantStep: StepLogin, wantStatus: 200, wantLogins: 1, wantRefused: true, wantText: []string{`answer has no token and says the request failed: service says "locked"`}},
		{name: "login 200 success false", login: fixed(200, map[string]any{"success": false, "message": "bad appSecret"}),
			wantStep: StepLogin, wantStatus: 200, wantLogins: 1, wantRefused: true, wantText: []string{`service says "bad appSecret"`}},
		{name: "login 200 saying the service is busy", login: fixed(200, map[string]any{"code": "503", "msg": "busy"}),
			wantStep: StepLogin, wantStatus: 200, wantLogins: 4, wantUnreachable: true, wantText: []string{`says the request failed: service says "busy"`}},
		{name: "loadBalance 200 saying the token is bad", lb: fixed(200, map[string]any{"code": 40101, "msg": "token invalid " + token}),
			wantStep: StepLoadBalance, wantStatus: 200, wantLogins: 1, wantLBs: 1, wantRefused: true, wantText: []string{`answer has no broker and says the request failed: service says "token invalid ***"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, tt.login, tt.lb)
			_, err := newClient(t, s.options()).Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded, want an error")
			}
			e := asError(t, err)
			if e.Step != tt.wantStep || e.Status != tt.wantStatus || e.Unreachable() != tt.wantUnreachable || e.Refused() != tt.wantRefused || e.TLSFailed() {
				t.Errorf("error %q: step %q status %d unreachable %v refused %v tls %v; want %q %d %v %v false",
					err, e.Step, e.Status, e.Unreachable(), e.Refused(), e.TLSFailed(), tt.wantStep, tt.wantStatus, tt.wantUnreachable, tt.wantRefused)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nwant it to contain %q", err, want)
				}
			}
			if logins, lbs := s.counts(); logins != tt.wantLogins || lbs != tt.wantLBs {
				t.Errorf("requests: %d login, %d loadBalance; want %d, %d", logins, lbs, tt.wantLogins, tt.wantLBs)
			}
		})
	}
}

// The error for an exhausted retry reads as the issue asks.
func TestErrorText(t *testing.T) {
	s := newService(t, nil, fixed(500, ""))
	o := s.options()
	o.Attempts = 1
	_, err := newClient(t, o).Fetch(context.Background())
	want := "bootstrap: loadBalance: HTTP 500 Internal Server Error (" + s.srv.URL + lbPath + ")"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	s = newService(t, fixed(200, map[string]any{"token2": "x"}), nil)
	_, err = newClient(t, s.options()).Fetch(context.Background())
	want = `bootstrap: login: answer has no "Token" field`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `the answer's fields: token2`) {
		t.Errorf("error = %v\nwant it to start %s and list the answer's fields", err, want)
	}
}

// A failure that passes is retried through; the backoff sees the attempt numbers.
func TestRetryRecovers(t *testing.T) {
	s := newService(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 3 {
				answer(w, 503, "")
				return
			}
			goodLogin(w, r, n)
		},
		func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 2 {
				answer(w, 504, "")
				return
			}
			goodLB(w, r, n)
		})
	o := s.options()
	clk := &waitLog{}
	o.Backoff = backoff.Backoff{Min: time.Second, Max: time.Minute, Clock: clk}
	cr, err := newClient(t, o).Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if cr.Token != token || cr.Password != mqttPassword {
		t.Errorf("credentials = %v", cr)
	}
	if logins, lbs := s.counts(); logins != 3 || lbs != 2 {
		t.Errorf("requests: %d login, %d loadBalance; want 3, 2", logins, lbs)
	}
	// Login failed twice (waits 1s, 2s), loadBalance once (a fresh 1s).
	if want := []time.Duration{time.Second, 2 * time.Second, time.Second}; !slices.Equal(clk.asked, want) {
		t.Errorf("waits %v, want %v", clk.asked, want)
	}
}

// A bad answer is not retried and names the step and the field.
func TestMalformedAnswers(t *testing.T) {
	tests := []struct {
		name      string
		login, lb handler
		paths     Options
		wantStep  string
		wantText  string
	}{
		{name: "html", login: fixed(200, "<html>"+echo+"</html>"), wantStep: StepLogin,
			wantText: "answer is not JSON (Content-Type application/json): invalid character '<'"},
		{name: "plain text", login: func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("OK " + token))
		}, wantStep: StepLogin, wantText: "answer is not JSON (Content-Type text/plain)"},
		{name: "empty", login: fixed(200, ""), wantStep: StepLogin, wantText: "answer is empty"},
		{name: "trailing garbage", login: fixed(200, `{"Token":"x"} junk`), wantStep: StepLogin, wantText: "trailing data"},
		{name: "array", login: fixed(200, `["`+token+`"]`), wantStep: StepLogin, wantText: "answer is an array, not a JSON object with the token"},
		{name: "no token", login: fixed(200, map[string]any{"tok": token}), wantStep: StepLogin,
			wantText: `answer has no "Token" field (looked for the token as Token, accessToken, at the top level and under "data"; set bootstrap.token_field to its dotted path); the answer's fields: tok`},
		{name: "null token", login: fixed(200, map[string]any{"Token": nil}), wantStep: StepLogin, wantText: `answer's "Token" field (the token) is null`},
		{name: "null configured path", login: fixed(200, map[string]any{"data": map[string]any{"tk": nil}}), paths: Options{TokenPath: "data.tk"},
			wantStep: StepLogin, wantText: `answer's "data.tk" field (the token) is null`},
		{name: "token object", login: fixed(200, map[string]any{"Token": map[string]any{"v": token}}), wantStep: StepLogin,
			wantText: `answer's "Token" field (the token) is an object, not a string`},
		{name: "empty token", login: fixed(200, map[string]any{"Token": " "}), wantStep: StepLogin, wantText: `answer's "Token" field (the token) is empty`},
		{name: "no broker", lb: fixed(200, map[string]any{"data": map[string]any{"brokerAddr": "ssl://h:1883", "username": "u", "password": mqttPassword}}),
			wantStep: StepLoadBalance, wantText: `answer has no "broker" field (looked for the broker as broker, brokerUrl, brokerAddress, mqttUrl, mqttBroker, url, address, server, at the top level and under "data"; set bootstrap.broker_field to its dotted path); the answer's fields: data{brokerAddr, password, username}`},
		{name: "no MQTT password", lb: fixed(200, map[string]any{"broker": "ssl://h:1883", "username": "u"}),
			wantStep: StepLoadBalance, wantText: `answer has no "password" field`},
		{name: "no MQTT username", lb: fixed(200, map[string]any{"broker": "ssl://h:1883", "password": mqttPassword}),
			wantStep: StepLoadBalance, wantText: `answer has no "username" field`},
		{name: "too large", login: fixed(200, `{"Token":"`+strings.Repeat("x", maxAnswer)+`"}`), wantStep: StepLogin, wantText: "answer is larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, tt.login, tt.lb)
			o := s.options()
			o.TokenPath = tt.paths.TokenPath
			_, err := newClient(t, o).Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded, want an error")
			}
			e := asError(t, err)
			if e.Step != tt.wantStep || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q (step %s)\nwant step %s and %q", err, e.Step, tt.wantStep, tt.wantText)
			}
			if e.Unreachable() || e.Refused() || e.TLSFailed() || e.Status != 200 {
				t.Errorf("error %q is unreachable %v, refused %v, tls %v, status %d; want none, 200", err, e.Unreachable(), e.Refused(), e.TLSFailed(), e.Status)
			}
			if !strings.HasPrefix(err.Error(), "bootstrap: "+tt.wantStep+": ") {
				t.Errorf("error %q does not start with the step", err)
			}
			logins, lbs := s.counts()
			if tt.wantStep == StepLogin && (logins != 1 || lbs != 0) || tt.wantStep == StepLoadBalance && (logins != 1 || lbs != 1) {
				t.Errorf("requests: %d login, %d loadBalance; a bad answer is not retried", logins, lbs)
			}
		})
	}
}

// The configured paths are followed exactly and named when missing.
func TestConfiguredPathMissing(t *testing.T) {
	s := newService(t, fixed(200, map[string]any{"data": map[string]any{"Token": token}}), nil)
	o := s.options()
	o.TokenPath = "data.accessToken"
	_, err := newClient(t, o).Fetch(context.Background())
	want := `bootstrap: login: answer has no "data.accessToken" field (the token, from bootstrap.token_field); the answer's fields: data{Token}`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v\nwant    %s …", err, want)
	}
	asError(t, err)
}

// A service too slow to answer is retried, then reported as unreachable.
func TestTimeout(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	for _, tt := range []struct {
		name      string
		login, lb handler
		step      string
	}{
		{"login", slow, nil, StepLogin},
		{"loadBalance", nil, slow, StepLoadBalance},
		{"loadBalance body", nil, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"broker":`))
			w.(http.Flusher).Flush()
			slow(w, r, n)
		}, StepLoadBalance},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, tt.login, tt.lb)
			o := s.options()
			o.Timeout = 100 * time.Millisecond
			start := time.Now()
			_, err := newClient(t, o).Fetch(context.Background())
			took := time.Since(start)
			if err == nil {
				t.Fatal("Fetch succeeded, want a timeout")
			}
			e := asError(t, err)
			if !e.Unreachable() || e.Step != tt.step || e.Attempts != 4 || !strings.Contains(err.Error(), "no answer within 100ms") {
				t.Errorf("error %q: unreachable %v, step %s, attempts %d; want unreachable %s after 4 attempts, \"no answer within 100ms\"",
					err, e.Unreachable(), e.Step, e.Attempts, tt.step)
			}
			if took > 2*time.Second {
				t.Errorf("Fetch took %v; the timeout is 4 × 100ms", took)
			}
		})
	}
}

// Nothing listens: unreachable, retried, the URL without its query.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := Options{
		LoginURL: "https://" + addr + loginPath + "?" + loginQuery, LoadBalanceURL: "https://" + addr + lbPath,
		Username: accountUser, Password: password, CAFile: pki.CAFile,
		Timeout: time.Second, Backoff: backoff.Backoff{Min: time.Millisecond, Max: time.Millisecond},
	}
	_, err = newClient(t, o).Fetch(context.Background())
	e := asError(t, err)
	if !e.Unreachable() || e.Attempts != 4 || e.Status != 0 || !strings.Contains(err.Error(), "service unreachable") ||
		!strings.HasSuffix(err.Error(), "(https://"+addr+loginPath+", 4 attempts)") {
		t.Errorf("error %q: unreachable %v, attempts %d, status %d", err, e.Unreachable(), e.Attempts, e.Status)
	}
	if strings.Contains(err.Error(), "appId") {
		t.Errorf("error %q quotes the login URL's query", err)
	}
}

// Cancelling stops a Fetch waiting to retry; it is not "unreachable".
func TestCancel(t *testing.T) {
	s := newService(t, fixed(500, ""), nil)
	o := s.options()
	o.Backoff = backoff.Backoff{Min: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := newClient(t, o).Fetch(ctx)
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if logins, _ := s.counts(); logins == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no login request")
		}
	}
	cancel()
	select {
	case err := <-done:
		e := asError(t, err)
		if !errors.Is(err, context.Canceled) || e.Unreachable() || e.Refused() {
			t.Errorf("error %q: is Canceled %v, unreachable %v, refused %v; want Canceled only", err, errors.Is(err, context.Canceled), e.Unreachable(), e.Refused())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fetch did not return after cancel")
	}
	// Already cancelled: no request at all.
	s2 := newService(t, nil, nil)
	_, err := newClient(t, s2.options()).Fetch(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch(cancelled ctx) = %v, want Canceled", err)
	}
	if logins, _ := s2.counts(); logins != 0 {
		t.Errorf("%d requests with a cancelled context", logins)
	}
}

// The service's certificate is verified: each broken one is refused at
// once, as a TLS failure, with the reason.
func TestTLSVerified(t *testing.T) {
	tests := []struct {
		name     string
		certKey  []string
		caFile   string // "-" = system roots
		server   func(t *testing.T) string
		wantText string
	}{
		{name: "other CA", caFile: pki.OtherCAFile, wantText: "not signed by a trusted CA"},
		{name: "system roots", caFile: "-", wantText: "not signed by a trusted CA"},
		{name: "expired", certKey: []string{pki.ExpiredServerCert, pki.ExpiredServerKey}, wantText: "expired or not yet valid"},
		{name: "wrong host", certKey: []string{pki.WrongHostServerCert, pki.WrongHostServerKey}, wantText: "not valid for this host name"},
		{name: "httptest's own CA", server: func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			quiet(srv)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL
		}, wantText: "not signed by a trusted CA"},
		{name: "plain http on an https URL", server: func(t *testing.T) string {
			srv := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(srv.Close)
			return strings.Replace(srv.URL, "http://", "https://", 1)
		}, wantText: "did not answer with TLS"},
		{name: "TLS 1.1 only", server: func(t *testing.T) string {
			pair, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
			quiet(srv)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL
		}, wantText: "TLS: the handshake with the service failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				base string
				s    *service
			)
			if tt.server != nil {
				base = tt.server(t)
			} else {
				s = newService(t, nil, nil, tt.certKey...)
				base = s.srv.URL
			}
			o := Options{
				LoginURL: base + loginPath + "?" + loginQuery, LoadBalanceURL: base + lbPath,
				Username: accountUser, Password: password, CAFile: pki.CAFile,
				Timeout: 2 * time.Second, Backoff: backoff.Backoff{Min: time.Millisecond, Max: time.Millisecond},
			}
			switch tt.caFile {
			case "-":
				o.CAFile = ""
			case "":
			default:
				o.CAFile = tt.caFile
			}
			_, err := newClient(t, o).Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded, want a TLS failure")
			}
			e := asError(t, err)
			if !e.TLSFailed() || e.Unreachable() || e.Refused() || e.Attempts != 1 || e.Step != StepLogin || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q: tls %v unreachable %v refused %v attempts %d step %s; want a TLS failure at login, not retried, with %q",
					err, e.TLSFailed(), e.Unreachable(), e.Refused(), e.Attempts, e.Step, tt.wantText)
			}
			if s != nil {
				if logins, _ := s.counts(); logins != 0 {
					t.Errorf("the service got %d requests through a refused TLS connection", logins)
				}
			}
		})
	}
}

// The default client asks for TLS 1.2 at least and follows no redirect.
func TestDefaultHTTPClient(t *testing.T) {
	c := newClient(t, Options{LoginURL: "https://a.example/l", LoadBalanceURL: "https://a.example/lb", Username: "u", Password: "p"})
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", c.hc.Transport)
	}
	if tc := tr.TLSClientConfig; tc == nil || tc.MinVersion != tls.VersionTLS12 || tc.InsecureSkipVerify || tc.RootCAs != nil {
		t.Errorf("TLS config = %+v; want MinVersion TLS 1.2, verified against the system roots", tc)
	}
	if c.hc.CheckRedirect == nil {
		t.Error("redirects are followed")
	}
}

// Plain http works end to end only when allowed.
func TestPlaintextAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case loginPath:
			goodLogin(w, r, 1)
		default:
			answer(w, 200, map[string]any{"broker": "tcp://127.0.0.1:1883", "username": "u", "password": mqttPassword})
		}
	}))
	defer srv.Close()
	o := Options{LoginURL: srv.URL + loginPath + "?" + loginQuery, LoadBalanceURL: srv.URL + lbPath,
		Username: accountUser, Password: password, AllowPlaintext: true}
	cr, err := newClient(t, o).Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if cr.Broker.TLS || cr.Broker.Port != 1883 {
		t.Errorf("broker = %+v, want plaintext port 1883", cr.Broker)
	}
}

// New refuses what cannot work, without quoting the login URL.
func TestNewValidates(t *testing.T) {
	good := Options{LoginURL: "https://a.example/login?" + loginQuery, LoadBalanceURL: "https://a.example/lb", Username: "u", Password: password}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string // "" = accepted
	}{
		{"good", func(*Options) {}, ""},
		{"plain http login", func(o *Options) { o.LoginURL = "http://a.example/login?" + loginQuery },
			"login URL is plain http (http://a.example/login)"},
		{"plain http allowed", func(o *Options) {
			o.LoginURL = "http://a.example/login?" + loginQuery
			o.AllowPlaintext = true
		}, ""},
		{"plain http loadBalance", func(o *Options) { o.LoadBalanceURL = "http://a.example/lb" }, "loadBalance URL is plain http"},
		{"other scheme", func(o *Options) { o.LoginURL = "ftp://a.example/login?" + loginQuery }, `login URL has scheme "ftp"`},
		{"relative", func(o *Options) { o.LoginURL = "/login?" + loginQuery }, "login URL is not an absolute URL"},
		{"unparsable", func(o *Options) { o.LoginURL = "https://a.example/%zz?" + loginQuery }, "login URL is not an absolute URL"},
		{"no login URL", func(o *Options) { o.LoginURL = "" }, "login URL is empty"},
		{"no loadBalance URL", func(o *Options) { o.LoadBalanceURL = "" }, "loadBalance URL is empty"},
		{"no username", func(o *Options) { o.Username = "" }, "username is empty"},
		{"no password", func(o *Options) { o.Password = "" }, "password is empty"},
		{"bad path", func(o *Options) { o.TokenPath = "data..token" }, `token path "data..token" is not a dotted path`},
		{"missing CA file", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, "CA file: open /nonexistent/ca.pem"},
		{"CA file without PEM", func(o *Options) { o.CAFile = pki.Dir }, "CA file"},
		{"CA file is a key", func(o *Options) { o.CAFile = pki.ServerKey }, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := New(o)
			checkSecrets(t, err)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New error = %v, want one with %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "appId") {
				t.Errorf("error %q quotes the login URL's query", err)
			}
		})
	}
}

// waitLog is a backoff clock that records each wait and passes it at once.
type waitLog struct{ asked []time.Duration }

func (w *waitLog) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	w.asked = append(w.asked, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch, func() {}
}
