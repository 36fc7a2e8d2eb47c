package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseErrs parses doc as "config.toml" and returns its problems, failing
// the test if it parsed cleanly.
func parseErrs(t *testing.T, doc string) Errors {
	t.Helper()
	cfg, err := Parse([]byte(doc), "config.toml")
	return asErrors(t, cfg, err)
}

// loadErrs writes doc to config.toml in dir, loads it and returns its
// problems.
func loadErrs(t *testing.T, dir, doc string) Errors {
	t.Helper()
	cfg, err := Load(writeFile(t, dir, "config.toml", doc, 0o644))
	return asErrors(t, cfg, err)
}

func asErrors(t *testing.T, cfg *Config, err error) Errors {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want problems (config %+v)", cfg)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T %q, want *Errors", err, err)
	}
	if cfg != nil {
		t.Errorf("got a config along with the error")
	}
	return *errs
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(doc), "config.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// problemFor returns the problem about key.
func problemFor(t *testing.T, errs Errors, key string) Problem {
	t.Helper()
	for _, p := range errs {
		if p.Key == key {
			return p
		}
	}
	t.Fatalf("no problem for key %q in:\n%s", key, errs.Error())
	return Problem{}
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

// writeCert writes a self-signed certificate and its key as PEM files
// named name.pem and name.key in dir.
func writeCert(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = writeFile(t, dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	keyPath = writeFile(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), 0o600)
	return certPath, keyPath
}

// lines joins lines with "\n", so a test can count them.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
