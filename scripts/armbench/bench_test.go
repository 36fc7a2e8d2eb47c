// Package armbench holds the CPU-bound work the agent does per message and
// per connection, as benchmarks, to decide whether an armv7 build is worth
// shipping beside armv6 (docs/deploying.md#building). Run both under the same
// emulated core:
//
//	for v in 6 7; do
//	  GOARCH=arm GOARM=$v CGO_ENABLED=0 go test -c -o /tmp/armbench-v$v ./scripts/armbench
//	  qemu-arm-static -cpu cortex-a7 /tmp/armbench-v$v -test.bench . -test.count 5
//	done
package armbench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// A TLS 1.2 record of a typical notification, sealed and opened with
// AES-128-GCM: ARM32 has no AES instructions, so this is Go's portable code.
func BenchmarkAESGCMRecord(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	msg := make([]byte, 512)
	b.SetBytes(int64(len(msg)))
	var out []byte
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, msg, nil)
		if _, err := aead.Open(nil, nonce, out, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Verifying the broker's certificate chain at every connect: ECDSA P-256.
func BenchmarkECDSAP256Verify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("tbs certificate"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			b.Fatal("verify failed")
		}
	}
}

type command struct {
	ID        string          `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	ExpiresAt *time.Time      `json:"expires_at"`
}

type relayParams struct {
	Relay string `json:"relay"`
	On    bool   `json:"on"`
	For   string `json:"for"`
}

type reply struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Result any    `json:"result"`
}

// A command decoded and its reply encoded, as the dispatcher does.
func BenchmarkJSONCommand(b *testing.B) {
	payload := []byte(`{"id": "c-1042", "method": "relay.set", "params": {"relay": "pump", "on": true, "for": "30s"}, "expires_at": "2026-11-27T10:00:00Z"}`)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var c command
		if err := json.Unmarshal(payload, &c); err != nil {
			b.Fatal(err)
		}
		var p relayParams
		if err := json.Unmarshal(c.Params, &p); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(reply{ID: c.ID, OK: true, Result: p}); err != nil {
			b.Fatal(err)
		}
	}
}

// Notifications arriving over TLS 1.2: the server writes 200-byte records,
// the client reads them, for each cipher suite a broker may pick.
func BenchmarkTLSRead(b *testing.B) {
	cert, err := selfSigned()
	if err != nil {
		b.Fatal(err)
	}
	for _, suite := range []struct {
		name string
		id   uint16
	}{
		{"aes128gcm", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"chacha20", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	} {
		b.Run(suite.name, func(b *testing.B) {
			cConn, sConn := net.Pipe()
			defer cConn.Close()
			srv := tls.Server(sConn, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.id}})
			cli := tls.Client(cConn, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.id}})
			msg := make([]byte, 200)
			stop := make(chan struct{})
			go func() {
				defer sConn.Close()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := srv.Write(msg); err != nil {
						return
					}
				}
			}()
			defer close(stop)
			buf := make([]byte, len(msg))
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := io.ReadFull(cli, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
