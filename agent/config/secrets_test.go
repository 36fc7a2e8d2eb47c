package config

import (
	"strings"
	"testing"
)

// secret is distinctive enough that finding any of it in a message is a leak.
const secret = "Zq9Hunter2Wx"

// No problem or warning ever quotes a password, a password file's contents
// or the bootstrap login URL (it carries the app secret).
func TestSecretsNeverInMessages(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mqtt.pass", secret+"\n", 0o644) // world-readable: also warns
	tests := []struct {
		name string
		doc  string
		load bool // Load from dir (reads password files) instead of Parse
	}{
		{"inline password, error elsewhere", lines(`[mqtt]`, `broker = "tcp://b"`, `password = "`+secret+`"`, `keepalive = "1"`), false},
		{"inline password, type error after it", lines(`device_id = "gw"`, `[mqtt]`, `password = "`+secret+`"`, `allow_plaintext = "yes"`), false},
		{"inline password, unknown key", lines(`[mqtt]`, `password = "`+secret+`"`, `pssword = "`+secret+`"`), false},
		{"inline password and password_file", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password = "`+secret+`"`, `password_file = "mqtt.pass"`), true},
		{"password_file, error elsewhere", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tcp://b"`, `password_file = "mqtt.pass"`, `ca_file = "mqtt.pass"`), true},
		{"unquoted password", lines(`device_id = "gw"`, `[mqtt]`, `password = `+secret), false},
		{"password of the wrong type", lines(`device_id = "gw"`, `[mqtt]`, `password = 31415926535`), false},
		{"bad escape in a password", lines(`device_id = "gw"`, `[mqtt]`, `password = "`+secret+`\q"`), false},
		{"bad escape in a multi-line password", lines(`device_id = "gw"`, `[mqtt]`, `password = """`, secret+`\q"""`), false},
		{"credentials in the broker", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://gw:`+secret+`@b:8883"`), false},
		{"bootstrap password, partial section", lines(`device_id = "gw"`, `[bootstrap]`, `password = "`+secret+`"`), false},
		{"login_url not absolute", lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "account/login?appSecret=`+secret+`"`,
			`load_balance_url = "https://a/lb"`, `username = "u"`, `password_file = "p"`), false},
		{"login_url unparsable", lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "https://a b/login?appSecret=`+secret+`%zz"`,
			`load_balance_url = "https://a/lb"`, `username = "u"`, `password_file = "p"`), false},
		{"login_url over http", lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "http://a/login?appSecret=`+secret+`"`,
			`load_balance_url = "https://a/lb"`, `username = "u"`, `password_file = "p"`), false},
		{"login_url with another scheme", lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "ftp://a/login?appSecret=`+secret+`"`,
			`load_balance_url = "https://a/lb"`, `username = "u"`, `password_file = "p"`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs Errors
			if tt.load {
				errs = loadErrs(t, dir, tt.doc)
			} else {
				errs = parseErrs(t, tt.doc)
			}
			text := errs.Error()
			for _, part := range []string{secret, secret[:5], secret[len(secret)-5:], "31415926535"} {
				if strings.Contains(text, part) {
					t.Errorf("Error() contains %q:\n%s", part, text)
				}
			}
			if strings.Contains(text, "U+") {
				t.Errorf("Error() quotes a character of the file:\n%s", text)
			}
		})
	}
}

func TestSecretsNeverInWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mqtt.pass", secret+"\n", 0o644)
	c := mustLoad(t, writeFile(t, dir, "config.toml", lines(
		`device_id = "gw"`,
		`[mqtt]`, `broker = "tcp://b"`, `allow_plaintext = true`, `insecure_skip_verify = true`, `password_file = "mqtt.pass"`,
		`[bootstrap]`, `login_url = "http://a/login?appSecret=`+secret+`"`, `load_balance_url = "https://a/lb"`,
		`username = "u"`, `password = "`+secret+`"`,
	), 0o640))
	if len(c.Warnings()) < 4 {
		t.Errorf("warnings = %q, want at least 4", c.Warnings())
	}
	for _, w := range c.Warnings() {
		if strings.Contains(w, secret[:5]) {
			t.Errorf("warning quotes a secret: %q", w)
		}
	}
	if c.MQTT.Password != secret || c.Bootstrap.Password != secret {
		t.Errorf("passwords not resolved")
	}
}
