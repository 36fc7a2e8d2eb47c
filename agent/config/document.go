package config

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// document is the file's shape, key for key. Its toml tags are the whole
// set of accepted keys: the decoder rejects anything else, and a test checks
// that scripts/edge-agent.example.toml carries every one of them.
//
// Durations and sizes are kept as strings here so that a bad one becomes a
// Problem with its line (and the other checks still run) instead of stopping
// the decoder.
type document struct {
	DeviceID  string           `toml:"device_id"`
	DataDir   string           `toml:"data_dir"`
	MQTT      mqttSection      `toml:"mqtt"`
	Bootstrap bootstrapSection `toml:"bootstrap"`
	HW        hwSection        `toml:"hw"`
	LEDs      ledsSection      `toml:"leds"`
	Relays    []relaySection   `toml:"relay"`
	Inputs    []inputSection   `toml:"input"`
	Rules     []ruleSection    `toml:"rule"`
	Sinks     []sinkSection    `toml:"sink"`
	Store     storeSection     `toml:"store"`
	Metrics   metricsSection   `toml:"metrics"`
}

type mqttSection struct {
	_                  noEq   // never compared: no equality function in the binary
	Broker             string `toml:"broker"`
	Username           string `toml:"username"`
	Password           string `toml:"password"`
	PasswordFile       string `toml:"password_file"`
	CAFile             string `toml:"ca_file"`
	CertFile           string `toml:"cert_file"`
	KeyFile            string `toml:"key_file"`
	ServerName         string `toml:"server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	AllowPlaintext     bool   `toml:"allow_plaintext"`
	ClientID           string `toml:"client_id"`
	NotifyTopic        string `toml:"notify_topic"`
	ReplyTopic         string `toml:"reply_topic"`
	StatusTopic        string `toml:"status_topic"`
	EventTopic         string `toml:"event_topic"`
	Keepalive          string `toml:"keepalive"`
	MaxMessageSize     string `toml:"max_message_size"`
}

type bootstrapSection struct {
	_              noEq   // never compared: no equality function in the binary
	LoginURL       string `toml:"login_url"`
	LoadBalanceURL string `toml:"load_balance_url"`
	Username       string `toml:"username"`
	Password       string `toml:"password"`
	PasswordFile   string `toml:"password_file"`
	CAFile         string `toml:"ca_file"`
	// Where the answers carry what we need, as dotted paths ("data.token");
	// "" = the defaults (docs/design.md#bootstrap).
	TokenField        string `toml:"token_field"`
	BrokerField       string `toml:"broker_field"`
	MQTTUsernameField string `toml:"mqtt_username_field"`
	MQTTPasswordField string `toml:"mqtt_password_field"`
	RefreshInterval   string `toml:"refresh_interval"`
}

type hwSection struct {
	Backend string `toml:"backend"`
}

type ledsSection struct {
	_         noEq   // never compared: no equality function in the binary
	Status    string `toml:"status"`
	Activity  string `toml:"activity"`
	Fault     string `toml:"fault"`
	ActiveLow bool   `toml:"active_low"`
}

type relaySection struct {
	_         noEq   // never compared: no equality function in the binary
	Name      string `toml:"name"`
	Pin       string `toml:"pin"`
	ActiveLow bool   `toml:"active_low"`
	PowerOn   string `toml:"power_on"`
	MaxOn     string `toml:"max_on"`
	Interlock string `toml:"interlock"`
	// The keys below are absent from most relays; their defaults are
	// applied in check (an array entry cannot be prefilled).
	Feedback        string `toml:"feedback"`
	FeedbackTimeout string `toml:"feedback_timeout"`
	Offline         string `toml:"offline"`
	OfflineAfter    string `toml:"offline_after"`
}

// inputSection is one [[input]]: a button or contact read from a GPIO line.
// Pull and Debounce get their defaults in check, like the relay's keys.
type inputSection struct {
	_         noEq   // never compared: no equality function in the binary
	Name      string `toml:"name"`
	Pin       string `toml:"pin"`
	Pull      string `toml:"pull"`
	ActiveLow bool   `toml:"active_low"`
	Debounce  string `toml:"debounce"`
	Toggles   string `toml:"toggles"`
}

// ruleSection is one [[rule]]: a platform payload mapped to an action
// (docs/design.md#rules).
type ruleSection struct {
	Name   string         `toml:"name"`
	Topic  string         `toml:"topic"`
	Match  map[string]any `toml:"match"`
	Action string         `toml:"action"`
	Relay  string         `toml:"relay"`
	On     string         `toml:"on"`
	For    string         `toml:"for"`
	ID     string         `toml:"id"`
	Reply  string         `toml:"reply"`
}

// sinkSection is one [[sink]]: a local program every stored notification
// is handed to (agent/sinks). Keep is kept as written: absent means
// sinks.DefaultKeep, 0 means no old file.
type sinkSection struct {
	Name    string   `toml:"name"`
	Type    string   `toml:"type"`
	Topics  []string `toml:"topics"`
	Path    string   `toml:"path"`
	Format  string   `toml:"format"`
	MaxSize string   `toml:"max_size"`
	Keep    int64    `toml:"keep"`
	Command []string `toml:"command"`
	Timeout string   `toml:"timeout"`
	URL     string   `toml:"url"`
	Broker  string   `toml:"broker"`
	Topic   string   `toml:"topic"`
}

type storeSection struct {
	_             noEq   // never compared: no equality function in the binary
	RetainRecords int64  `toml:"retain_records"`
	RetainBytes   string `toml:"retain_bytes"`
	MaxDBSize     string `toml:"max_db_size"`
	CommitWindow  string `toml:"commit_window"`
}

// Defaults, as documented in docs/design.md#config-file and the example
// config.
const (
	DefaultDataDir        = "/var/lib/edge-agent"
	DefaultNotifyTopic    = "/sys/{device_id}/thing/push/notify"
	DefaultReplyTopic     = "/sys/{device_id}/thing/push/reply"
	DefaultStatusTopic    = "/sys/{device_id}/thing/status"
	DefaultEventTopic     = "/sys/{device_id}/thing/event"
	DefaultKeepalive      = "30s"
	DefaultMaxMessageSize = "1MiB"
	DefaultBackend        = BackendPeriph
	DefaultRetainRecords  = store.DefaultRetainRecords
	DefaultPowerOn        = relay.PowerOnOff
	DefaultMaxOn          = "0s"
)

// Defaults of the [[input]] and the relay's feedback and offline keys,
// written as the file takes them.
const (
	DefaultPull            = PullNone
	DefaultDebounce        = "20ms"
	DefaultFeedbackTimeout = "500ms"
	DefaultOffline         = OfflineKeep
	DefaultOfflineAfter    = "5m"
)

// The store's defaults, written as sizes the way the file takes them; the
// store package owns the numbers.
var (
	DefaultRetainBytes = formatSize(store.DefaultRetainBytes)
	DefaultMaxDBSize   = formatSize(store.DefaultMaxSize)
)

// DefaultRefreshInterval is bootstrap.refresh_interval when it is absent.
const DefaultRefreshInterval = 12 * time.Hour

// defaults returns a document holding every default. The decoder only
// overwrites keys present in the file, which is what tells an explicit
// reply_topic = "" (no replies) from an absent one (the default).
func defaults() document {
	return document{
		DataDir: DefaultDataDir,
		MQTT: mqttSection{
			NotifyTopic:    DefaultNotifyTopic,
			ReplyTopic:     DefaultReplyTopic,
			StatusTopic:    DefaultStatusTopic,
			EventTopic:     DefaultEventTopic,
			Keepalive:      DefaultKeepalive,
			MaxMessageSize: DefaultMaxMessageSize,
		},
		HW: hwSection{Backend: DefaultBackend},
		Store: storeSection{
			RetainRecords: DefaultRetainRecords,
			RetainBytes:   DefaultRetainBytes,
			MaxDBSize:     DefaultMaxDBSize,
			CommitWindow:  DefaultCommitWindow,
		},
		Metrics: metricsSection{Interval: DefaultMetricsInterval},
	}
}

// valueKind says what a key holds, for type-error messages and fixes.
type valueKind int

const (
	kindString valueKind = iota
	kindBool
	kindInt
	kindDuration
	kindSize
	kindTable
	kindArrayTable
	kindArray // of strings
)

// schemaEntry is one accepted key (or table).
type schemaEntry struct {
	kind valueKind
}

// keys whose string values have a syntax of their own.
var specialKinds = map[string]valueKind{
	"mqtt.keepalive":         kindDuration,
	"mqtt.max_message_size":  kindSize,
	"relay.max_on":           kindDuration,
	"relay.feedback_timeout": kindDuration,
	"relay.offline_after":    kindDuration,
	"input.debounce":         kindDuration,
	"sink.max_size":          kindSize,
	"sink.timeout":           kindDuration,
	"store.retain_bytes":     kindSize,
	"store.max_db_size":      kindSize,
	"store.commit_window":    kindDuration,
	"metrics.interval":       kindDuration,
}

// schema maps every accepted dotted key, without array indexes
// ("relay.pin"), to what it holds. Tables appear too ("mqtt", "relay").
var schema = buildSchema()

func buildSchema() map[string]schemaEntry {
	m := map[string]schemaEntry{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			if name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			switch f.Type.Kind() {
			case reflect.Struct:
				m[key] = schemaEntry{kind: kindTable}
				walk(key, f.Type)
			case reflect.Slice:
				if f.Type.Elem().Kind() != reflect.Struct {
					m[key] = schemaEntry{kind: kindArray}
					continue
				}
				m[key] = schemaEntry{kind: kindArrayTable}
				walk(key, f.Type.Elem())
			case reflect.Bool:
				m[key] = schemaEntry{kind: kindBool}
			case reflect.Int, reflect.Int64:
				m[key] = schemaEntry{kind: kindInt}
			default:
				k := kindString
				if sk, ok := specialKinds[key]; ok {
					k = sk
				}
				m[key] = schemaEntry{kind: k}
			}
		}
	}
	walk("", reflect.TypeOf(document{}))
	return m
}

// schemaLeaves returns every accepted key that holds a value, sorted.
func schemaLeaves() []string {
	var out []string
	for k, e := range schema {
		if e.kind != kindTable && e.kind != kindArrayTable {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// parentKey returns "mqtt" for "mqtt.broker" and "" for "device_id".
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// stripIndexes turns "relay[2].pin" into "relay.pin".
func stripIndexes(key string) string {
	if !strings.Contains(key, "[") {
		return key
	}
	var b strings.Builder
	depth := 0
	for _, r := range key {
		switch {
		case r == '[':
			depth++
		case r == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}
