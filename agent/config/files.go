package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxSecretFile bounds a password file: it holds one line, and a path
// pointing at something huge (or endless) must not hang the start.
const maxSecretFile = 4096

// maxPEMFile bounds a certificate or key file for the same reason.
const maxPEMFile = 1 << 20

// readFiles reads and checks every file the config names, filling in the
// passwords. It runs after check, so l.cfg holds resolved paths.
func (l *loader) readFiles() {
	l.checkInlineSecretsMode()
	c := l.cfg
	m := &c.MQTT
	if m.PasswordFile != "" {
		if pw, ok := l.readSecret("mqtt.password_file", m.PasswordFile); ok {
			m.Password = pw
		}
	}
	if m.CAFile != "" {
		l.readCA("mqtt.ca_file", m.CAFile)
	}
	var certPEM, keyPEM []byte
	if m.CertFile != "" {
		certPEM, _ = l.readFile("mqtt.cert_file", m.CertFile, maxPEMFile)
	}
	if m.KeyFile != "" {
		keyPEM, _ = l.readFile("mqtt.key_file", m.KeyFile, maxPEMFile)
		l.warnWorldReadable("mqtt.key_file", m.KeyFile)
	}
	if certPEM != nil && keyPEM != nil {
		// The error names what is wrong (no PEM, key does not match) and
		// never quotes the key material.
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			l.problem("mqtt.cert_file", fmt.Sprintf("cert_file %s and key_file %s do not load as a pair: %v", m.CertFile, m.KeyFile, err),
				"point both at the PEM certificate and its matching private key")
		}
	}

	b := &c.Bootstrap
	if b.PasswordFile != "" {
		if pw, ok := l.readSecret("bootstrap.password_file", b.PasswordFile); ok {
			b.Password = pw
		}
	}
	if b.CAFile != "" {
		l.readCA("bootstrap.ca_file", b.CAFile)
	}
}

// errTooLarge: a file is larger than what it may hold.
var errTooLarge = errors.New("too large")

// readLimited reads at most limit bytes of path; a larger file is
// errTooLarge.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// readFile reads path for key, recording a problem that names the path and
// the OS error if it cannot.
func (l *loader) readFile(key, path string, limit int64) ([]byte, bool) {
	data, err := readLimited(path, limit)
	switch {
	case errors.Is(err, errTooLarge):
		l.problem(key, fmt.Sprintf("%s is larger than %s", path, formatSize(limit)), "check that the path names the right file")
		return nil, false
	case err != nil:
		l.problem(key, fmt.Sprintf("cannot read %s: %v", path, osReason(err)), fixPath(err))
		return nil, false
	}
	return data, true
}

// readSecret reads a password file. Only trailing line breaks are trimmed
// ("\n" or "\r\n", as editors and echo leave them); the contents never
// appear in a message.
func (l *loader) readSecret(key, path string) (string, bool) {
	data, ok := l.readFile(key, path, maxSecretFile)
	if !ok {
		return "", false
	}
	l.warnWorldReadable(key, path)
	pw := secretOf(data)
	if pw == "" {
		l.problem(key, fmt.Sprintf("%s is empty", path), "write the password into it, on one line")
		return "", false
	}
	return pw, true
}

func secretOf(data []byte) string { return strings.TrimRight(string(data), "\r\n") }

// ReadSecretFile reads a password file again, as Load read it (at most
// 4 KiB, trailing line breaks trimmed, empty refused), for an agent that
// picks up a corrected password without a restart. Its errors name the
// path, never the contents.
func ReadSecretFile(path string) (string, error) {
	data, err := readLimited(path, maxSecretFile)
	switch {
	case errors.Is(err, errTooLarge):
		return "", fmt.Errorf("%s is larger than %s", path, formatSize(maxSecretFile))
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %w", path, osReason(err))
	}
	pw := secretOf(data)
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

// readCA checks that a CA file holds at least one PEM certificate.
func (l *loader) readCA(key, path string) {
	data, ok := l.readFile(key, path, maxPEMFile)
	if !ok {
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		l.problem(key, fmt.Sprintf("%s holds no PEM certificate", path),
			`point it at the CA certificate in PEM form ("-----BEGIN CERTIFICATE-----")`)
	}
}

// warnWorldReadable warns when a secret file can be read by any user.
func (l *loader) warnWorldReadable(key, path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return
	}
	l.warn(key, fmt.Sprintf("%s is readable by every user (mode %04o)", path, fi.Mode().Perm()),
		"chmod 600 it (or 640 with the agent's group)")
}

// checkInlineSecretsMode holds the config file itself to the rule for
// password files when it carries a password inline: readable by every user
// is refused, as the secret would be.
func (l *loader) checkInlineSecretsMode() {
	var keys []string
	for _, k := range []struct{ key, val string }{
		{"mqtt.password", l.doc.MQTT.Password}, {"bootstrap.password", l.doc.Bootstrap.Password},
	} {
		if k.val != "" {
			keys = append(keys, k.key)
		}
	}
	if len(keys) == 0 {
		return
	}
	fi, err := os.Stat(l.path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return
	}
	for _, k := range keys {
		l.problem(k, fmt.Sprintf("the password is written in %s, which is readable by every user (mode %04o)", l.path, fi.Mode().Perm()),
			fmt.Sprintf("chmod 640 %s (the agent's group may read it), or move the password to a password_file of mode 0600", l.path))
	}
}

// osReason strips the path from an *fs.PathError: the message names the
// path once already.
func osReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fixPath(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the path (relative paths are resolved against the config file's directory)"
	case errors.Is(err, fs.ErrPermission):
		return "check the file's permissions: the agent's user must be able to read it"
	default:
		return "check the path and the file's permissions"
	}
}
