package main

import (
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/hw/led"
)

const (
	acctUser   = "gw-account"
	acctPass   = "account-password-never-logged"
	appSecret  = "app-secret-never-logged"
	mqttUserBS = "gw-from-service"
)

// accountService plays the cloud account service over real HTTPS: login
// answers a token, loadBalance the broker and MQTT credentials. mode
// switches it between answering, failing and hanging.
type accountService struct {
	t   *testing.T
	srv *http.Server
	url string

	mu       sync.Mutex
	mode     string // "ok", "500", "garbage", "slow"
	broker   string
	mqttPass string
	logins   []loginReq
	lbTokens []string
	tokenN   int
}

type loginReq struct {
	Method, ContentType, Query string
	Body                       map[string]any
	RawBody                    string
}

func newAccountService(t *testing.T, pki *agenttest.PKI, broker, mqttPass string) *accountService {
	a := &accountService{t: t, mode: "ok", broker: broker, mqttPass: mqttPass}
	mux := http.NewServeMux()
	mux.HandleFunc("/auth/auth/login", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(b, &body)
		a.mu.Lock()
		a.logins = append(a.logins, loginReq{r.Method, r.Header.Get("Content-Type"), r.URL.RawQuery, body, string(b)})
		a.tokenN++
		tok := fmt.Sprintf("token-%d-secret", a.tokenN)
		mode := a.mode
		a.mu.Unlock()
		if a.serveFault(w, mode) {
			return
		}
		sum := md5.Sum([]byte(acctPass))
		if body["password"] != hex.EncodeToString(sum[:]) || body["username"] != acctUser {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":401,"msg":"bad login"}`)
			return
		}
		fmt.Fprintf(w, `{"code":0,"Token":%q}`, tok)
	})
	mux.HandleFunc("/v1/auth/service/loadBalance", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.lbTokens = append(a.lbTokens, r.Header.Get("accessToken"))
		mode, broker, pass := a.mode, a.broker, a.mqttPass
		a.mu.Unlock()
		if a.serveFault(w, mode) {
			return
		}
		if !strings.HasPrefix(r.Header.Get("accessToken"), "token-") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"code":0,"data":{"broker":%q,"username":%q,"password":%q}}`, broker, mqttUserBS, pass)
	})
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.srv = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go a.srv.ServeTLS(ln, "", "")
	a.url = "https://" + ln.Addr().String()
	t.Cleanup(func() { a.srv.Close() })
	return a
}

func (a *accountService) serveFault(w http.ResponseWriter, mode string) bool {
	switch mode {
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
		return true
	case "garbage":
		fmt.Fprint(w, "<html>gateway error</html>")
		return true
	case "slow":
		time.Sleep(15 * time.Second)
		return true
	}
	return false
}

func (a *accountService) set(f func(a *accountService)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *accountService) loginCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.logins)
}

// bootstrapRig: mosquitto knows the user the account service hands out;
// the agent's config has [bootstrap] and no broker.
func newBootstrapRig(t *testing.T) (*rig, *accountService) {
	r := newRig(t, agenttest.MosquittoOptions{Users: map[string]string{mqttUserBS: "mqtt-pass-1", "cloud": "cloud-pass"}})
	// mosquitto's TLS listener is on 127.0.0.1: the service hands out ssl://, the old script's form.
	acct := newAccountService(t, r.pki, "ssl://"+strings.TrimPrefix(r.broker.URL, "tls://"), "mqtt-pass-1")
	os.WriteFile(filepath.Join(r.dir, "account.pass"), []byte(acctPass+"\n"), 0o600)
	r.noMQTTCreds = true
	r.extra = fmt.Sprintf(`
[bootstrap]
login_url = %q
load_balance_url = %q
username = %q
password_file = %q
ca_file = %q
`, acct.url+"/auth/auth/login?appId=app1&tenantId=t1&appSecret="+appSecret, acct.url+"/v1/auth/service/loadBalance",
		acctUser, filepath.Join(r.dir, "account.pass"), r.pki.CAFile)
	r.writeConfig(nil)
	return r, acct
}

func secretsIn(s string) []string {
	sum := md5.Sum([]byte(acctPass))
	var found []string
	for _, secret := range []string{acctPass, hex.EncodeToString(sum[:]), appSecret, "token-1-secret", "mqtt-pass-1", "mqtt-pass-2"} {
		if strings.Contains(s, secret) {
			found = append(found, secret)
		}
	}
	return found
}

func TestBootstrapFirstBootCacheAndRotation(t *testing.T) {
	r, acct := newBootstrapRig(t)
	p := r.startAgent()
	st := r.waitConnected()
	if !strings.Contains(st.Broker, strings.TrimPrefix(r.broker.URL, "tls://")) {
		t.Fatalf("broker %q", st.Broker)
	}
	// What the service received is exactly what it expects.
	acct.mu.Lock()
	login := acct.logins[0]
	lbTok := acct.lbTokens[0]
	acct.mu.Unlock()
	sum := md5.Sum([]byte(acctPass))
	if login.Method != http.MethodPost || !strings.HasPrefix(login.ContentType, "application/json") ||
		login.Query != "appId=app1&tenantId=t1&appSecret="+appSecret {
		t.Errorf("login request: %s %q query %q", login.Method, login.ContentType, login.Query)
	}
	want := map[string]any{"channel": "1", "deviceId": "", "password": hex.EncodeToString(sum[:]), "username": acctUser}
	if fmt.Sprint(login.Body) != fmt.Sprint(want) || len(login.Body) != 4 {
		t.Errorf("login body %s, want %v", login.RawBody, want)
	}
	if lbTok != "token-1-secret" {
		t.Errorf("loadBalance accessToken %q", lbTok)
	}

	// A restart while the service is down connects with the cached credentials.
	p.stop(5 * time.Second)
	acct.set(func(a *accountService) { a.mode = "500" })
	p = r.startAgent()
	r.waitConnected()
	if !strings.Contains(p.Log(), "using cached credentials") {
		t.Error("no log line about the cached credentials")
	}

	// The broker's password rotates: the agent is refused, goes back to the
	// service (up again) and reconnects with the new password.
	acct.set(func(a *accountService) { a.mode = "ok"; a.mqttPass = "mqtt-pass-2" })
	before := acct.loginCount()
	if err := r.broker.SetUsers(map[string]string{mqttUserBS: "mqtt-pass-2", "cloud": "cloud-pass"}); err != nil {
		t.Fatal(err)
	}
	if err := r.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(20*time.Second, func(s agent.Status) bool { return s.Connected && acct.loginCount() > before })
	if found := secretsIn(p.Log()); len(found) > 0 {
		t.Fatalf("secrets in the agent's log: %q", found)
	}
	if st, _ := r.status(); len(secretsIn(fmt.Sprint(st))) > 0 {
		t.Fatal("secrets in the status")
	}
}

func TestBootstrapServiceFaults(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{
		{"500", "500"},
		{"garbage", "login"},
		{"slow", "login"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r, acct := newBootstrapRig(t)
			acct.set(func(a *accountService) { a.mode = tc.mode })
			p := r.startAgent()
			st := r.waitStatus(40*time.Second, func(s agent.Status) bool { return s.State == led.StateBootstrap && s.LastError != "" })
			t.Logf("last_error: %s", st.LastError)
			if !strings.Contains(st.LastError, tc.want) || st.Connected {
				t.Fatalf("state %q last_error %q, want bootstrap naming %q", st.State, st.LastError, tc.want)
			}
			// It keeps retrying, and connects once the service answers.
			acct.set(func(a *accountService) { a.mode = "ok" })
			r.waitStatus(90*time.Second, func(s agent.Status) bool { return s.Connected })
			if found := secretsIn(p.Log()); len(found) > 0 {
				t.Fatalf("secrets in the agent's log: %q", found)
			}
		})
	}
}

// TestBootstrapRefusedLogin: a wrong account password is a refusal (auth),
// not an outage, and says which step refused; once password_file is
// corrected the agent logs in and connects without a restart.
func TestBootstrapRefusedLogin(t *testing.T) {
	r, _ := newBootstrapRig(t)
	os.WriteFile(filepath.Join(r.dir, "account.pass"), []byte("wrong-password\n"), 0o600)
	p := r.startAgent()
	st := r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.LastError != "" })
	if st.State != led.StateAuth || !strings.Contains(st.LastError, "login") || !strings.Contains(st.LastError, "401") {
		t.Fatalf("state %q last_error %q, want auth naming login and 401", st.State, st.LastError)
	}
	os.WriteFile(filepath.Join(r.dir, "account.pass"), []byte(acctPass+"\n"), 0o600)
	r.waitStatus(30*time.Second, func(s agent.Status) bool { return s.Connected })
	if found := secretsIn(p.Log()); len(found) > 0 {
		t.Fatalf("secrets in the agent's log: %q", found)
	}
}

// TestBootstrapCacheTiedToAccount: credentials cached for one login URL
// are not used once the config names another; the agent waits for the
// service instead.
func TestBootstrapCacheTiedToAccount(t *testing.T) {
	r, acct := newBootstrapRig(t)
	p := r.startAgent()
	r.waitConnected()
	p.stop(5 * time.Second)

	acct.set(func(a *accountService) { a.mode = "500" })
	r.extra = strings.Replace(r.extra, "appId=app1", "appId=app2", 1)
	r.writeConfig(nil)
	p = r.startAgent()
	st := r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.State == led.StateBootstrap && s.LastError != "" })
	if st.Connected || strings.Contains(p.Log(), "using cached credentials") || !strings.Contains(p.Log(), "cached credentials not used") {
		t.Fatalf("connected=%v with the other account's cache; log:\n%s", st.Connected, p.Log())
	}
	acct.set(func(a *accountService) { a.mode = "ok" })
	r.waitStatus(60*time.Second, func(s agent.Status) bool { return s.Connected })
}
