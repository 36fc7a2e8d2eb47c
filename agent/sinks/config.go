package sinks

import (
	"errors"
	"net"
	"strings"
	"time"
	"unicode/utf8"
)

// Config is one [[sink]] of the config file, checked there (agent/config).
// New applies the defaults to zero fields and refuses what a sink cannot
// run without.
type Config struct {
	Name    string   // unique; the cursor's key in the store
	Type    string   // TypeFile, TypeExec, TypeHTTP or TypeMQTT
	Topics  []string // MQTT filters; a record matching none is passed over. Default ["#"]
	Path    string   // file: the file appended to
	Format  string   // file: the line, see DefaultFormat
	MaxSize int64    // file: rotate before the file grows past this many bytes
	Keep    int      // file: rotated files kept (path.1 … path.Keep); 0 = none
	Command []string // exec: the program and its arguments, no shell
	Timeout time.Duration
	URL     string // http: where to POST
	Broker  string // mqtt: tcp://host:port (this machine only: agent/config checks) or tls://host:port
	Topic   string // mqtt: the topic published to, see DefaultTopic
}

// Sink types.
const (
	TypeFile = "file"
	TypeExec = "exec"
	TypeHTTP = "http"
	TypeMQTT = "mqtt"
)

// Defaults for the zero values of Config. Keep has none: 0 is a choice,
// so the config file supplies DefaultKeep when keep is absent.
const (
	// DefaultFormat is the line the script the agent replaced wrote.
	DefaultFormat  = "Received `{payload}` from `{topic}` topic"
	DefaultMaxSize = 10 << 20
	DefaultKeep    = 3
	DefaultTimeout = 30 * time.Second
	DefaultTopic   = "{topic}"
)

// DefaultTopics is the filter list of a sink without topics: every record.
var DefaultTopics = []string{"#"}

// Placeholders in Format (all four) and Topic ({topic} and {seq} only).
var (
	FormatFields = []string{"{payload}", "{topic}", "{seq}", "{received_at}"}
	TopicFields  = []string{"{topic}", "{seq}"}
)

// withDefaults returns c with every zero field set.
func (c Config) withDefaults() Config {
	if len(c.Topics) == 0 {
		c.Topics = DefaultTopics
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Keep < 0 {
		c.Keep = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	return c
}

// CheckFormat checks a file sink's format: one line, and no placeholder but
// FormatFields.
func CheckFormat(format string) error {
	if strings.ContainsAny(format, "\r\n") {
		return errors.New("format must be one line: each record is one line")
	}
	_, err := parseTemplate(format, FormatFields)
	return err
}

// CheckTopic checks an mqtt sink's topic: no placeholder but TopicFields,
// and a topic one may publish to.
func CheckTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("topic must not be empty")
	case !utf8.ValidString(topic) || strings.ContainsRune(topic, 0):
		return errors.New("topic must be UTF-8 without NUL characters")
	case strings.ContainsAny(topic, "+#"):
		return errors.New("topic must not contain the wildcards + or #: the sink publishes to it")
	}
	_, err := parseTemplate(topic, TopicFields)
	return err
}

// Loopback reports whether host (a name or an address, without brackets)
// is this machine: "localhost", 127.0.0.0/8 or ::1.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
