package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/relay"
)

func TestDefaults(t *testing.T) {
	got := mustParse(t, lines(`device_id = "5219709"`, `[mqtt]`, `broker = "broker.example.com"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`))
	want := &Config{
		Path:     "config.toml",
		DeviceID: "5219709",
		DataDir:  "/var/lib/edge-agent",
		MQTT: MQTT{
			Broker:         Broker{TLS: true, Host: "broker.example.com", Port: 8883},
			NotifyTopic:    "/sys/5219709/thing/push/notify",
			ReplyTopic:     "/sys/5219709/thing/push/reply",
			StatusTopic:    "/sys/5219709/thing/status",
			EventTopic:     "/sys/5219709/thing/event",
			Keepalive:      30 * time.Second,
			MaxMessageSize: 1 << 20,
		},
		Bootstrap: Bootstrap{RefreshInterval: 12 * time.Hour},
		HW:        HW{Backend: "periph"},
		Relays: []Relay{{Name: "pump", Pin: "GPIO17", PowerOn: relay.PowerOnOff, MaxOn: 0,
			FeedbackTimeout: 500 * time.Millisecond, Offline: OfflineKeep, OfflineAfter: 5 * time.Minute}},
		Store:   Store{RetainRecords: 100000, RetainBytes: 64 << 20, MaxDBSize: 256 << 20, CommitWindow: 100 * time.Millisecond},
		Metrics: Metrics{Interval: time.Minute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if w := got.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}
}

func TestValues(t *testing.T) {
	got := mustParse(t, lines(
		`device_id = "gw-7"`,
		`data_dir = "/srv/agent"`,
		`[mqtt]`,
		`broker = "ssl://10.1.2.3:1883"`,
		`username = "gw-7"`,
		`server_name = "broker.example.com"`,
		`client_id = "{device_id}@42"`,
		`notify_topic = "/t/{device_id}/in"`,
		`keepalive = "1m"`,
		`max_message_size = "4 MB"`,
		`[hw]`,
		`backend = "sim"`,
		`[leds]`,
		`status = "GPIO27"`,
		`activity = "GPIO22"`,
		`active_low = true`,
		`[[relay]]`,
		`name = "up"`,
		`pin = "gpiochip0:5"`,
		`active_low = true`,
		`power_on = "restore"`,
		`max_on = "1m30s"`,
		`interlock = "motor"`,
		`[[relay]]`,
		`name = "down"`,
		`pin = "GPIO6"`,
		`power_on = "on"`,
		`interlock = "motor"`,
		`[store]`,
		`retain_records = 5`,
		`retain_bytes = "10 MB"`,
		`max_db_size = "1GiB"`,
	))
	if got.DataDir != "/srv/agent" || got.HW.Backend != BackendSim {
		t.Errorf("data_dir, backend = %q, %q", got.DataDir, got.HW.Backend)
	}
	wantMQTT := MQTT{
		Broker:         Broker{TLS: true, Host: "10.1.2.3", Port: 1883},
		Username:       "gw-7",
		ServerName:     "broker.example.com",
		ClientID:       "gw-7@42",
		NotifyTopic:    "/t/gw-7/in",
		ReplyTopic:     "/sys/gw-7/thing/push/reply",
		StatusTopic:    "/sys/gw-7/thing/status",
		EventTopic:     "/sys/gw-7/thing/event",
		Keepalive:      time.Minute,
		MaxMessageSize: 4_000_000,
	}
	if !reflect.DeepEqual(got.MQTT, wantMQTT) {
		t.Errorf("mqtt = %+v\nwant   %+v", got.MQTT, wantMQTT)
	}
	if want := (LEDs{Status: "GPIO27", Activity: "GPIO22", ActiveLow: true}); !reflect.DeepEqual(got.LEDs, want) {
		t.Errorf("leds = %+v, want %+v", got.LEDs, want)
	}
	wantRelays := []Relay{
		{Name: "up", Pin: "gpiochip0:5", ActiveLow: true, PowerOn: relay.PowerOnRestore, MaxOn: 90 * time.Second, Interlock: "motor",
			FeedbackTimeout: 500 * time.Millisecond, Offline: OfflineKeep, OfflineAfter: 5 * time.Minute},
		{Name: "down", Pin: "GPIO6", PowerOn: relay.PowerOnOn, Interlock: "motor",
			FeedbackTimeout: 500 * time.Millisecond, Offline: OfflineKeep, OfflineAfter: 5 * time.Minute},
	}
	if !reflect.DeepEqual(got.Relays, wantRelays) {
		t.Errorf("relays = %+v\nwant     %+v", got.Relays, wantRelays)
	}
	if want := (Store{RetainRecords: 5, RetainBytes: 10_000_000, MaxDBSize: 1 << 30, CommitWindow: 100 * time.Millisecond}); !reflect.DeepEqual(got.Store, want) {
		t.Errorf("store = %+v, want %+v", got.Store, want)
	}
}

// "" turns replies and status off; an absent key means the default.
func TestOptionalTopics(t *testing.T) {
	tests := []struct {
		name       string
		keys       []string
		reply      string
		status     string
		clientID   string
		wantNotify string
	}{
		{"absent", nil, "/sys/gw/thing/push/reply", "/sys/gw/thing/status", "", "/sys/gw/thing/push/notify"},
		{"empty", []string{`reply_topic = ""`, `status_topic = ""`}, "", "", "", "/sys/gw/thing/push/notify"},
		{"reply off only", []string{`reply_topic = ""`}, "", "/sys/gw/thing/status", "", "/sys/gw/thing/push/notify"},
		{"set", []string{`reply_topic = "r/{device_id}"`, `status_topic = "s/{device_id}/{device_id}"`, `client_id = "{device_id}"`, `notify_topic = "n/{device_id}/#"`},
			"r/gw", "s/gw/gw", "gw", "n/gw/#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := lines(append([]string{`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`}, tt.keys...)...)
			c := mustParse(t, doc)
			if c.MQTT.ReplyTopic != tt.reply {
				t.Errorf("reply_topic = %q, want %q", c.MQTT.ReplyTopic, tt.reply)
			}
			if c.MQTT.StatusTopic != tt.status {
				t.Errorf("status_topic = %q, want %q", c.MQTT.StatusTopic, tt.status)
			}
			if c.MQTT.ClientID != tt.clientID {
				t.Errorf("client_id = %q, want %q", c.MQTT.ClientID, tt.clientID)
			}
			if c.MQTT.NotifyTopic != tt.wantNotify {
				t.Errorf("notify_topic = %q, want %q", c.MQTT.NotifyTopic, tt.wantNotify)
			}
		})
	}
}

// Same document written with dotted keys and inline tables.
func TestOtherTOMLForms(t *testing.T) {
	c := mustParse(t, lines(
		`device_id = "gw"`,
		`mqtt.broker = "tls://b"`,
		`mqtt.reply_topic = ""`,
		`hw = { backend = "sim" }`,
		`relay = [ { name = "pump", pin = "GPIO17", max_on = "5s" } ]`,
	))
	if c.MQTT.Broker.Host != "b" || c.MQTT.ReplyTopic != "" || c.HW.Backend != "sim" {
		t.Errorf("got %+v", c)
	}
	if len(c.Relays) != 1 || c.Relays[0].MaxOn != 5*time.Second || c.Relays[0].PowerOn != relay.PowerOnOff {
		t.Errorf("relays = %+v", c.Relays)
	}
	errs := parseErrs(t, lines(`device_id = "gw"`, `mqtt.broker = "tls://b"`, `relay = [ { name = "a", pin = "GPIO1" },`, `  { name = "b", pin = "GPIO1" } ]`))
	if p := problemFor(t, errs, "relay[1].pin"); p.Line != 4 {
		t.Errorf("line = %d, want 4", p.Line)
	}
}

func TestBootstrapReplacesBroker(t *testing.T) {
	c := mustParse(t, lines(
		`device_id = "gw"`,
		`[bootstrap]`,
		`login_url = "https://account.example.com/auth/auth/login?appId=1&tenantId=2&appSecret=s"`,
		`load_balance_url = "https://api.example.com/v1/auth/service/loadBalance"`,
		`username = "user"`,
		`password_file = "/etc/edge-agent/account.pass"`,
	))
	if !c.Bootstrap.Enabled() || c.MQTT.Broker != (Broker{}) {
		t.Errorf("bootstrap enabled = %v, broker = %+v; want enabled and no broker", c.Bootstrap.Enabled(), c.MQTT.Broker)
	}
	if c.Bootstrap.Username != "user" || c.Bootstrap.PasswordFile != "/etc/edge-agent/account.pass" {
		t.Errorf("bootstrap = %+v", c.Bootstrap)
	}
}

func TestPasswordFile(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"no newline", "s3cret", "s3cret"},
		{"newline", "s3cret\n", "s3cret"},
		{"crlf", "s3cret\r\n", "s3cret"},
		{"several", "s3cret\n\n", "s3cret"},
		{"inner spaces kept", " s3 cret \n", " s3 cret "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "mqtt.pass", tt.content, 0o600)
			writeFile(t, dir, "account.pass", tt.content, 0o600)
			c := mustLoad(t, writeFile(t, dir, "config.toml", lines(
				`device_id = "gw"`,
				`[mqtt]`, `broker = "tls://b"`, `password_file = "mqtt.pass"`,
				`[bootstrap]`, `login_url = "https://a.example/l"`, `load_balance_url = "https://a.example/lb"`,
				`username = "u"`, `password_file = "account.pass"`,
			), 0o644))
			if c.MQTT.Password != tt.want {
				t.Errorf("mqtt password = %q, want %q", c.MQTT.Password, tt.want)
			}
			if c.Bootstrap.Password != tt.want {
				t.Errorf("bootstrap password = %q, want %q", c.Bootstrap.Password, tt.want)
			}
			if w := c.Warnings(); len(w) != 0 {
				t.Errorf("warnings = %q, want none", w)
			}
		})
	}
}

// Parse reads no files: the inline password is there, password_file is not read.
func TestParseReadsNoFiles(t *testing.T) {
	c := mustParse(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password_file = "/nonexistent/pass"`, `ca_file = "/nonexistent/ca.pem"`))
	if c.MQTT.Password != "" || c.MQTT.PasswordFile != "/nonexistent/pass" {
		t.Errorf("password, file = %q, %q", c.MQTT.Password, c.MQTT.PasswordFile)
	}
	c = mustParse(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password = "inline"`))
	if c.MQTT.Password != "inline" {
		t.Errorf("password = %q, want the inline one", c.MQTT.Password)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writeCert(t, filepath.Join(dir, "tls"), "ca")
	cert, key := writeCert(t, filepath.Join(dir, "tls"), "client")
	writeFile(t, dir, "secrets/mqtt.pass", "pw\n", 0o600)
	path := writeFile(t, dir, "config.toml", lines(
		`device_id = "gw"`,
		`data_dir = "state"`,
		`[mqtt]`,
		`broker = "tls://b"`,
		`password_file = "secrets/mqtt.pass"`,
		`ca_file = "tls/ca.pem"`,
		`cert_file = "./tls/client.pem"`,
		`key_file = "tls/../tls/client.key"`,
		`[bootstrap]`,
		`ca_file = "`+ca+`"`, // absolute stays as is
		`login_url = "https://a.example/l"`, `load_balance_url = "https://a.example/lb"`, `username = "u"`, `password = "x"`,
	), 0o640)

	// Load from another working directory: paths follow the file, not the cwd.
	t.Chdir(t.TempDir())
	c := mustLoad(t, path)
	tests := []struct{ name, got, want string }{
		{"data_dir", c.DataDir, filepath.Join(dir, "state")},
		{"password_file", c.MQTT.PasswordFile, filepath.Join(dir, "secrets/mqtt.pass")},
		{"ca_file", c.MQTT.CAFile, ca},
		{"cert_file", c.MQTT.CertFile, cert},
		{"key_file", c.MQTT.KeyFile, key},
		{"bootstrap.ca_file", c.Bootstrap.CAFile, ca},
		{"password", c.MQTT.Password, "pw"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	// A relative config path works too: its directory is made absolute.
	rel, err := filepath.Rel(mustGetwd(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if c := mustLoad(t, rel); c.MQTT.CAFile != ca {
		t.Errorf("loaded as %s: ca_file = %q, want %q", rel, c.MQTT.CAFile, ca)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// Problems only Load can find: files that are missing, unreadable, empty
// or not what they should be. Each names the key, its line, the path and
// the OS error.
func TestFileProblems(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCert(t, dir, "ca")
	other, otherKey := writeCert(t, dir, "other")
	writeFile(t, dir, "empty.pass", "\n", 0o600)
	writeFile(t, dir, "garbage.pem", "not a certificate\n", 0o644)
	writeFile(t, dir, "big.pass", strings.Repeat("x", 5000), 0o600)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys []string // under [mqtt], from line 4
		key  string
		line int
		msg  string
		fix  string
	}{
		{"missing password_file", []string{`password_file = "nope.pass"`}, "mqtt.password_file", 4,
			filepath.Join(dir, "nope.pass") + ": no such file or directory", "check the path"},
		{"password_file is a directory", []string{`password_file = "adir"`}, "mqtt.password_file", 4,
			"cannot read " + filepath.Join(dir, "adir") + ": is a directory", "check"},
		{"empty password_file", []string{`password_file = "empty.pass"`}, "mqtt.password_file", 4, "is empty", "write the password"},
		{"huge password_file", []string{`password_file = "big.pass"`}, "mqtt.password_file", 4, "larger than", "right file"},
		{"missing ca_file", []string{`ca_file = "nope.pem"`}, "mqtt.ca_file", 4, "no such file", "check the path"},
		{"ca_file without PEM", []string{`ca_file = "garbage.pem"`}, "mqtt.ca_file", 4, "holds no PEM certificate", "BEGIN CERTIFICATE"},
		{"ca_file holding only a key", []string{`ca_file = "` + caKey + `"`}, "mqtt.ca_file", 4, "holds no PEM certificate", "CA certificate"},
		{"missing key_file", []string{`cert_file = "` + ca + `"`, `key_file = "nope.key"`}, "mqtt.key_file", 5, "no such file", "check the path"},
		{"missing cert_file", []string{`cert_file = "nope.pem"`, `key_file = "` + caKey + `"`}, "mqtt.cert_file", 4, "no such file", "check the path"},
		{"mismatched pair", []string{`cert_file = "` + ca + `"`, `key_file = "` + otherKey + `"`}, "mqtt.cert_file", 4,
			"do not load as a pair: tls: private key does not match public key", "matching private key"},
		{"swapped pair", []string{`cert_file = "` + otherKey + `"`, `key_file = "` + other + `"`}, "mqtt.cert_file", 4,
			"do not load as a pair", "matching private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := lines(append([]string{`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`}, tt.keys...)...)
			errs := loadErrs(t, dir, doc)
			p := problemFor(t, errs, tt.key)
			if p.Line != tt.line {
				t.Errorf("line = %d, want %d", p.Line, tt.line)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("msg = %q, want it to contain %q", p.Msg, tt.msg)
			}
			if !strings.Contains(p.Fix, tt.fix) {
				t.Errorf("fix = %q, want it to contain %q", p.Fix, tt.fix)
			}
		})
	}
	t.Run("bootstrap files", func(t *testing.T) {
		errs := loadErrs(t, dir, lines(
			`device_id = "gw"`, `[bootstrap]`,
			`login_url = "https://a.example/l"`, `load_balance_url = "https://a.example/lb"`, `username = "u"`,
			`password_file = "nope.pass"`, // 6
			`ca_file = "garbage.pem"`,     // 7
		))
		if p := problemFor(t, errs, "bootstrap.password_file"); p.Line != 6 || !strings.Contains(p.Msg, "no such file") {
			t.Errorf("got %s", p)
		}
		if p := problemFor(t, errs, "bootstrap.ca_file"); p.Line != 7 || !strings.Contains(p.Msg, "no PEM certificate") {
			t.Errorf("got %s", p)
		}
	})
}

func TestUnreadableFilePermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	dir := t.TempDir()
	writeFile(t, dir, "mqtt.pass", "pw\n", 0o000)
	errs := loadErrs(t, dir, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password_file = "mqtt.pass"`))
	p := problemFor(t, errs, "mqtt.password_file")
	if !strings.Contains(p.Msg, "permission denied") || !strings.Contains(p.Fix, "permissions") {
		t.Errorf("got %s", p)
	}
}

func TestLoadMissingConfig(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "config.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
	var errs *Errors
	if errors.As(err, &errs) {
		t.Errorf("err is *Errors, want the read error")
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "open.pass", "pw\n", 0o644)
	tests := []struct {
		name   string
		broker string
		keys   []string // under [mqtt], from line 4
		want   []string
	}{
		{"none", "tls://b", nil, nil},
		{"insecure_skip_verify", "tls://b", []string{`insecure_skip_verify = true`},
			[]string{"line 4: mqtt.insecure_skip_verify: TLS certificate checks are off"}},
		{"inline password", "tls://b", []string{`password = "pw"`},
			[]string{"line 4: mqtt.password: the password is written in the config file"}},
		{"world-readable password file", "tls://b", []string{`password_file = "open.pass"`},
			[]string{"line 4: mqtt.password_file: " + filepath.Join(dir, "open.pass") + " is readable by every user (mode 0644); chmod 600"}},
		{"plaintext allowed", "tcp://b", []string{`allow_plaintext = true`},
			[]string{"line 4: mqtt.allow_plaintext: MQTT traffic, the password included, goes over the network unencrypted"}},
		{"lonely interlock", "tls://b", []string{`[[relay]]`, `name = "a"`, `pin = "GPIO1"`, `interlock = "motr"`},
			[]string{`line 7: relay[0].interlock: interlock group "motr" has only this relay`}},
		{"in line order", "tls://b", []string{`password = "pw"`, `insecure_skip_verify = true`},
			[]string{"line 4: mqtt.password:", "line 5: mqtt.insecure_skip_verify:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := lines(append([]string{`device_id = "gw"`, `[mqtt]`, `broker = "` + tt.broker + `"`}, tt.keys...)...)
			c := mustLoad(t, writeFile(t, dir, "config.toml", doc, 0o640))
			got := c.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("warning %d = %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// Only the sim board's lines are known at config check; a real board's
// are for its backend to say at start.
func TestPinsCheckedOnlyOnTheSimBoard(t *testing.T) {
	doc := lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "periph"`,
		`[leds]`, `status = "GPIO99"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`)
	mustParse(t, doc)
	sim := strings.Replace(doc, `"periph"`, `"sim"`, 1)
	if p := problemFor(t, parseErrs(t, sim), "leds.status"); p.Line != 7 {
		t.Errorf("line %d, want 7: %s", p.Line, p)
	}
}

// A config file holding a password inline is held to the password file
// rule: readable by every user, it is refused with the chmod that fixes it.
func TestInlinePasswordConfigMode(t *testing.T) {
	dir := t.TempDir()
	doc := lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password = "pw"`,
		`[bootstrap]`, `login_url = "https://a.example/l"`, `load_balance_url = "https://a.example/lb"`,
		`username = "u"`, `password = "pw2"`)
	path := writeFile(t, dir, "config.toml", doc, 0o644)
	errs := loadErrs(t, dir, doc)
	for _, k := range []struct {
		key  string
		line int
	}{{"mqtt.password", 4}, {"bootstrap.password", 9}} {
		p := problemFor(t, errs, k.key)
		if p.Line != k.line || !strings.Contains(p.Msg, "readable by every user (mode 0644)") || !strings.Contains(p.Fix, "chmod 640 "+path) {
			t.Errorf("got %s", p)
		}
		if strings.Contains(p.String(), `"pw`) {
			t.Errorf("problem quotes the password: %s", p)
		}
	}
	if len(errs) != 2 {
		t.Errorf("got %d problems, want 2:\n%s", len(errs), errs.Error())
	}

	// 0640 (the agent's group) and 0600 load, with the inline-password warnings.
	for _, mode := range []os.FileMode{0o640, 0o600} {
		c := mustLoad(t, writeFile(t, dir, "config.toml", doc, mode))
		if c.MQTT.Password != "pw" || len(c.Warnings()) != 2 {
			t.Errorf("mode %04o: password %v, warnings %q", mode, c.MQTT.Password == "pw", c.Warnings())
		}
	}
	// Without an inline password the config file's mode is nobody's business.
	writeFile(t, dir, "mqtt.pass", "pw\n", 0o600)
	mustLoad(t, writeFile(t, dir, "config.toml", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password_file = "mqtt.pass"`), 0o644))
}

// ReadSecretFile reads a password file again by Load's rules.
func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	if pw, err := ReadSecretFile(writeFile(t, dir, "ok.pass", " s3 cret \r\n\n", 0o600)); err != nil || pw != " s3 cret " {
		t.Errorf("got %q, %v", pw, err)
	}
	for name, content := range map[string]string{"empty.pass": "\n", "big.pass": strings.Repeat("x", maxSecretFile+1)} {
		path := writeFile(t, dir, name, content, 0o600)
		if _, err := ReadSecretFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
