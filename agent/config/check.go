package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/hw/sim"
)

// maxKeepalive is the largest keep alive MQTT can express: a 16-bit number
// of seconds [MQTT-3.1.2.10].
const maxKeepalive = 65535 * time.Second

// Bounds of mqtt.max_message_size.
const (
	minMessageSize = 1 << 10
	maxMessageSize = 256 << 20
)

// minDBSize keeps max_db_size above what bbolt needs for its first pages.
const minDBSize = 1 << 20

// check runs every semantic check on l.doc and builds l.cfg. It records
// all problems it finds rather than stopping at the first.
func (l *loader) check() {
	d := &l.doc
	c := &Config{Path: l.path}
	l.cfg = c

	c.DeviceID = d.DeviceID
	if d.DeviceID == "" {
		l.problem("device_id", "is required", `set device_id = "…" at the top of the file to the id the cloud knows this gateway by`)
	} else if msg := badDeviceID(d.DeviceID); msg != "" {
		l.problem("device_id", msg, "use the id exactly as the cloud shows it")
	}

	if d.DataDir == "" {
		l.problem("data_dir", "must not be empty", fmt.Sprintf("remove it for the default %q, or set a directory", DefaultDataDir))
	}
	c.DataDir = l.resolve(d.DataDir)

	l.checkMQTT(c)
	l.checkBootstrap(c)

	c.HW.Backend = d.HW.Backend
	if b := d.HW.Backend; b != BackendPeriph && b != BackendSim {
		l.problem("hw.backend", fmt.Sprintf("unknown backend %q", b), `use "periph" (real GPIO) or "sim" (no hardware)`)
	}

	l.checkPins(c)
	l.checkRules(c)
	l.checkSinks(c)
	l.checkStore(c)
	l.checkMetrics(c)
}

// checkRules checks each [[rule]]: a unique name, a good filter and paths,
// an action with what it needs, a relay that exists.
func (l *loader) checkRules(c *Config) {
	if p, ok := l.keys["rule"]; ok && p.header {
		l.problem("rule", "is written [rule]", "write [[rule]] (double brackets): each rule is one entry of an array")
	}
	relays := map[string]bool{}
	for _, r := range c.Relays {
		relays[r.Name] = true
	}
	names := map[string]string{}
	for i, r := range l.doc.Rules {
		k := "rule[" + strconv.Itoa(i) + "]"
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			l.problem(k+".name", "a rule needs a name", `set name = "…" in this [[rule]]: replies, logs and at-most-once keys use it`)
			continue
		case dup:
			l.problem(k+".name", fmt.Sprintf("rule name %q is already used by %s (line %d)", r.Name, first, l.keys.line(first)),
				"give each rule its own name")
			continue
		default:
			names[r.Name] = k + ".name"
		}
		sp := rules.Spec{Name: r.Name, Topic: r.Topic, Match: r.Match, Action: r.Action, Relay: r.Relay,
			On: r.On, For: r.For, ID: r.ID, Reply: r.Reply}
		if sp.Topic == "" {
			sp.Topic = c.MQTT.NotifyTopic
		}
		set, err := rules.Compile([]rules.Spec{sp}, c.DeviceID)
		if err != nil {
			_, msg, _ := strings.Cut(err.Error(), ": ")
			l.problem(k+"."+ruleKeyOf(msg), msg, "see the [[rule]] block in the example config (scripts/edge-agent.example.toml)")
			continue
		}
		if r.Relay != "" && !relays[r.Relay] {
			l.problem(k+".relay", fmt.Sprintf("no relay named %q", r.Relay), "name one of the [[relay]] blocks, or add one")
			continue
		}
		c.Rules = append(c.Rules, set.Rules()[0].Spec)
	}
}

// ruleKeyOf names the key a rules.Compile message is about, for its line.
func ruleKeyOf(msg string) string {
	for _, k := range []string{"topic filter", "action", "on", "for", "id", "reply", "match", "relay"} {
		if strings.HasPrefix(msg, k) || strings.Contains(msg, "`"+k+"`") {
			if k == "topic filter" {
				return "topic"
			}
			return k
		}
	}
	return "name"
}

func (l *loader) checkMQTT(c *Config) {
	m := &l.doc.MQTT
	bootstrap := l.doc.Bootstrap.LoginURL != ""
	out := &c.MQTT

	switch {
	case m.Broker == "" && !bootstrap:
		l.problem("mqtt.broker", "is required (unless bootstrap.login_url is set)",
			`set broker = "tls://host:8883" under [mqtt], or fill in [bootstrap] to get it from the account service`)
	case m.Broker != "":
		b, err := ParseBroker(m.Broker)
		if err != nil {
			l.problem("mqtt.broker", err.Error(), `write it as "tls://host:port" (TLS) or "tcp://host:port" (plaintext)`)
			break
		}
		out.Broker = b
		if !b.TLS && !m.AllowPlaintext {
			tlsForm := Broker{TLS: true, Host: b.Host, Port: DefaultTLSPort}
			l.problem("mqtt.broker", fmt.Sprintf("plaintext broker %q refused", b.URL()),
				fmt.Sprintf("use %s or set mqtt.allow_plaintext = true", tlsForm.URL()))
		}
		if !b.TLS && m.AllowPlaintext {
			l.warn("mqtt.allow_plaintext", "MQTT traffic, the password included, goes over the network unencrypted",
				"use a tls:// broker where there is one")
		}
	}

	out.Username = m.Username
	l.checkPassword("mqtt", m.Password, m.PasswordFile)
	out.Password = m.Password
	out.PasswordFile = l.resolve(m.PasswordFile)
	out.CAFile = l.resolve(m.CAFile)
	out.CertFile = l.resolve(m.CertFile)
	out.KeyFile = l.resolve(m.KeyFile)
	switch {
	case m.CertFile != "" && m.KeyFile == "":
		l.problem("mqtt.cert_file", "is set but mqtt.key_file is not", "set both for mutual TLS, or neither")
	case m.KeyFile != "" && m.CertFile == "":
		l.problem("mqtt.key_file", "is set but mqtt.cert_file is not", "set both for mutual TLS, or neither")
	}
	out.ServerName = m.ServerName
	out.InsecureSkipVerify = m.InsecureSkipVerify
	if m.InsecureSkipVerify {
		l.warn("mqtt.insecure_skip_verify", "TLS certificate checks are off: anyone on the network path can pose as the broker",
			"set ca_file to the broker's CA (and server_name when the broker is an IP) and turn this off")
	}
	out.AllowPlaintext = m.AllowPlaintext

	id := l.doc.DeviceID
	out.ClientID = l.substitute("mqtt.client_id", m.ClientID, id)
	out.NotifyTopic = l.substitute("mqtt.notify_topic", m.NotifyTopic, id)
	out.ReplyTopic = l.substitute("mqtt.reply_topic", m.ReplyTopic, id)
	out.StatusTopic = l.substitute("mqtt.status_topic", m.StatusTopic, id)
	out.EventTopic = l.substitute("mqtt.event_topic", m.EventTopic, id)
	if m.NotifyTopic == "" {
		l.problem("mqtt.notify_topic", "must not be empty: it is where commands arrive",
			fmt.Sprintf("remove it for the default %q", DefaultNotifyTopic))
	} else if msg := badTopicFilter(out.NotifyTopic); msg != "" {
		l.problem("mqtt.notify_topic", msg, "fix the topic")
	}
	for _, t := range []struct{ key, topic string }{{"mqtt.reply_topic", out.ReplyTopic}, {"mqtt.status_topic", out.StatusTopic}, {"mqtt.event_topic", out.EventTopic}} {
		if t.topic == "" {
			continue // "" turns the feature off
		}
		if msg := badTopicName(t.topic); msg != "" {
			l.problem(t.key, msg, `fix the topic, or set it to "" to turn this off`)
		}
	}

	if k, ok := l.duration("mqtt.keepalive", m.Keepalive); ok {
		switch {
		case k < time.Second:
			l.problem("mqtt.keepalive", fmt.Sprintf("%s is shorter than 1s", m.Keepalive), `use at least "1s"; the default is "30s"`)
		case k > maxKeepalive:
			l.problem("mqtt.keepalive", fmt.Sprintf("%s is longer than MQTT allows (65535s)", m.Keepalive), `use at most "18h12m15s"; the default is "30s"`)
		}
		out.Keepalive = k
	}

	if n, ok := l.size("mqtt.max_message_size", m.MaxMessageSize); ok {
		switch {
		case n < minMessageSize:
			l.problem("mqtt.max_message_size", fmt.Sprintf("%s is below the 1KiB minimum", m.MaxMessageSize),
				fmt.Sprintf("use at least \"1KiB\"; the default is %q", DefaultMaxMessageSize))
		case n > maxMessageSize:
			l.problem("mqtt.max_message_size", fmt.Sprintf("%s is above the 256MiB maximum", m.MaxMessageSize),
				fmt.Sprintf("use at most \"256MiB\"; the default is %q", DefaultMaxMessageSize))
		default:
			out.MaxMessageSize = n
		}
	}
}

// checkPassword checks one section's password / password_file pair.
func (l *loader) checkPassword(section, inline, file string) {
	switch {
	case inline != "" && file != "":
		l.problem(section+".password", "password and password_file are both set",
			"keep only password_file (or only password)")
	case inline != "":
		l.warn(section+".password", "the password is written in the config file",
			"move it to a file readable only by the agent (mode 0600) and set password_file")
	}
}

func (l *loader) checkBootstrap(c *Config) {
	b := &l.doc.Bootstrap
	out := &c.Bootstrap
	out.LoginURL = b.LoginURL
	out.LoadBalanceURL = b.LoadBalanceURL
	out.Username = b.Username
	out.Password = b.Password
	out.PasswordFile = l.resolve(b.PasswordFile)
	out.CAFile = l.resolve(b.CAFile)
	out.TokenField, out.BrokerField = b.TokenField, b.BrokerField
	out.MQTTUsernameField, out.MQTTPasswordField = b.MQTTUsernameField, b.MQTTPasswordField
	out.RefreshInterval = DefaultRefreshInterval
	if b.RefreshInterval != "" {
		if d, ok := l.duration("bootstrap.refresh_interval", b.RefreshInterval); ok {
			if d < time.Minute {
				l.problem("bootstrap.refresh_interval", fmt.Sprintf("%s is shorter than a minute", b.RefreshInterval),
					`the account service would be asked too often; use at least "1m" (default "12h")`)
			}
			out.RefreshInterval = d
		}
	}
	for _, f := range []struct{ key, val string }{
		{"bootstrap.token_field", b.TokenField}, {"bootstrap.broker_field", b.BrokerField},
		{"bootstrap.mqtt_username_field", b.MQTTUsernameField}, {"bootstrap.mqtt_password_field", b.MQTTPasswordField},
	} {
		if f.val != "" && (strings.HasPrefix(f.val, ".") || strings.HasSuffix(f.val, ".") || strings.Contains(f.val, "..")) {
			l.problem(f.key, fmt.Sprintf("%q is not a dotted path", f.val), `write it like "data.token"`)
		}
	}

	used := b.LoginURL != "" || b.LoadBalanceURL != "" || b.Username != "" ||
		b.Password != "" || b.PasswordFile != "" || b.CAFile != ""
	if !used {
		return
	}
	const fix = "fill in login_url, load_balance_url, username and password_file, or remove the [bootstrap] section"
	for _, r := range []struct{ key, val string }{
		{"bootstrap.login_url", b.LoginURL},
		{"bootstrap.load_balance_url", b.LoadBalanceURL},
		{"bootstrap.username", b.Username},
	} {
		if r.val == "" {
			l.problem(r.key, "is missing from a partly filled [bootstrap] section", fix)
		}
	}
	if b.Password == "" && b.PasswordFile == "" {
		l.problem("bootstrap.password_file", "is missing from a partly filled [bootstrap] section", fix)
	}
	l.checkPassword("bootstrap", b.Password, b.PasswordFile)
	// The login URL carries the app secret: report what is wrong, never the URL.
	l.checkURL("bootstrap.login_url", b.LoginURL)
	l.checkURL("bootstrap.load_balance_url", b.LoadBalanceURL)
}

// checkURL checks an account-service URL without quoting it.
func (l *loader) checkURL(key, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		l.problem(key, "is not an absolute URL", `write it as "https://host/path?query"`)
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !l.doc.MQTT.AllowPlaintext {
			l.problem(key, "is plain http: the password and token would cross the network unencrypted",
				"use https://, or set mqtt.allow_plaintext = true for a test setup")
		} else {
			l.warn(key, "is plain http: the password and token cross the network unencrypted", "use https://")
		}
	default:
		l.problem(key, fmt.Sprintf("has scheme %q", u.Scheme), "use https://")
	}
}

// checkPins checks the LEDs, relays and inputs, that no two of them share a
// pin (inputs and outputs are lines of one board), and the names relays and
// inputs give each other (feedback, toggles).
func (l *loader) checkPins(c *Config) {
	used := map[string]string{} // pin, case-folded → key of its first user
	// The simulated board's lines are known without hardware: ask it now,
	// so that config check refuses a pin that run would. (A real board's
	// lines are for its backend to say at start.)
	var board *sim.Sim
	if l.doc.HW.Backend == BackendSim {
		board = sim.New(nil)
	}
	claim := func(key, pin string) {
		if msg := badPin(pin); msg != "" {
			l.problem(key, msg, `write a line name like "GPIO17" or "gpiochip0:17"`)
			return
		}
		if board != nil {
			// An input is a line of the same board: asking for it as an
			// output on this throwaway board answers whether it exists.
			if _, err := board.Output(pin, false); errors.Is(err, hw.ErrNoSuchPin) {
				l.problem(key, err.Error(), `use one of the sim board's lines, or set [hw] backend = "periph" for real GPIO`)
				return
			}
		}
		norm := strings.ToLower(pin)
		if first, ok := used[norm]; ok {
			l.problem(key, fmt.Sprintf("pin %q is already used by %s (line %d)", pin, first, l.keys.line(first)),
				"give each relay, input and LED its own pin")
			return
		}
		used[norm] = key
	}

	leds := l.doc.LEDs
	c.LEDs = LEDs{Status: leds.Status, Activity: leds.Activity, Fault: leds.Fault, ActiveLow: leds.ActiveLow}
	for _, led := range []struct{ key, pin string }{
		{"leds.status", leds.Status}, {"leds.activity", leds.Activity}, {"leds.fault", leds.Fault},
	} {
		if led.pin != "" {
			claim(led.key, led.pin)
		}
	}

	if p, ok := l.keys["relay"]; ok && p.header {
		// go-toml would take [relay] as a one-element array; a second one
		// would then be a duplicate table. Say what is meant instead.
		l.problem("relay", "is written [relay]", "write [[relay]] (double brackets): each relay is one entry of an array")
	}
	names := map[string]string{} // relay name → key of its first use
	groups := map[string][]int{} // interlock group → relay indexes
	for i, r := range l.doc.Relays {
		k := "relay[" + strconv.Itoa(i) + "]"
		out := Relay{Name: r.Name, Pin: r.Pin, ActiveLow: r.ActiveLow, Interlock: r.Interlock, PowerOn: DefaultPowerOn}
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			l.problem(k+".name", "a relay needs a name", `set name = "…" in this [[relay]]; commands address relays by name`)
		case dup:
			l.problem(k+".name", fmt.Sprintf("relay name %q is already used by %s (line %d)", r.Name, first, l.keys.line(first)),
				"give each relay its own name")
		default:
			names[r.Name] = k + ".name"
		}
		if r.Pin == "" {
			l.problem(k+".pin", "a relay needs a pin", `set pin = "GPIO17" (the line name) in this [[relay]]`)
		} else {
			claim(k+".pin", r.Pin)
		}
		if l.keys.has(k + ".power_on") {
			switch r.PowerOn {
			case relay.PowerOnOff, relay.PowerOnOn, relay.PowerOnRestore:
				out.PowerOn = r.PowerOn
			default:
				l.problem(k+".power_on", fmt.Sprintf("unknown state %q", r.PowerOn), `use "off", "on" or "restore"`)
			}
		}
		if l.keys.has(k + ".max_on") {
			if d, ok := l.duration(k+".max_on", r.MaxOn); ok {
				if d < 0 {
					l.problem(k+".max_on", fmt.Sprintf("%s is negative", r.MaxOn), `use "0s" for no limit, or a positive duration`)
				}
				out.MaxOn = d
			}
		}
		if r.Interlock != "" {
			groups[r.Interlock] = append(groups[r.Interlock], i)
		}
		l.checkRelaySafety(k, r, &out)
		c.Relays = append(c.Relays, out)
	}
	l.checkInputs(c, claim, names)

	for _, g := range sortedKeys(groups) {
		idx := groups[g]
		if len(idx) == 1 {
			k := "relay[" + strconv.Itoa(idx[0]) + "].interlock"
			l.warn(k, fmt.Sprintf("interlock group %q has only this relay, so it locks nothing", g),
				"check the group's spelling on the other relays")
			continue
		}
		var on []int
		for _, i := range idx {
			if c.Relays[i].PowerOn == relay.PowerOnOn {
				on = append(on, i)
			}
		}
		if len(on) > 1 {
			k := "relay[" + strconv.Itoa(on[1]) + "].power_on"
			l.problem(k, fmt.Sprintf("relays %q and %q share interlock group %q but both power on", c.Relays[on[0]].Name, c.Relays[on[1]].Name, g),
				`set power_on = "off" on all but one of them`)
		}
	}
}

func (l *loader) checkStore(c *Config) {
	s := &l.doc.Store
	// 0 is refused rather than read as "no limit": the store takes a zero
	// option as "use the default".
	switch {
	case s.RetainRecords < 1:
		l.problem("store.retain_records", fmt.Sprintf("%d is not a positive number", s.RetainRecords),
			fmt.Sprintf("remove it for the default %d, or set a positive number", DefaultRetainRecords))
	case s.RetainRecords > int64(maxInt):
		l.problem("store.retain_records", fmt.Sprintf("%d is too large", s.RetainRecords), fmt.Sprintf("use at most %d", maxInt))
	default:
		c.Store.RetainRecords = int(s.RetainRecords)
	}
	rb, rbOK := l.size("store.retain_bytes", s.RetainBytes)
	mx, mxOK := l.size("store.max_db_size", s.MaxDBSize)
	if rbOK && rb < 1 {
		l.problem("store.retain_bytes", "must be more than 0", fmt.Sprintf("remove it for the default %q", DefaultRetainBytes))
		rbOK = false
	}
	switch {
	case mxOK && mx < minDBSize:
		l.problem("store.max_db_size", fmt.Sprintf("%s is below the 1MiB minimum", s.MaxDBSize), fmt.Sprintf("remove it for the default %q", DefaultMaxDBSize))
		mxOK = false
	case mxOK && mx > int64(maxInt):
		// bbolt maps the whole file; a 32-bit process cannot
		// (docs/dependencies.md#bbolt-32-bit-maxsize).
		l.problem("store.max_db_size", fmt.Sprintf("%s is more than this 32-bit system can map", s.MaxDBSize), fmt.Sprintf("use a few hundred MiB; the default is %q", DefaultMaxDBSize))
		mxOK = false
	}
	if rbOK && mxOK && rb >= mx/2 {
		l.problem("store.retain_bytes", fmt.Sprintf("%s is not less than half of max_db_size (%s)", s.RetainBytes, s.MaxDBSize),
			"bbolt copies pages on write and never shrinks its file, so it needs free room beside the retained data: "+
				fmt.Sprintf("lower retain_bytes below %s or raise max_db_size above %s", formatSize(mx/2), formatSize(2*rb)))
	}
	c.Store.RetainBytes, c.Store.MaxDBSize = rb, mx
	l.checkCommitWindow(c)
}

const maxInt = int(^uint(0) >> 1)

// duration parses a Go duration string, recording a problem if it is not one.
func (l *loader) duration(key, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		l.problem(key, fmt.Sprintf("%q is not a duration", s), `write a Go duration such as "30s", "5m" or "1h30m"`)
		return 0, false
	}
	return d, true
}

// size parses a size string, recording a problem if it is not one.
func (l *loader) size(key, s string) (int64, bool) {
	n, err := parseSize(s)
	if err != nil {
		l.problem(key, err.Error(), `write a whole number and a unit, like "64MiB" (B, KiB, MiB, GiB, KB, MB, GB)`)
		return 0, false
	}
	return n, true
}

// substitute replaces {device_id} in the value of key.
func (l *loader) substitute(key, value, deviceID string) string {
	out := strings.ReplaceAll(value, "{device_id}", deviceID)
	// A {name} left over is most likely a misspelt {device_id}, which
	// would silently subscribe to a dead topic.
	if p := findPlaceholder(out); p != "" {
		l.problem(key, fmt.Sprintf("unknown placeholder %q", p), "only {device_id} is replaced")
	}
	return out
}

// badDeviceID says what makes id unusable in a topic or client id, or "".
func badDeviceID(id string) string {
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	if strings.ContainsAny(id, "/+#") {
		return `must not contain "/", "+" or "#": it is part of MQTT topics`
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "must not contain spaces or control characters"
		}
	}
	return ""
}

// badTopicName checks a topic the agent publishes to: no wildcards
// [MQTT-3.3.2-2], no NUL [MQTT-4.7.3-2], at most 65535 bytes [MQTT-4.7.3-3].
func badTopicName(t string) string {
	if msg := badTopic(t); msg != "" {
		return msg
	}
	if strings.ContainsAny(t, "+#") {
		return "must not contain the wildcards + or #: the agent publishes to it"
	}
	return ""
}

// badTopicFilter checks a topic the agent subscribes to: "#" only as the
// whole last level [MQTT-4.7.1-2], "+" only as a whole level [MQTT-4.7.1-3].
func badTopicFilter(t string) string {
	if msg := badTopic(t); msg != "" {
		return msg
	}
	levels := strings.Split(t, "/")
	for i, lv := range levels {
		if strings.Contains(lv, "#") && (lv != "#" || i != len(levels)-1) {
			return `"#" may only stand alone as the last level`
		}
		if strings.Contains(lv, "+") && lv != "+" {
			return `"+" may only stand alone as a whole level`
		}
	}
	return ""
}

func badTopic(t string) string {
	switch {
	case !utf8.ValidString(t):
		return "is not valid UTF-8"
	case strings.ContainsRune(t, 0):
		return "must not contain a NUL character"
	case len(t) > 65535:
		return "is longer than 65535 bytes"
	}
	return ""
}

// badPin checks the form of a pin name; whether it exists is for the
// hardware backend to say at start.
func badPin(pin string) string {
	for _, r := range pin {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Sprintf("pin %q contains spaces or control characters", pin)
		}
	}
	if chip, off, ok := strings.Cut(pin, ":"); ok {
		n, ok := strings.CutPrefix(strings.ToLower(chip), "gpiochip")
		if !ok || !isDigits(n) || !isDigits(off) {
			return fmt.Sprintf("pin %q is not of the form gpiochipN:OFFSET", pin)
		}
	}
	return ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
