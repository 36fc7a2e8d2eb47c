package agenttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"
)

func TestNewPKIVerifies(t *testing.T) {
	p := MustPKI(t)
	ca, err := p.CertPool()
	if err != nil {
		t.Fatal(err)
	}
	other, err := certPool(p.OtherCAFile)
	if err != nil {
		t.Fatal(err)
	}
	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

	tests := []struct {
		name      string
		cert, key string
		roots     *x509.CertPool
		host      string // "" for a client certificate
		wantErr   any    // nil, or a pointer to the x509 error type expected
	}{
		{"server for 127.0.0.1", p.ServerCert, p.ServerKey, ca, "127.0.0.1", nil},
		{"server for localhost", p.ServerCert, p.ServerKey, ca, "localhost", nil},
		{"server for ::1", p.ServerCert, p.ServerKey, ca, "::1", nil},
		{"server for another host", p.ServerCert, p.ServerKey, ca, "example.com", new(x509.HostnameError)},
		{"server against the other CA", p.ServerCert, p.ServerKey, other, "127.0.0.1", new(x509.UnknownAuthorityError)},
		{"expired server", p.ExpiredServerCert, p.ExpiredServerKey, ca, "127.0.0.1", new(x509.CertificateInvalidError)},
		{"wrong-host server for 127.0.0.1", p.WrongHostServerCert, p.WrongHostServerKey, ca, "127.0.0.1", new(x509.HostnameError)},
		{"wrong-host server for localhost", p.WrongHostServerCert, p.WrongHostServerKey, ca, "localhost", new(x509.HostnameError)},
		{"wrong-host server for its own name", p.WrongHostServerCert, p.WrongHostServerKey, ca, "wrong.example", nil},
		{"client", p.ClientCert, p.ClientKey, ca, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tt.cert, tt.key)
			if err != nil {
				t.Fatalf("key pair: %v", err)
			}
			opts := x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: serverAuth}
			if tt.host == "" {
				opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
			_, err = pair.Leaf.Verify(opts)
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Errorf("Verify: %v, want success", err)
				}
			case *x509.HostnameError:
				if !errors.As(err, want) {
					t.Errorf("Verify: %v, want a HostnameError", err)
				}
			case *x509.UnknownAuthorityError:
				if !errors.As(err, want) {
					t.Errorf("Verify: %v, want an UnknownAuthorityError", err)
				}
			case *x509.CertificateInvalidError:
				if !errors.As(err, want) || want.Reason != x509.Expired {
					t.Errorf("Verify: %v, want CertificateInvalidError{Expired}", err)
				}
			}
		})
	}

	t.Run("client CN and usage", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := pair.Leaf.Subject.CommonName; got != ClientCN {
			t.Errorf("client CN = %q, want %q", got, ClientCN)
		}
		_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: serverAuth})
		if err == nil {
			t.Errorf("client certificate verified as a server certificate")
		}
	})

	t.Run("key modes", func(t *testing.T) {
		for _, k := range []string{p.CAKey, p.ServerKey, p.ClientKey, p.ExpiredServerKey, p.WrongHostServerKey} {
			fi, err := os.Stat(k)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s mode = %o, want 600", k, got)
			}
		}
	})
}

func TestLoadOrNewPKI(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrNewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(first.CAFile)

	second, err := LoadOrNewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca2, _ := os.ReadFile(second.CAFile); !bytes.Equal(ca1, ca2) {
		t.Errorf("second LoadOrNewPKI made a new CA, want the one in %s", dir)
	}

	// A PKI with a file missing is made anew.
	if err := os.Remove(first.ClientKey); err != nil {
		t.Fatal(err)
	}
	third, err := LoadOrNewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca3, _ := os.ReadFile(third.CAFile); bytes.Equal(ca1, ca3) {
		t.Errorf("LoadOrNewPKI kept a PKI without its client key")
	}
	if _, err := os.Stat(third.ClientKey); err != nil {
		t.Errorf("client key: %v", err)
	}
}
