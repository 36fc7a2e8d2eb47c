package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// selfSigned writes a self-signed certificate (no CA) for 127.0.0.1 and
// localhost with the given extended key usage.
func selfSigned(dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// tls11Server is a stand-in for a broker that speaks only TLS 1.0/1.1:
// mosquitto 2.0.11's tls_version is a minimum (it still offers 1.3), and
// OpenSSL 3 here refuses TLS 1.1 at its default security level, so no
// mosquitto can be made to offer only 1.1 (checked).
type tls11Server struct {
	l          net.Listener
	handshakes atomic.Int32
	wg         sync.WaitGroup
}

func startTLS11(pki *agenttest.PKI) (*tls11Server, error) {
	pair, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &tls11Server{l: l}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.handshakes.Add(1)
			tc := tls.Server(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			_ = tc.Handshake() // fails: the agent wants TLS 1.2 at least
			tc.Close()
		}
	}()
	return s, nil
}

func (s *tls11Server) close() { s.l.Close(); s.wg.Wait() }

// runTLS: each broken TLS setup must keep the agent from ever connecting,
// put it in state auth, and name the cause in last_error.
func runTLS(e *env, p params, r *result) {
	dir := e.sub("tls")
	ssCert, ssKey, err := selfSigned(dir, "self-signed-server", x509.ExtKeyUsageServerAuth)
	if err != nil {
		r.fail("%v", err)
		return
	}
	scCert, scKey, err := selfSigned(dir, "self-signed-client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		r.fail("%v", err)
		return
	}
	type tcase struct {
		name   string
		opts   agenttest.MosquittoOptions
		tls11  bool
		mqtt   map[string]string
		needle string
		// resetOK: an attempt that reads as a reset is the known issue
		// (knownIssueCertReset), not a failure.
		resetOK bool
	}
	cases := []tcase{
		{name: "expired server certificate", opts: agenttest.MosquittoOptions{ServerCert: e.pki.ExpiredServerCert, ServerKey: e.pki.ExpiredServerKey}, needle: "expired"},
		{name: "certificate for another host", opts: agenttest.MosquittoOptions{ServerCert: e.pki.WrongHostServerCert, ServerKey: e.pki.WrongHostServerKey}, needle: "host name"},
		{name: "self-signed server certificate", opts: agenttest.MosquittoOptions{ServerCert: ssCert, ServerKey: ssKey}, needle: "not signed by a trusted CA"},
		{name: "client certificate rejected", opts: agenttest.MosquittoOptions{RequireCertificate: true},
			mqtt: map[string]string{"cert_file": fmt.Sprintf("%q", scCert), "key_file": fmt.Sprintf("%q", scKey)}, needle: "client certificate", resetOK: true},
		{name: "broker with TLS 1.1 only", tls11: true, needle: "TLS 1.2"},
	}
	type outcome struct {
		name, state, lastError string
		named, reset           int
		other                  []string
		fail                   string
	}
	out := make([]outcome, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &out[i]
			o.name = c.name
			var url string
			var brokerLog func() string
			if c.tls11 {
				s, err := startTLS11(e.pki)
				if err != nil {
					o.fail = err.Error()
					return
				}
				defer s.close()
				url = "tls://" + s.l.Addr().String()
				brokerLog = func() string { return fmt.Sprintf("%d handshakes refused", s.handshakes.Load()) }
			} else {
				m, err := e.broker("tls", c.opts)
				if err != nil {
					o.fail = err.Error()
					return
				}
				defer m.Stop()
				url = m.URL
				brokerLog = func() string { return tail(m.Log(), 5) }
			}
			adir := e.sub("tls-agent")
			cfg := newAgentConfig(fmt.Sprintf("faults-tls-%d", i), url)
			cfg.mqtt = c.mqtt
			cfgPath, err := e.writeConfig(adir, cfg)
			if err != nil {
				o.fail = err.Error()
				return
			}
			a, err := e.startAgent(cfgPath, nil)
			if err != nil {
				o.fail = err.Error()
				return
			}
			defer a.kill()
			// Watch for 4 s: never connected; auth, with the cause named.
			var st status
			everConnected := false
			deadline := time.Now().Add(4 * time.Second)
			for time.Now().Before(deadline) {
				if s, err := getStatus(cfg.dataDir); err == nil {
					st = s
					everConnected = everConnected || s.Connected
				}
				time.Sleep(50 * time.Millisecond)
			}
			o.state, o.lastError = st.State, st.LastError
			// Every failed attempt's cause, as logged.
			causes := reCause.FindAllStringSubmatch(a.Log(), -1)
			for _, m := range causes {
				switch {
				case strings.Contains(m[1], c.needle):
					o.named++
				case c.resetOK && knownIssueCertReset && strings.Contains(m[1], "connection reset by peer"):
					o.reset++
				default:
					o.other = append(o.other, m[1])
				}
			}
			lastOK := st.State == "auth" && strings.Contains(st.LastError, c.needle)
			if !lastOK && o.reset > 0 && st.State == "connecting" && strings.Contains(st.LastError, "connection reset by peer") {
				lastOK = true // the known issue below, not a new failure
			}
			switch {
			case everConnected || strings.Contains(a.Log(), "connected and subscribed"):
				o.fail = "connected"
			case len(causes) == 0:
				o.fail = "no failed attempt logged"
			case len(o.other) > 0:
				o.fail = fmt.Sprintf("%d attempts failed for another reason than %q, e.g. %q", len(o.other), c.needle, o.other[0])
			case o.named+o.reset == 0 || !lastOK:
				o.fail = fmt.Sprintf("state %q last_error %q, want auth naming %q", st.State, st.LastError, c.needle)
			}
			if o.fail != "" {
				o.fail += "\n  broker: " + brokerLog() + "\n  agent:\n" + tail(a.Log(), 6)
			}
		}()
	}
	wg.Wait()
	passed := 0
	for _, o := range out {
		if o.fail != "" {
			r.fail("%s: %s", o.name, o.fail)
			continue
		}
		passed++
		r.fig(o.name, "state %s: %s", o.state, clip(o.lastError, 110))
		if o.reset > 0 {
			r.note("KNOWN ISSUE (%s): %d of %d attempts read as \"broker unreachable: … connection reset by peer\" and state connecting: under TLS 1.3 mosquitto refuses a client certificate after the handshake and the agent's CONNECT write can meet the reset before the alert; the fix belongs in agent/tlsconf.go and agent/session.go (see knownIssueCertReset)",
				o.name, o.reset, o.reset+o.named)
		}
	}
	r.note("TLS 1.1: mosquitto 2.0.11 cannot offer only TLS 1.1 (tls_version is a minimum) and OpenSSL 3 refuses 1.1 at its default security level, so a Go TLS server limited to 1.0–1.1 stands in")
	summarise("tls", "%d of %d (auth, with the cause in last_error)", passed, len(cases))
}

// knownIssueCertReset tolerates, for the rejected client certificate only,
// attempts that the agent reports as "broker unreachable: … connection reset
// by peer" (state connecting). Under TLS 1.3 the broker checks the client
// certificate after the client's Finished, so its refusal reaches the agent
// either as an alert (named correctly) or, when the CONNECT write comes
// first, as a reset. agent/tlsconf.go already notes when the broker asks for
// a certificate we do not have (CertAsked); the fix is to note it also when
// we send one, and have agent/session.go read a reset or EOF before CONNACK
// after such a handshake as a refused client certificate (auth). Set this
// to false once that is in.
const knownIssueCertReset = false

var reCause = regexp.MustCompile(`msg="not connected" part=mqtt cause="((?:[^"\\]|\\.)*)"`)

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
