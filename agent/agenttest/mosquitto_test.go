package agenttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMosquittoRestartKeepsSession: with Persistence, a clean shutdown saves
// the session, so the messages queued for an absent subscriber survive
// Restart; with autosave on every change they survive even a kill -9.
func TestMosquittoRestartKeepsSession(t *testing.T) {
	t.Parallel()
	pki := MustPKI(t)
	m := MustMosquitto(t, MosquittoOptions{
		PKI:         pki,
		Users:       testUsers,
		Persistence: true,
		Extra:       []string{"autosave_interval 1", "autosave_on_changes true"},
	})
	port := m.Port

	sub, msgs := subscribe(t, m.URL, pki, "restart-sub", false, "rs/#")
	sub.Disconnect(100)
	publish(t, m.URL, pki, "before-restart-1", "before-restart-2")

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if m.Port != port {
		t.Fatalf("port after Restart = %d, want %d", m.Port, port)
	}
	sub = reconnect(t, m.URL, pki, "restart-sub", msgs)
	msgs.expect(t, "before-restart-1", "before-restart-2")
	sub.Disconnect(100)

	publish(t, m.URL, pki, "before-kill")
	// The save after the PUBACK may come after the kill: wait until the
	// database holds the payload (mosquitto stores payloads as they are).
	db := filepath.Join(m.Dir, "data", "mosquitto.db")
	waitFor(t, "payload saved in "+db, func() bool {
		b, err := os.ReadFile(db)
		return err == nil && bytes.Contains(b, []byte("before-kill"))
	})
	pid := m.Pid()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("mosquitto %d after Kill: signal 0 = %v, want ESRCH", pid, err)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	sub = reconnect(t, m.URL, pki, "restart-sub", msgs)
	defer sub.Disconnect(100)
	msgs.expect(t, "before-kill")
}

// TestMosquittoTLS checks the broken certificates reach the client as the
// failures their names promise, and that mutual TLS wants a certificate.
func TestMosquittoTLS(t *testing.T) {
	t.Parallel()
	pki := MustPKI(t)
	good, err := pki.ClientTLSConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	otherPool, err := certPool(pki.OtherCAFile)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := good.Clone()
	otherCA.RootCAs = otherPool
	noCert := good.Clone()
	noCert.Certificates = nil
	tls12 := good.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	tests := []struct {
		name    string
		opts    MosquittoOptions
		client  *tls.Config
		wantErr func(error) bool // nil = handshake succeeds
	}{
		{"good", MosquittoOptions{}, good, nil},
		{"TLS 1.2 client", MosquittoOptions{}, tls12, nil},
		{"expired server", MosquittoOptions{ServerCert: pki.ExpiredServerCert, ServerKey: pki.ExpiredServerKey}, good, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
		{"wrong host", MosquittoOptions{ServerCert: pki.WrongHostServerCert, ServerKey: pki.WrongHostServerKey}, good, func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e)
		}},
		{"client trusts other CA", MosquittoOptions{}, otherCA, func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"mutual TLS, client certificate", MosquittoOptions{RequireCertificate: true}, good, nil},
		{"mutual TLS, no client certificate", MosquittoOptions{RequireCertificate: true}, noCert, func(err error) bool {
			return err != nil // the server's alert: "certificate required" or a reset
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.PKI = pki
			m := MustMosquitto(t, tt.opts)
			err := handshakeAndRead(m.Port, tt.client)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("handshake: %v, want success", err)
			case tt.wantErr != nil && (err == nil || !tt.wantErr(err)):
				t.Errorf("handshake: %v, want the failure of %q", err, tt.name)
			}
		})
	}
}

// handshakeAndRead completes a TLS handshake and then sends an MQTT
// CONNECT-less read: with TLS 1.3 a refused client certificate only shows
// on the first read, so it reads until the broker answers or hangs up.
func handshakeAndRead(port int, c *tls.Config) error {
	d := &net.Dialer{Timeout: wait}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), c)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A valid CONNECT (3.1.1, anonymous, client id "h"): a connection that
	// passed TLS gets a CONNACK back.
	connect := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'h'}
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(connect); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := conn.Read(ack); err != nil {
		return err
	}
	if ack[0] != 0x20 {
		return errors.New("no CONNACK")
	}
	return nil
}

func TestMosquittoPlainAndLifecycle(t *testing.T) {
	t.Parallel()
	pki := MustPKI(t)
	m, err := StartMosquitto(MosquittoOptions{PKI: pki, Plain: true, Extra: []string{"max_inflight_messages 1000"}})
	if errors.Is(err, ErrMosquittoNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if m.PlainPort == 0 || m.PlainPort == m.Port || !strings.HasPrefix(m.PlainURL, "tcp://127.0.0.1:") {
		t.Fatalf("Port %d, PlainPort %d, PlainURL %q", m.Port, m.PlainPort, m.PlainURL)
	}

	// Anonymous (no Users) over the plaintext listener.
	c, err := Publisher(m.PlainURL, nil, "", "", "plain-pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := PublishQoS1(c, "plain/x", []byte("hello"), wait); err != nil {
		t.Error(err)
	}
	c.Disconnect(100)

	conf, err := os.ReadFile(m.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "max_inflight_messages 1000") {
		t.Errorf("config lacks the Extra line:\n%s", conf)
	}

	pid, dir := m.Pid(), m.Dir
	if pid == 0 {
		t.Fatal("Pid() = 0 while running")
	}
	if err := m.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("mosquitto %d after Stop: signal 0 = %v, want ESRCH", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary Dir %s after Stop: %v, want it removed", dir, err)
	}
}

func TestMosquittoStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	pki := MustPKI(t)
	if _, err := MosquittoBinary(); err != nil && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	_, err := StartMosquitto(MosquittoOptions{PKI: pki, Extra: []string{"no_such_option 1"}})
	if err == nil {
		t.Fatal("StartMosquitto with a bad config succeeded")
	}
	if !strings.Contains(err.Error(), "no_such_option") {
		t.Errorf("error %q does not quote mosquitto's log", err)
	}
}

// publish sends each payload to rs/x at QoS 1 from a fresh client.
func publish(t *testing.T, url string, pki *PKI, payloads ...string) {
	t.Helper()
	c, err := Publisher(url, pki, testUser, testPass, "publisher")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if err := PublishQoS1(c, "rs/x", []byte(p), wait); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
