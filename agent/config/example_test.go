package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/sinks"
	"github.com/edge-agent/edge-agent/hw/relay"
)

const examplePath = "../../scripts/edge-agent.example.toml"

func readExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// uncommentRelay turns the commented-out [[relay]] block of the example
// into a live one.
func uncommentRelay(doc string) string { return uncommentBlock(doc, "# [[relay]]") }

// uncommentBlock uncomments the commented block that starts at header, up
// to the next line that is not a comment.
func uncommentBlock(doc, header string) string {
	ls := strings.Split(doc, "\n")
	in := false
	for i, l := range ls {
		if l == header {
			in = true
		}
		if in && !strings.HasPrefix(l, "# ") {
			in = false
		}
		if in {
			ls[i] = strings.TrimPrefix(l, "# ")
		}
	}
	return strings.Join(ls, "\n")
}

func TestExampleParses(t *testing.T) {
	doc := readExample(t)

	// As shipped, only the required device_id is missing.
	errs := parseErrs(t, doc)
	if len(errs) != 1 || errs[0].Key != "device_id" {
		t.Errorf("example as shipped: got\n%s\nwant only device_id missing", errs.Error())
	}

	filled := strings.Replace(doc, `device_id = ""`, `device_id = "5219709"`, 1)
	got := mustParse(t, filled)
	want := &Config{
		Path:     "config.toml",
		DeviceID: "5219709",
		DataDir:  DefaultDataDir,
		MQTT: MQTT{
			Broker:         Broker{TLS: true, Host: "broker.example.com", Port: 8883},
			NotifyTopic:    "/sys/5219709/thing/push/notify",
			ReplyTopic:     "/sys/5219709/thing/push/reply",
			StatusTopic:    "/sys/5219709/thing/status",
			EventTopic:     "/sys/5219709/thing/event",
			Keepalive:      30 * time.Second,
			MaxMessageSize: 1 << 20,
		},
		Bootstrap: Bootstrap{RefreshInterval: DefaultRefreshInterval},
		HW:        HW{Backend: BackendPeriph},
		Store:     Store{RetainRecords: DefaultRetainRecords, RetainBytes: 64 << 20, MaxDBSize: 256 << 20, CommitWindow: 100 * time.Millisecond},
		Metrics:   Metrics{Interval: time.Minute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example:\n got %+v\nwant %+v", got, want)
	}

	// The example's values are the defaults: the same file with only the
	// required keys gives the same Config.
	minimal := mustParse(t, lines(`device_id = "5219709"`, `[mqtt]`, `broker = "tls://broker.example.com:8883"`))
	if !reflect.DeepEqual(minimal, got) {
		t.Errorf("example differs from the defaults:\nexample  %+v\ndefaults %+v", got, minimal)
	}

	withRelay := mustParse(t, uncommentRelay(filled))
	wantRelays := []Relay{{Name: "pump", Pin: "GPIO17", PowerOn: relay.PowerOnOff,
		FeedbackTimeout: 500 * time.Millisecond, Offline: OfflineKeep, OfflineAfter: 5 * time.Minute}}
	if !reflect.DeepEqual(withRelay.Relays, wantRelays) {
		t.Errorf("relay block: got %+v, want %+v", withRelay.Relays, wantRelays)
	}

	if w := withRelay.Warnings(); len(w) != 0 {
		t.Errorf("relay block: warnings %q", w)
	}

	// The input block, uncommented, is valid on the example's backend on
	// its own and beside the relay block, with every default.
	wantInputs := []Input{{Name: "door", Pin: "GPIO5", Pull: PullNone, Debounce: 20 * time.Millisecond}}
	for name, doc := range map[string]string{
		"input block":           uncommentBlock(filled, "# [[input]]"),
		"relay and input block": uncommentBlock(uncommentRelay(filled), "# [[input]]"),
	} {
		c := mustParse(t, doc)
		if !reflect.DeepEqual(c.Inputs, wantInputs) {
			t.Errorf("%s: got %+v, want %+v", name, c.Inputs, wantInputs)
		}
		if w := c.Warnings(); len(w) != 0 {
			t.Errorf("%s: warnings %q", name, w)
		}
	}

	withRule := mustParse(t, uncommentBlock(uncommentRelay(filled), "# [[rule]]"))
	wantRules := []rules.Spec{{Name: "pump", Topic: "/sys/5219709/thing/service/property/set",
		Match: map[string]any{"method": "thing.service.property.set"}, Action: rules.ActionRelaySet, Relay: "pump",
		On: "params.PowerSwitch", ID: "id", Reply: rules.ReplyAlink}}
	if !reflect.DeepEqual(withRule.Rules, wantRules) {
		t.Errorf("rule block: got %+v, want %+v", withRule.Rules, wantRules)
	}

	// The sink block, uncommented, is a file sink with every default; the
	// keys of the other types it carries are empty or their defaults.
	withSink := mustParse(t, uncommentBlock(filled, "# [[sink]]"))
	wantSinks := []sinks.Config{{Name: "log", Type: sinks.TypeFile, Topics: []string{"#"}, Path: "/var/log/edge-agent/notify.log",
		Format: "Received `{payload}` from `{topic}` topic", MaxSize: 10 << 20, Keep: 3}}
	if !reflect.DeepEqual(withSink.Sinks, wantSinks) {
		t.Errorf("sink block: got %+v, want %+v", withSink.Sinks, wantSinks)
	}
	if w := withSink.Warnings(); len(w) != 0 {
		t.Errorf("sink block: warnings %q", w)
	}
}

// The example with its file keys pointed at real files loads, files read.
func TestExampleLoadsWithFiles(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "ca")
	writeCert(t, dir, "client")
	writeFile(t, dir, "mqtt.pass", "pw\n", 0o600)
	doc := strings.Replace(readExample(t), `device_id = ""`, `device_id = "5219709"`, 1)
	for key, val := range map[string]string{
		"password_file": "mqtt.pass",
		"ca_file":       "ca.pem",
		"cert_file":     "client.pem",
		"key_file":      "client.key",
	} {
		// Only the first occurrence: the one under [mqtt].
		doc = strings.Replace(doc, key+` = ""`, key+` = "`+val+`"`, 1)
	}
	c := mustLoad(t, writeFile(t, dir, "config.toml", doc, 0o644))
	if c.MQTT.Password != "pw" || c.MQTT.CAFile != filepath.Join(dir, "ca.pem") || c.MQTT.KeyFile != filepath.Join(dir, "client.key") {
		t.Errorf("mqtt = %+v", c.MQTT)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}
}

var (
	exampleSection = regexp.MustCompile(`^(?:# )?\[\[?([a-z_.]+)\]\]?(?:\s|$)`)
	exampleKey     = regexp.MustCompile(`^(?:# )?([a-z_]+) = (.*)$`)
)

// Every accepted key appears in the example, under its section, with a
// comment; and the example has no key the decoder would reject.
func TestExampleHasEveryKey(t *testing.T) {
	section := ""
	var got []string
	for i, l := range strings.Split(readExample(t), "\n") {
		if m := exampleSection.FindStringSubmatch(l); m != nil {
			section = m[1]
			continue
		}
		m := exampleKey.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		key := join(section, m[1])
		got = append(got, key)
		if !strings.Contains(m[2], " # ") {
			t.Errorf("example line %d: %s has no comment", i+1, key)
		}
	}
	want := schemaLeaves()
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("example lacks %s", k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("example has %s, which the config does not accept", k)
		}
	}
	slices.Sort(got)
	if dup := slices.Compact(slices.Clone(got)); len(dup) != len(got) {
		t.Errorf("example repeats a key: %v", got)
	}
}

// The schema is what the decoder accepts: each of its keys decodes.
func TestSchemaMatchesDecoder(t *testing.T) {
	want := []string{
		"bootstrap.broker_field", "bootstrap.ca_file", "bootstrap.load_balance_url", "bootstrap.login_url",
		"bootstrap.mqtt_password_field", "bootstrap.mqtt_username_field", "bootstrap.password",
		"bootstrap.password_file", "bootstrap.refresh_interval", "bootstrap.token_field", "bootstrap.username",
		"data_dir", "device_id",
		"hw.backend",
		"input.active_low", "input.debounce", "input.name", "input.pin", "input.pull", "input.toggles",
		"leds.active_low", "leds.activity", "leds.fault", "leds.status",
		"metrics.allow_remote", "metrics.interval", "metrics.listen", "metrics.telemetry_topic", "metrics.textfile",
		"mqtt.allow_plaintext", "mqtt.broker", "mqtt.ca_file", "mqtt.cert_file", "mqtt.client_id", "mqtt.event_topic", "mqtt.insecure_skip_verify",
		"mqtt.keepalive", "mqtt.key_file", "mqtt.max_message_size", "mqtt.notify_topic", "mqtt.password", "mqtt.password_file", "mqtt.reply_topic",
		"mqtt.server_name", "mqtt.status_topic", "mqtt.username",
		"relay.active_low", "relay.feedback", "relay.feedback_timeout", "relay.interlock", "relay.max_on", "relay.name",
		"relay.offline", "relay.offline_after", "relay.pin", "relay.power_on",
		"rule.action", "rule.for", "rule.id", "rule.match", "rule.name", "rule.on", "rule.relay", "rule.reply", "rule.topic",
		"sink.broker", "sink.command", "sink.format", "sink.keep", "sink.max_size", "sink.name", "sink.path", "sink.timeout",
		"sink.topic", "sink.topics", "sink.type", "sink.url",
		"store.commit_window", "store.max_db_size", "store.retain_bytes", "store.retain_records",
	}
	if got := schemaLeaves(); !slices.Equal(got, want) {
		t.Errorf("schema keys:\n got %v\nwant %v", got, want)
	}
}
