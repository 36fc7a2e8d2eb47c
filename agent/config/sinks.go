package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/sinks"
)

// Bounds of the [[sink]] keys.
const (
	minSinkMaxSize = 1 << 10
	maxSinkKeep    = 100
)

// Defaults of the [[sink]] keys as the file writes them.
var (
	DefaultSinkMaxSize = formatSize(sinks.DefaultMaxSize)
	DefaultSinkTimeout = sinks.DefaultTimeout.String()
)

// checkSinks checks each [[sink]]: a unique name, a known type with the
// keys it needs, good filters, and builds c.Sinks. A key that only another
// type uses is ignored (the example's one block carries them all).
func (l *loader) checkSinks(c *Config) {
	if p, ok := l.keys["sink"]; ok && p.header {
		l.problem("sink", "is written [sink]", "write [[sink]] (double brackets): each sink is one entry of an array")
	}
	const hint = "see the [[sink]] block in the example config (scripts/edge-agent.example.toml)"
	id := l.doc.DeviceID
	names := map[string]string{} // sink name → key of its first use
	paths := map[string]string{} // file path → key of its first use
	for i, d := range l.doc.Sinks {
		k := "sink[" + strconv.Itoa(i) + "]"
		ok := true
		bad := func(key, msg, fix string) {
			l.problem(k+"."+key, msg, fix)
			ok = false
		}
		first, dup := names[d.Name]
		switch {
		case d.Name == "":
			bad("name", "a sink needs a name", `set name = "…" in this [[sink]]: its cursor in the store and the CLI use it`)
		case dup:
			bad("name", fmt.Sprintf("sink name %q is already used by %s (line %d)", d.Name, first, l.keys.line(first)),
				"give each sink its own name: each has its own cursor")
		case !utf8.ValidString(d.Name) || strings.ContainsFunc(d.Name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			bad("name", "must be UTF-8 without spaces or control characters", `use a short word like "log" or "forwarder"`)
		default:
			names[d.Name] = k + ".name"
		}
		out := sinks.Config{Name: d.Name, Type: d.Type, Topics: sinks.DefaultTopics}
		switch d.Type {
		case sinks.TypeFile, sinks.TypeExec, sinks.TypeHTTP, sinks.TypeMQTT:
		case "":
			bad("type", "a sink needs a type", `set type = "file", "exec", "http" or "mqtt"`)
		default:
			bad("type", fmt.Sprintf("unknown sink type %q", d.Type), `use "file", "exec", "http" or "mqtt"`)
		}

		if l.keys.has(k + ".topics") {
			if len(d.Topics) == 0 {
				bad("topics", "names no filter, so the sink would get nothing", `remove it for the default ["#"] (every record), or list MQTT filters`)
			}
			out.Topics = nil
			for _, f := range d.Topics {
				f = l.substitute(k+".topics", f, id)
				if err := rules.CheckFilter(f); err != nil {
					bad("topics", err.Error(), `write MQTT filters: "+" for one whole level, "#" for the rest as the last level`)
				}
				out.Topics = append(out.Topics, f)
			}
		}

		timeout := func() {
			out.Timeout = sinks.DefaultTimeout
			if !l.keys.has(k + ".timeout") {
				return
			}
			if t, okd := l.duration(k+".timeout", d.Timeout); !okd {
				ok = false
			} else if t <= 0 {
				bad("timeout", fmt.Sprintf("%s is not positive", d.Timeout), fmt.Sprintf("remove it for the default %q, or set a positive duration", DefaultSinkTimeout))
			} else {
				out.Timeout = t
			}
		}

		switch d.Type {
		case sinks.TypeFile:
			out.Path = l.resolve(d.Path)
			if d.Path == "" {
				bad("path", "a file sink needs a path", `set path = "/var/log/edge-agent/notify.log" in this [[sink]]`)
			} else if first, dup := paths[out.Path]; dup {
				bad("path", fmt.Sprintf("%s is already written by %s (line %d)", out.Path, first, l.keys.line(first)),
					"give each file sink its own file")
			} else {
				paths[out.Path] = k + ".path"
			}
			out.Format = sinks.DefaultFormat
			if l.keys.has(k + ".format") {
				out.Format = strings.ReplaceAll(d.Format, "{device_id}", id)
				if d.Format == "" {
					bad("format", "must not be empty", fmt.Sprintf("remove it for the default %q", sinks.DefaultFormat))
				} else if err := sinks.CheckFormat(out.Format); err != nil {
					bad("format", err.Error(), "use {payload}, {topic}, {seq} and {received_at}, on one line")
				}
			}
			out.MaxSize = sinks.DefaultMaxSize
			if l.keys.has(k + ".max_size") {
				if n, oks := l.size(k+".max_size", d.MaxSize); !oks {
					ok = false
				} else if n < minSinkMaxSize {
					bad("max_size", fmt.Sprintf("%s is below the 1KiB minimum", d.MaxSize), fmt.Sprintf("remove it for the default %q", DefaultSinkMaxSize))
				} else {
					out.MaxSize = n
				}
			}
			out.Keep = sinks.DefaultKeep
			if l.keys.has(k + ".keep") {
				if d.Keep < 0 || d.Keep > maxSinkKeep {
					bad("keep", fmt.Sprintf("%d is not from 0 to %d", d.Keep, maxSinkKeep), fmt.Sprintf("remove it for the default %d; 0 keeps no old file", sinks.DefaultKeep))
				} else {
					out.Keep = int(d.Keep)
				}
			}
		case sinks.TypeExec:
			if len(d.Command) == 0 || d.Command[0] == "" {
				bad("command", "an exec sink needs a command", `set command = ["/usr/local/bin/handle", "--flag"]: the program and its arguments, no shell; the payload comes on stdin`)
			} else {
				out.Command = slices.Clone(d.Command)
				if strings.Contains(out.Command[0], "/") {
					out.Command[0] = l.resolve(out.Command[0])
				}
			}
			timeout()
		case sinks.TypeHTTP:
			out.URL = d.URL
			l.checkSinkURL(k+".url", d.URL, &ok)
			timeout()
		case sinks.TypeMQTT:
			if d.Broker == "" {
				bad("broker", "an mqtt sink needs a broker", `set broker = "tcp://127.0.0.1:1883" (a broker on this machine)`)
			} else if b, err := ParseBroker(d.Broker); err != nil {
				bad("broker", err.Error(), `write it as "tcp://127.0.0.1:1883" (this machine) or "tls://host:8883"`)
			} else if !b.TLS && !sinks.Loopback(b.Host) {
				tlsForm := Broker{TLS: true, Host: b.Host, Port: DefaultTLSPort}
				bad("broker", fmt.Sprintf("plaintext broker %q refused: it is not on this machine, and the payloads would cross the network unencrypted", b.URL()),
					fmt.Sprintf("use %s, or a broker on this machine: tcp://127.0.0.1:1883", tlsForm.URL()))
			} else {
				out.Broker = b.URL()
			}
			out.Topic = sinks.DefaultTopic
			if l.keys.has(k + ".topic") {
				out.Topic = strings.ReplaceAll(d.Topic, "{device_id}", id)
				if err := sinks.CheckTopic(out.Topic); err != nil {
					bad("topic", err.Error(), `use {topic} (the record's topic) and {seq}, e.g. "local/{topic}"`)
				}
			}
			timeout()
		}
		if ok {
			c.Sinks = append(c.Sinks, out)
		}
	}
}

// checkSinkURL checks an http sink's URL: http:// or https://, anywhere,
// with a warning when it leaves this machine. It never quotes the URL,
// which may carry a password.
func (l *loader) checkSinkURL(key, raw string, ok *bool) {
	if raw == "" {
		l.problem(key, "an http sink needs a url", `set url = "http://127.0.0.1:8080/notify" (a program on this machine)`)
		*ok = false
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		l.problem(key, "is not an absolute URL", `write it as "http://127.0.0.1:8080/path"`)
		*ok = false
	case u.Scheme != "http" && u.Scheme != "https":
		l.problem(key, fmt.Sprintf("has scheme %q", u.Scheme), "use http:// (this machine) or https://")
		*ok = false
	case sinks.Loopback(u.Hostname()):
	case u.Scheme == "http":
		l.warn(key, fmt.Sprintf("sends every payload to %s, off this machine and unencrypted", u.Hostname()),
			"use a program on this machine (http://127.0.0.1:…), or https://")
	default:
		l.warn(key, fmt.Sprintf("sends every payload to %s, off this machine", u.Hostname()),
			"sinks are meant for programs on this machine (http://127.0.0.1:…); make sure this one is meant")
	}
}
