package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/sinks"
)

// Config is a checked configuration. Every field holds its final value:
// defaults applied, "{device_id}" substituted, paths absolute (when the file
// had a name). Password fields hold secrets: never log or print them.
type Config struct {
	Path      string // the file it was read from, as given
	DeviceID  string
	DataDir   string // bbolt database and control socket
	MQTT      MQTT
	Bootstrap Bootstrap
	HW        HW
	LEDs      LEDs
	Relays    []Relay
	Inputs    []Input
	Rules     []rules.Spec // topics resolved ({device_id}, default notify_topic)
	// Sinks are the [[sink]]s, defaults applied, {device_id} replaced in
	// topics, format and topic, relative paths made absolute.
	Sinks   []sinks.Config
	Store   Store
	Metrics Metrics

	warnings []string
}

// MQTT is the [mqtt] section.
type MQTT struct {
	_ noEq // never compared: no equality function in the binary
	// Broker is the zero Broker when bootstrap.login_url is set and the
	// account service is to supply the address.
	Broker             Broker
	Username           string
	Password           string // from password or password_file (Load reads it); secret
	PasswordFile       string // "" = none
	CAFile             string // "" = system roots
	CertFile           string // client certificate for mutual TLS; "" = none
	KeyFile            string // set exactly when CertFile is
	ServerName         string // "" = the broker's host
	InsecureSkipVerify bool
	AllowPlaintext     bool
	ClientID           string // "" = the agent derives "{device_id}@{n}"
	NotifyTopic        string // never ""
	ReplyTopic         string // "" = no replies
	StatusTopic        string // "" = no online/offline status
	EventTopic         string // "" = no input or relay events
	Keepalive          time.Duration
	// MaxMessageSize is the largest notification, in bytes, stored whole;
	// a larger one is acknowledged and stored as a marker record (topic,
	// size, first bytes), never held in memory whole.
	MaxMessageSize int64
}

// Bootstrap is the [bootstrap] section: where to get MQTT credentials from
// the account service. Either all of LoginURL, LoadBalanceURL, Username and
// a password are set, or none.
type Bootstrap struct {
	_              noEq   // never compared: no equality function in the binary
	LoginURL       string // carries appSecret in its query: secret, never log it
	LoadBalanceURL string
	Username       string
	Password       string // from password or password_file (Load reads it); secret
	PasswordFile   string
	CAFile         string // "" = system roots
	// Dotted paths of the fields in the answers; "" = the defaults.
	TokenField, BrokerField, MQTTUsernameField, MQTTPasswordField string
	// RefreshInterval: credentials are fetched again this often even when
	// nothing refused them (and sooner when the answer says they expire).
	RefreshInterval time.Duration
}

// Enabled reports whether credentials come from the account service.
func (b Bootstrap) Enabled() bool { return b.LoginURL != "" }

// HW is the [hw] section.
type HW struct {
	Backend string // BackendPeriph or BackendSim
}

// Hardware backends.
const (
	BackendPeriph = "periph" // real GPIO through periph.io
	BackendSim    = "sim"    // simulated pins, no hardware
)

// LEDs is the [leds] section; "" means the LED is absent.
type LEDs struct {
	_         noEq // never compared: no equality function in the binary
	Status    string
	Activity  string
	Fault     string
	ActiveLow bool
}

// Relay is one [[relay]] entry.
type Relay struct {
	_         noEq // never compared: no equality function in the binary
	Name      string
	Pin       string
	ActiveLow bool
	PowerOn   string        // relay.PowerOnOff, relay.PowerOnOn or relay.PowerOnRestore
	MaxOn     time.Duration // 0 = no limit
	Interlock string        // "" = none; relays sharing a group are never on together
	// Feedback names the [[input]] that must follow the relay within
	// FeedbackTimeout of each switch; "" = none.
	Feedback        string
	FeedbackTimeout time.Duration
	// Offline is OfflineKeep or OfflineOff: with off, the relay is switched
	// off once the agent has not been connected for OfflineAfter.
	Offline      string
	OfflineAfter time.Duration
}

// Offline policies of a relay.
const (
	OfflineKeep = "keep"
	OfflineOff  = "off"
)

// Input is one [[input]] entry: a GPIO line read with edge detection.
type Input struct {
	_         noEq // never compared: no equality function in the binary
	Name      string
	Pin       string
	Pull      string // PullUp, PullDown or PullNone
	ActiveLow bool   // active (pressed, closed) is the low level
	Debounce  time.Duration
	Toggles   string // relay that each press (change to active) toggles; "" = none
}

// Pull resistors of an input.
const (
	PullUp   = "up"
	PullDown = "down"
	PullNone = "none"
)

// Store is the [store] section: how much the message store keeps.
type Store struct {
	_             noEq  // never compared: no equality function in the binary
	RetainRecords int   // inbox records kept, ≥ 1
	RetainBytes   int64 // payload bytes kept, < MaxDBSize/2
	MaxDBSize     int64 // bbolt file size limit
	// CommitWindow is how long the writer gathers messages before a
	// commit (store.go).
	CommitWindow time.Duration
}

// Warnings returns what is allowed but risky (certificate checks off, an
// inline password, …), one line each, without the file name. They carry no
// secret.
func (c *Config) Warnings() []string {
	return append([]string(nil), c.warnings...)
}

// Load reads the file at path, checks it like Parse, then reads the files it
// names: password files (trailing newlines trimmed), the CA bundle and the
// client certificate and key, reporting every one that is unreadable or
// unusable. Content problems come back as *Errors; a config file that cannot
// be read at all comes back as the wrapped *fs.PathError.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	l := newLoader(data, path)
	if l.decode() {
		l.check()
		l.readFiles()
	}
	return l.result()
}

// Parse checks a configuration held in memory. path names it in messages
// and is the directory relative paths are resolved against ("" = the
// working directory). Parse reads no other file: Password is set only from
// an inline password, and referenced files are not checked (Load does both).
func Parse(data []byte, path string) (*Config, error) {
	l := newLoader(data, path)
	if l.decode() {
		l.check()
	}
	return l.result()
}

// loader carries one file through decoding and checking.
type loader struct {
	path string
	dir  string // for relative paths; "" = leave them relative
	data []byte
	doc  document
	keys keyIndex
	cfg  *Config

	unknown  Errors // unknown keys, in file order
	problems Errors // everything else
	warnings Errors
	mistyped []string // keys whose values had the wrong type (set aside)
}

func newLoader(data []byte, path string) *loader {
	l := &loader{path: path, data: data, doc: defaults()}
	if path != "" {
		dir := filepath.Dir(path)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		l.dir = dir
	}
	return l
}

// decode fills l.doc. It returns false when the document cannot be trusted
// (a syntax error); unknown keys are reported and decoding goes on. A value
// of the wrong type is reported and its key = value set aside (blanked in a
// copy of the file, so every line keeps its number) before decoding again,
// so that every mistake in the file is listed at once, not only the first.
func (l *loader) decode() bool {
	l.keys = indexKeys(l.data)
	data := l.data
	for {
		l.doc = defaults() // an interrupted decode leaves fields half set
		dec := toml.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err := dec.Decode(&l.doc)
		if err == nil {
			return true
		}
		var missing *toml.StrictMissingError
		if errors.As(err, &missing) {
			for i := range missing.Errors {
				l.unknown = append(l.unknown, l.unknownKey(&missing.Errors[i]))
			}
			return true
		}
		var de *toml.DecodeError
		if !errors.As(err, &de) {
			l.problems = append(l.problems, Problem{Path: l.path, Msg: err.Error()})
			return false
		}
		p := l.decodeError(de)
		if slices.Contains(l.mistyped, p.Key) {
			return false // set aside already, yet reported again: give up
		}
		l.problems = append(l.problems, p)
		if !isTypeError(de) || p.Key == "" || len(l.mistyped) >= maxTypeErrors {
			return false
		}
		next, ok := blankKeyValue(data, de)
		if !ok {
			return false
		}
		data = next
		l.mistyped = append(l.mistyped, p.Key)
	}
}

// maxTypeErrors bounds the decode-again loop; every round blanks one
// key = value, so it ends anyway, but a file of nothing but wrong types
// need not be decoded a thousand times.
const maxTypeErrors = 100

// underMistyped reports whether key is, or is inside, a key whose value had
// the wrong type: its checks ran on the default and say nothing true.
func (l *loader) underMistyped(key string) bool {
	for _, m := range l.mistyped {
		if key == m || strings.HasPrefix(key, m+".") || strings.HasPrefix(key, m+"[") {
			return true
		}
	}
	return false
}

// problem records a problem about key, at key's line.
func (l *loader) problem(key, msg, fix string) {
	if l.underMistyped(key) {
		return // the type error is already reported
	}
	l.problems = append(l.problems, Problem{Path: l.path, Line: l.keys.line(key), Key: key, Msg: msg, Fix: fix})
}

// warn records a warning about key.
func (l *loader) warn(key, msg, fix string) {
	if l.underMistyped(key) {
		return
	}
	l.warnings = append(l.warnings, Problem{Line: l.keys.line(key), Key: key, Msg: msg, Fix: fix})
}

// resolve makes a relative file path absolute against the config's
// directory, so the agent finds it whatever its working directory.
func (l *loader) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || l.dir == "" {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *loader) result() (*Config, error) {
	if len(l.unknown)+len(l.problems) > 0 {
		sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Line < l.problems[j].Line })
		all := append(append(Errors(nil), l.unknown...), l.problems...)
		return nil, &all
	}
	sort.SliceStable(l.warnings, func(i, j int) bool { return l.warnings[i].Line < l.warnings[j].Line })
	for _, w := range l.warnings {
		l.cfg.warnings = append(l.cfg.warnings, w.String())
	}
	return l.cfg, nil
}
