package agenttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority with the certificates the tests
// and the demo need, as PEM files in Dir. Keys are ECDSA P-256, mode 0600.
type PKI struct {
	Dir string

	CAFile string // the CA certificate that signed everything below
	CAKey  string // its key, for tests that issue more certificates

	// ServerCert is valid from an hour ago for ten years, for IP:127.0.0.1,
	// IP:::1 and DNS:localhost, with extended key usage serverAuth.
	ServerCert, ServerKey string
	// ClientCert has CN "edge-agent-test" and extended key usage clientAuth.
	ClientCert, ClientKey string

	// OtherCAFile is a CA that signed nothing we use: a client that trusts
	// only it must refuse the server ("wrong CA" tests).
	OtherCAFile string

	// ExpiredServerCert is like ServerCert but expired a year ago.
	ExpiredServerCert, ExpiredServerKey string
	// WrongHostServerCert has only the SAN DNS:wrong.example.
	WrongHostServerCert, WrongHostServerKey string
}

// File names inside PKI.Dir.
const (
	caCertName       = "ca.pem"
	caKeyName        = "ca-key.pem"
	serverCertName   = "server.pem"
	serverKeyName    = "server-key.pem"
	clientCertName   = "client.pem"
	clientKeyName    = "client-key.pem"
	otherCACertName  = "other-ca.pem"
	expiredCertName  = "expired-server.pem"
	expiredKeyName   = "expired-server-key.pem"
	wrongHostName    = "wronghost-server.pem"
	wrongHostKeyName = "wronghost-server-key.pem"
)

// ClientCN is the common name of PKI.ClientCert.
const ClientCN = "edge-agent-test"

func pkiPaths(dir string) *PKI {
	j := func(name string) string { return filepath.Join(dir, name) }
	return &PKI{
		Dir:                 dir,
		CAFile:              j(caCertName),
		CAKey:               j(caKeyName),
		ServerCert:          j(serverCertName),
		ServerKey:           j(serverKeyName),
		ClientCert:          j(clientCertName),
		ClientKey:           j(clientKeyName),
		OtherCAFile:         j(otherCACertName),
		ExpiredServerCert:   j(expiredCertName),
		ExpiredServerKey:    j(expiredKeyName),
		WrongHostServerCert: j(wrongHostName),
		WrongHostServerKey:  j(wrongHostKeyName),
	}
}

// NewPKI makes a new CA and all the certificates of PKI in dir (created
// if missing, mode 0700), overwriting any that are there.
func NewPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	p := pkiPaths(dir)
	now := time.Now()

	caKey, caCert, err := newCA("edge-agent test CA", now)
	if err != nil {
		return nil, err
	}
	if err := writeCert(p.CAFile, caCert); err != nil {
		return nil, err
	}
	if err := writeKey(p.CAKey, caKey); err != nil {
		return nil, err
	}

	_, otherCert, err := newCA("edge-agent other CA", now)
	if err != nil {
		return nil, err
	}
	if err := writeCert(p.OtherCAFile, otherCert); err != nil {
		return nil, err
	}

	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	leaves := []struct {
		certFile, keyFile string
		tmpl              x509.Certificate
	}{
		{p.ServerCert, p.ServerKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.AddDate(10, 0, 0),
			IPAddresses: loopback,
			DNSNames:    []string{"localhost"},
			ExtKeyUsage: serverAuth,
		}},
		{p.ClientCert, p.ClientKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: ClientCN},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.AddDate(10, 0, 0),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
		{p.ExpiredServerCert, p.ExpiredServerKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			NotBefore:   now.AddDate(-2, 0, 0),
			NotAfter:    now.AddDate(-1, 0, 0),
			IPAddresses: loopback,
			DNSNames:    []string{"localhost"},
			ExtKeyUsage: serverAuth,
		}},
		{p.WrongHostServerCert, p.WrongHostServerKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "wrong.example"},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.AddDate(10, 0, 0),
			DNSNames:    []string{"wrong.example"},
			ExtKeyUsage: serverAuth,
		}},
	}
	for _, l := range leaves {
		key, cert, err := newLeaf(&l.tmpl, caCert, caKey)
		if err != nil {
			return nil, err
		}
		if err := writeCert(l.certFile, cert); err != nil {
			return nil, err
		}
		if err := writeKey(l.keyFile, key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// LoadOrNewPKI returns the PKI already in dir if all its files are there
// and the server and client certificates still verify against its CA for
// the next day; otherwise it makes a new one with NewPKI.
func LoadOrNewPKI(dir string) (*PKI, error) {
	p := pkiPaths(dir)
	if err := p.check(time.Now().Add(24 * time.Hour)); err == nil {
		return p, nil
	}
	return NewPKI(dir)
}

// MustPKI makes a PKI in a fresh t.TempDir().
func MustPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatalf("NewPKI: %v", err)
	}
	return p
}

// check verifies that every file is there and the server and client
// certificates chain to the CA at time at.
func (p *PKI) check(at time.Time) error {
	for _, f := range []string{p.CAKey, p.OtherCAFile, p.ExpiredServerCert, p.ExpiredServerKey, p.WrongHostServerCert, p.WrongHostServerKey} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	pool, err := p.CertPool()
	if err != nil {
		return err
	}
	for _, c := range []struct {
		cert, key string
		opts      x509.VerifyOptions
	}{
		{p.ServerCert, p.ServerKey, x509.VerifyOptions{DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{p.ClientCert, p.ClientKey, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	} {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return err
		}
		c.opts.Roots = pool
		c.opts.CurrentTime = at
		if _, err := pair.Leaf.Verify(c.opts); err != nil {
			return err
		}
	}
	return nil
}

// CertPool returns a pool holding only the PKI's CA.
func (p *PKI) CertPool() (*x509.CertPool, error) {
	return certPool(p.CAFile)
}

// ClientTLSConfig returns a client configuration that trusts only the PKI's
// CA, offers the client certificate when the server asks for one, and
// expects the server to be serverName (an IP or a host name).
func (p *PKI) ClientTLSConfig(serverName string) (*tls.Config, error) {
	pool, err := p.CertPool()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read CA: no certificate in %s", file)
	}
	return pool, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return n, nil
}

func newCA(cn string, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

func newLeaf(tmpl, ca *x509.Certificate, caKey crypto.Signer) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = sn
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	cert, err := sign(tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func writeCert(path string, c *x509.Certificate) error {
	return writePEM(path, "CERTIFICATE", c.Raw, 0o644)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("pki: marshal key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	// Remove first: WriteFile keeps the mode of a file that is already there.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
