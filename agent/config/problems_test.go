package config

import (
	"fmt"
	"strings"
	"testing"
)

// Each semantic problem names its key and line, says what is wrong and
// how to fix it, and comes as one line of Errors.Error().
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		msg  string // substring of Msg
		fix  string // substring of Fix
	}{
		{
			name: "missing device_id",
			doc:  lines(`[mqtt]`, `broker = "tls://b"`),
			key:  "device_id", line: 0, msg: "is required", fix: "device_id = ",
		},
		{
			name: "empty device_id",
			doc:  lines(`device_id = ""`, `[mqtt]`, `broker = "tls://b"`),
			key:  "device_id", line: 1, msg: "is required", fix: "device_id = ",
		},
		{
			name: "device_id with a topic separator",
			doc:  lines(`device_id = "a/b"`, `[mqtt]`, `broker = "tls://b"`),
			key:  "device_id", line: 1, msg: `"/"`, fix: "id",
		},
		{
			name: "empty data_dir",
			doc:  lines(`device_id = "gw"`, `data_dir = ""`, `[mqtt]`, `broker = "tls://b"`),
			key:  "data_dir", line: 2, msg: "empty", fix: DefaultDataDir,
		},
		{
			name: "missing broker points at [mqtt]",
			doc:  lines(`device_id = "gw"`, ``, `[mqtt]`, `username = "u"`),
			key:  "mqtt.broker", line: 3, msg: "is required", fix: "tls://",
		},
		{
			name: "missing broker and no [mqtt]",
			doc:  lines(`device_id = "gw"`),
			key:  "mqtt.broker", line: 0, msg: "is required", fix: "[bootstrap]",
		},
		{
			name: "bad broker port",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b:99999"`),
			key:  "mqtt.broker", line: 3, msg: "1 to 65535", fix: "tls://host:port",
		},
		{
			name: "broker with a path",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b:8883/mqtt"`),
			key:  "mqtt.broker", line: 3, msg: "path", fix: "tls://host:port",
		},
		{
			name: "plaintext broker",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `username = "u"`, `broker = "tcp://b.example:1883"`),
			key:  "mqtt.broker", line: 4, msg: `plaintext broker "tcp://b.example:1883" refused`,
			fix: "use tls://b.example:8883 or set mqtt.allow_plaintext = true",
		},
		{
			name: "password and password_file",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `password = "x"`, `password_file = "p"`),
			key:  "mqtt.password", line: 4, msg: "both set", fix: "keep only",
		},
		{
			name: "cert_file without key_file",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `cert_file = "c.pem"`),
			key:  "mqtt.cert_file", line: 4, msg: "key_file is not", fix: "set both",
		},
		{
			name: "key_file without cert_file",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `key_file = "c.key"`),
			key:  "mqtt.key_file", line: 4, msg: "cert_file is not", fix: "set both",
		},
		{
			name: "keepalive too short",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `keepalive = "500ms"`),
			key:  "mqtt.keepalive", line: 4, msg: "shorter than 1s", fix: `"1s"`,
		},
		{
			name: "keepalive too long for MQTT",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `keepalive = "19h"`),
			key:  "mqtt.keepalive", line: 4, msg: "65535s", fix: "at most",
		},
		{
			name: "keepalive not a duration",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `keepalive = "30"`),
			key:  "mqtt.keepalive", line: 4, msg: `"30" is not a duration`, fix: `"30s"`,
		},
		{
			name: "max_message_size below 1KiB",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `max_message_size = "1000B"`),
			key:  "mqtt.max_message_size", line: 4, msg: "below the 1KiB minimum", fix: `"1KiB"`,
		},
		{
			name: "max_message_size above 256MiB",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `max_message_size = "257MiB"`),
			key:  "mqtt.max_message_size", line: 4, msg: "above the 256MiB maximum", fix: `"256MiB"`,
		},
		{
			name: "max_message_size without a unit",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `max_message_size = "4096"`),
			key:  "mqtt.max_message_size", line: 4, msg: "has no unit", fix: `"64MiB"`,
		},
		{
			name: "pin the sim board does not have",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "sim"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO99"`),
			key:  "relay[0].pin", line: 8, msg: `"GPIO99"`, fix: "sim board",
		},
		{
			name: "LED pin the sim board does not have",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "sim"`, `[leds]`, `status = "gpiochip1:3"`),
			key:  "leds.status", line: 7, msg: "GPIO0..GPIO27", fix: "sim board",
		},
		{
			name: "empty notify_topic",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `notify_topic = ""`),
			key:  "mqtt.notify_topic", line: 4, msg: "must not be empty", fix: DefaultNotifyTopic,
		},
		{
			name: "notify_topic with a misplaced wildcard",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `notify_topic = "/a/#/b"`),
			key:  "mqtt.notify_topic", line: 4, msg: `"#"`, fix: "topic",
		},
		{
			name: "reply_topic with a wildcard",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `reply_topic = "/a/+/reply"`),
			key:  "mqtt.reply_topic", line: 4, msg: "wildcards", fix: `""`,
		},
		{
			name: "misspelt placeholder",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `status_topic = "/sys/{deviceid}/status"`),
			key:  "mqtt.status_topic", line: 4, msg: `"{deviceid}"`, fix: "{device_id}",
		},
		{
			name: "unknown hw backend",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "gpio"`),
			key:  "hw.backend", line: 5, msg: `"gpio"`, fix: `"periph"`,
		},
		{
			name: "relay without a name",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `pin = "GPIO17"`),
			key:  "relay[0].name", line: 4, msg: "needs a name", fix: "name = ",
		},
		{
			name: "relay with an empty name",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = ""`, `pin = "GPIO17"`),
			key:  "relay[0].name", line: 5, msg: "needs a name", fix: "name = ",
		},
		{
			name: "duplicate relay name",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[relay]]`, `name = "pump"`, `pin = "GPIO18"`),
			key: "relay[1].name", line: 8, msg: `"pump" is already used by relay[0].name (line 5)`, fix: "own name",
		},
		{
			name: "relay without a pin",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`),
			key:  "relay[0].pin", line: 4, msg: "needs a pin", fix: "pin = ",
		},
		{
			name: "two relays on one pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[relay]]`, `name = "fan"`, `pin = "gpio17"`),
			key: "relay[1].pin", line: 9, msg: "already used by relay[0].pin (line 6)", fix: "own pin",
		},
		{
			name: "relay on an LED's pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[leds]`, `status = "GPIO27"`,
				`[[relay]]`, `name = "pump"`, `pin = "GPIO27"`),
			key: "relay[0].pin", line: 8, msg: "already used by leds.status (line 5)", fix: "own pin",
		},
		{
			name: "two LEDs on one pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[leds]`, `status = "GPIO27"`, `fault = "GPIO27"`),
			key: "leds.fault", line: 6, msg: "already used by leds.status", fix: "own pin",
		},
		{
			name: "malformed chip pin",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "gpiochip0:x"`),
			key:  "relay[0].pin", line: 6, msg: "gpiochipN:OFFSET", fix: "GPIO17",
		},
		{
			name: "bad power_on",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `power_on = "maybe"`),
			key:  "relay[0].power_on", line: 7, msg: `"maybe"`, fix: `"restore"`,
		},
		{
			name: "empty power_on",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `power_on = ""`),
			key:  "relay[0].power_on", line: 7, msg: `unknown state ""`, fix: `"off"`,
		},
		{
			name: "negative max_on",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `max_on = "-1s"`),
			key:  "relay[0].max_on", line: 7, msg: "negative", fix: `"0s"`,
		},
		{
			name: "max_on not a duration",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `max_on = "10"`),
			key:  "relay[0].max_on", line: 7, msg: "not a duration", fix: `"30s"`,
		},
		{
			name: "interlocked relays both on at power-up",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[relay]]`, `name = "up"`, `pin = "GPIO5"`, `power_on = "on"`, `interlock = "motor"`,
				`[[relay]]`, `name = "down"`, `pin = "GPIO6"`, `power_on = "on"`, `interlock = "motor"`),
			key: "relay[1].power_on", line: 12, msg: `"up" and "down" share interlock group "motor"`, fix: `power_on = "off"`,
		},
		{
			name: "bootstrap without load_balance_url",
			doc: lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "https://a.example/login?appSecret=x"`,
				`username = "u"`, `password_file = "p"`),
			key: "bootstrap.load_balance_url", line: 2, msg: "partly filled", fix: "remove the [bootstrap] section",
		},
		{
			name: "bootstrap without login_url",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[bootstrap]`,
				`load_balance_url = "https://api.example/lb"`, `username = "u"`, `password_file = "p"`),
			key: "bootstrap.login_url", line: 4, msg: "partly filled", fix: "login_url",
		},
		{
			name: "bootstrap without a password",
			doc: lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "https://a.example/login"`,
				`load_balance_url = "https://api.example/lb"`, `username = "u"`),
			key: "bootstrap.password_file", line: 2, msg: "partly filled", fix: "password_file",
		},
		{
			name: "bootstrap with only a ca_file",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[bootstrap]`, `ca_file = "ca.pem"`),
			key:  "bootstrap.username", line: 4, msg: "partly filled", fix: "username",
		},
		{
			name: "bootstrap over plain http",
			doc: lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "http://a.example/login"`,
				`load_balance_url = "https://api.example/lb"`, `username = "u"`, `password_file = "p"`),
			key: "bootstrap.login_url", line: 3, msg: "plain http", fix: "https://",
		},
		{
			name: "bootstrap URL that is not absolute",
			doc: lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "https://a.example/login"`,
				`load_balance_url = "api.example/lb"`, `username = "u"`, `password_file = "p"`),
			key: "bootstrap.load_balance_url", line: 4, msg: "not an absolute URL", fix: "https://",
		},
		{
			name: "bootstrap password and password_file",
			doc: lines(`device_id = "gw"`, `[bootstrap]`, `login_url = "https://a.example/login"`,
				`load_balance_url = "https://api.example/lb"`, `username = "u"`, `password = "x"`, `password_file = "p"`),
			key: "bootstrap.password", line: 6, msg: "both set", fix: "keep only",
		},
		{
			name: "rule for a relay that does not exist",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[rule]]`, `name = "r"`, `action = "relay.set"`, `relay = "pumpp"`, `on = "params.PowerSwitch"`),
			key: "rule[0].relay", line: 10, msg: `no relay named "pumpp"`, fix: "[[relay]]",
		},
		{
			name: "rule with an empty path segment",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[rule]]`, `name = "r"`, `action = "relay.set"`, `relay = "pump"`, `on = "params..PowerSwitch"`),
			key: "rule[0].on", line: 11, msg: "empty segment", fix: "example config",
		},
		{
			name: "rule with a bad filter",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[rule]]`, `name = "r"`, `topic = "a/#/b"`, `action = "relay.toggle"`, `relay = "pump"`),
			key: "rule[0].topic", line: 9, msg: "'#'", fix: "example config",
		},
		{
			name: "rules with the same name",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[rule]]`, `name = "r"`, `action = "relay.toggle"`, `relay = "pump"`,
				`[[rule]]`, `name = "r"`, `action = "relay.toggle"`, `relay = "pump"`),
			key: "rule[1].name", line: 12, msg: "already used", fix: "own name",
		},
		{
			name: "sink without a name",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `type = "file"`, `path = "p"`),
			key:  "sink[0].name", line: 4, msg: "needs a name", fix: "name = ",
		},
		{
			name: "sinks with the same name",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "p"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "q"`),
			key:  "sink[1].name", line: 9, msg: "already used by sink[0].name (line 5)", fix: "own name",
		},
		{
			name: "sink of an unknown type",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "syslog"`),
			key:  "sink[0].type", line: 6, msg: "unknown sink type \"syslog\"", fix: "\"file\"",
		},
		{
			name: "sink without a type",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`),
			key:  "sink[0].type", line: 4, msg: "needs a type", fix: "\"mqtt\"",
		},
		{
			name: "file sink without a path",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`),
			key:  "sink[0].path", line: 4, msg: "needs a path", fix: "path = ",
		},
		{
			name: "file sinks on one file",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "/x/p"`, `[[sink]]`, `name = "b"`, `type = "file"`, `path = "/x/p"`),
			key:  "sink[1].path", line: 11, msg: "already written by sink[0].path (line 7)", fix: "its own file",
		},
		{
			name: "sink with a bad filter",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `topics = ["a/#/b"]`, `path = "p"`),
			key:  "sink[0].topics", line: 7, msg: "'#'", fix: "MQTT filters",
		},
		{
			name: "sink with no filter",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `topics = []`, `path = "p"`),
			key:  "sink[0].topics", line: 7, msg: "names no filter", fix: "[\"#\"]",
		},
		{
			name: "sink topics not an array",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `topics = "#"`, `path = "p"`),
			key:  "sink[0].topics", line: 7, msg: "expected an array of strings, found a string", fix: "topics = [",
		},
		{
			name: "file sink with an unknown placeholder",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "p"`, `format = "{payloud}"`),
			key:  "sink[0].format", line: 8, msg: "unknown placeholder \"{payloud}\"", fix: "{payload}",
		},
		{
			name: "file sink format on two lines",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "p"`, `format = "{payload}\n"`),
			key:  "sink[0].format", line: 8, msg: "one line", fix: "one line",
		},
		{
			name: "file sink max_size too small",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "p"`, `max_size = "100B"`),
			key:  "sink[0].max_size", line: 8, msg: "1KiB minimum", fix: "10MiB",
		},
		{
			name: "file sink keep negative",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "file"`, `path = "p"`, `keep = -1`),
			key:  "sink[0].keep", line: 8, msg: "not from 0 to 100", fix: "0 keeps no old file",
		},
		{
			name: "exec sink without a command",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "exec"`, `command = []`),
			key:  "sink[0].command", line: 7, msg: "needs a command", fix: "command = [",
		},
		{
			name: "exec sink with a bad timeout",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "exec"`, `command = ["x"]`, `timeout = "soon"`),
			key:  "sink[0].timeout", line: 8, msg: "not a duration", fix: "30s",
		},
		{
			name: "exec sink with a zero timeout",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "exec"`, `command = ["x"]`, `timeout = "0s"`),
			key:  "sink[0].timeout", line: 8, msg: "not positive", fix: "30s",
		},
		{
			name: "http sink without a url",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "http"`),
			key:  "sink[0].url", line: 4, msg: "needs a url", fix: "http://127.0.0.1",
		},
		{
			name: "http sink of another scheme",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "http"`, `url = "ftp://h/x"`),
			key:  "sink[0].url", line: 7, msg: "scheme \"ftp\"", fix: "https://",
		},
		{
			name: "mqtt sink without a broker",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "mqtt"`),
			key:  "sink[0].broker", line: 4, msg: "needs a broker", fix: "tcp://127.0.0.1:1883",
		},
		{
			name: "mqtt sink plaintext off this machine",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "mqtt"`, `broker = "tcp://10.0.0.5:1883"`),
			key:  "sink[0].broker", line: 7, msg: "plaintext broker \"tcp://10.0.0.5:1883\" refused: it is not on this machine", fix: "use tls://10.0.0.5:8883, or a broker on this machine: tcp://127.0.0.1:1883",
		},
		{
			name: "mqtt sink with a bad broker",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "mqtt"`, `broker = "udp://127.0.0.1"`),
			key:  "sink[0].broker", line: 7, msg: "scheme \"udp\"", fix: "tcp://127.0.0.1:1883",
		},
		{
			name: "mqtt sink topic with a wildcard",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "a"`, `type = "mqtt"`, `broker = "tcp://127.0.0.1:1883"`, `topic = "out/#"`),
			key:  "sink[0].topic", line: 8, msg: "wildcards", fix: "{topic}",
		},
		{
			name: "sink written [sink]",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[sink]`, `name = "a"`, `type = "file"`, `path = "p"`),
			key:  "sink", line: 4, msg: "is written [sink]", fix: "[[sink]]",
		},
		{
			name: "input without a name",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `pin = "GPIO5"`),
			key:  "input[0].name", line: 4, msg: "needs a name", fix: "name = ",
		},
		{
			name: "duplicate input name",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[input]]`, `name = "door"`, `pin = "GPIO5"`,
				`[[input]]`, `name = "door"`, `pin = "GPIO6"`),
			key: "input[1].name", line: 8, msg: `"door" is already used by input[0].name (line 5)`, fix: "own name",
		},
		{
			name: "input without a pin",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`),
			key:  "input[0].pin", line: 4, msg: "needs a pin", fix: "pin = ",
		},
		{
			name: "input on a relay's pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[input]]`, `name = "door"`, `pin = "gpio17"`),
			key: "input[0].pin", line: 9, msg: `pin "gpio17" is already used by relay[0].pin (line 6)`, fix: "each relay, input and LED its own pin",
		},
		{
			name: "input on an LED's pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[leds]`, `fault = "GPIO4"`,
				`[[input]]`, `name = "door"`, `pin = "GPIO4"`),
			key: "input[0].pin", line: 8, msg: "already used by leds.fault (line 5)", fix: "own pin",
		},
		{
			name: "two inputs on one pin",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[[input]]`, `name = "door"`, `pin = "GPIO5"`,
				`[[input]]`, `name = "button"`, `pin = "GPIO5"`),
			key: "input[1].pin", line: 9, msg: "already used by input[0].pin (line 6)", fix: "own pin",
		},
		{
			name: "input pin the sim board does not have",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `backend = "sim"`, `[[input]]`, `name = "door"`, `pin = "GPIO28"`),
			key:  "input[0].pin", line: 8, msg: `"GPIO28"`, fix: "sim board",
		},
		{
			name: "input pin of a bad form",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "gpiochip0:"`),
			key:  "input[0].pin", line: 6, msg: "gpiochipN:OFFSET", fix: "GPIO17",
		},
		{
			name: "unknown pull",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "GPIO5"`, `pull = "high"`),
			key:  "input[0].pull", line: 7, msg: `unknown pull "high"`, fix: `"up"`,
		},
		{
			name: "empty pull",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "GPIO5"`, `pull = ""`),
			key:  "input[0].pull", line: 7, msg: `unknown pull ""`, fix: `"none"`,
		},
		{
			name: "negative debounce",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "GPIO5"`, `debounce = "-1ms"`),
			key:  "input[0].debounce", line: 7, msg: "-1ms is negative", fix: `"0s" for none`,
		},
		{
			name: "debounce over 10s",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "GPIO5"`, `debounce = "10001ms"`),
			key:  "input[0].debounce", line: 7, msg: "longer than 10s", fix: `at most "10s"`,
		},
		{
			name: "debounce not a duration",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[input]]`, `name = "door"`, `pin = "GPIO5"`, `debounce = "20"`),
			key:  "input[0].debounce", line: 7, msg: `"20" is not a duration`, fix: `"30s"`,
		},
		{
			name: "input toggles a relay that does not exist",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`,
				`[[input]]`, `name = "button"`, `pin = "GPIO5"`, `toggles = "pumpp"`),
			key: "input[0].toggles", line: 10, msg: `no relay named "pumpp"`, fix: "[[relay]]",
		},
		{
			name: "relay feedback from an input that does not exist",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "dor"`,
				`[[input]]`, `name = "door"`, `pin = "GPIO5"`),
			key: "relay[0].feedback", line: 7, msg: `no input named "dor"`, fix: "[[input]]",
		},
		{
			name: "relay feedback without any input",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "door"`),
			key:  "relay[0].feedback", line: 7, msg: `no input named "door"`, fix: "add one",
		},
		{
			name: "feedback input that toggles: a loop",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "running"`,
				`[[input]]`, `name = "running"`, `pin = "GPIO5"`, `toggles = "pump"`),
			key: "input[0].toggles", line: 11,
			msg: `input "running" is the feedback of relay "pump" (relay[0].feedback, line 7) and may not also toggle relay "pump": that is a loop`,
			fix: "remove toggles",
		},
		{
			name: "feedback input that toggles another relay",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "running"`,
				`[[relay]]`, `name = "fan"`, `pin = "GPIO18"`,
				`[[input]]`, `name = "running"`, `pin = "GPIO5"`, `toggles = "fan"`),
			key: "input[0].toggles", line: 14, msg: `may not also toggle relay "fan"`, fix: "another input",
		},
		{
			name: "one input the feedback of two relays",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "up"`, `pin = "GPIO17"`, `feedback = "moving"`,
				`[[relay]]`, `name = "down"`, `pin = "GPIO18"`, `feedback = "moving"`,
				`[[input]]`, `name = "moving"`, `pin = "GPIO5"`),
			key: "relay[1].feedback", line: 11, msg: `input "moving" is already the feedback of relay "up" (relay[0].feedback, line 7)`,
			fix: "its own feedback input",
		},
		{
			name: "zero feedback_timeout",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "running"`, `feedback_timeout = "0s"`,
				`[[input]]`, `name = "running"`, `pin = "GPIO5"`),
			key: "relay[0].feedback_timeout", line: 8, msg: "0s is not positive", fix: `"500ms"`,
		},
		{
			name: "negative feedback_timeout",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "running"`, `feedback_timeout = "-500ms"`,
				`[[input]]`, `name = "running"`, `pin = "GPIO5"`),
			key: "relay[0].feedback_timeout", line: 8, msg: "-500ms is not positive", fix: "positive duration",
		},
		{
			name: "feedback_timeout over a minute",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback = "running"`, `feedback_timeout = "61s"`,
				`[[input]]`, `name = "running"`, `pin = "GPIO5"`),
			key: "relay[0].feedback_timeout", line: 8, msg: "longer than a minute", fix: `at most "1m"`,
		},
		{
			name: "feedback_timeout not a duration",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `feedback_timeout = "500"`),
			key:  "relay[0].feedback_timeout", line: 7, msg: `"500" is not a duration`, fix: `"30s"`,
		},
		{
			name: "unknown offline policy",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `offline = "on"`),
			key:  "relay[0].offline", line: 7, msg: `unknown policy "on"`, fix: `"keep"`,
		},
		{
			name: "empty offline policy",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `offline = ""`),
			key:  "relay[0].offline", line: 7, msg: `unknown policy ""`, fix: `"off"`,
		},
		{
			name: "offline_after under a second",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `offline = "off"`, `offline_after = "999ms"`),
			key:  "relay[0].offline_after", line: 8, msg: "999ms is shorter than 1s", fix: `"5m"`,
		},
		{
			name: "offline_after not a duration",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relay]]`, `name = "pump"`, `pin = "GPIO17"`, `offline = "off"`, `offline_after = "5"`),
			key:  "relay[0].offline_after", line: 8, msg: `"5" is not a duration`, fix: `"5m"`,
		},
		{
			name: "input written [input]",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[input]`, `name = "door"`, `pin = "GPIO5"`),
			key:  "input", line: 4, msg: "is written [input]", fix: "[[input]]",
		},
		{
			name: "event_topic with a wildcard",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `event_topic = "/sys/{device_id}/+/event"`),
			key:  "mqtt.event_topic", line: 4, msg: "wildcards", fix: `""`,
		},
		{
			name: "event_topic with a misspelt placeholder",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `event_topic = "/sys/{device}/thing/event"`),
			key:  "mqtt.event_topic", line: 4, msg: `"{device}"`, fix: "{device_id}",
		},
		{
			name: "retain_bytes not below half of max_db_size",
			doc: lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
				`[store]`, `retain_bytes = "128MiB"`, `max_db_size = "256MiB"`),
			key: "store.retain_bytes", line: 5, msg: "half of max_db_size", fix: "bbolt",
		},
		{
			name: "retain_bytes without a unit",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`, `retain_bytes = "64"`),
			key:  "store.retain_bytes", line: 5, msg: "no unit", fix: "MiB",
		},
		{
			name: "max_db_size with an unknown unit",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`, `max_db_size = "1TB"`),
			key:  "store.max_db_size", line: 5, msg: `unknown unit "TB"`, fix: "GiB",
		},
		{
			name: "max_db_size too small",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`, `retain_bytes = "1KiB"`, `max_db_size = "64KiB"`),
			key:  "store.max_db_size", line: 6, msg: "1MiB minimum", fix: DefaultMaxDBSize,
		},
		{
			name: "negative retain_records",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`, `retain_records = -1`),
			key:  "store.retain_records", line: 5, msg: "not a positive number", fix: "100000",
		},
		{
			name: "zero retain_records",
			doc:  lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`, `retain_records = 0`),
			key:  "store.retain_records", line: 5, msg: "not a positive number", fix: "100000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrs(t, tt.doc)
			p := problemFor(t, errs, tt.key)
			if p.Line != tt.line {
				t.Errorf("line = %d, want %d (%s)", p.Line, tt.line, p)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("msg = %q, want it to contain %q", p.Msg, tt.msg)
			}
			if p.Fix == "" || !strings.Contains(p.Fix, tt.fix) {
				t.Errorf("fix = %q, want it to contain %q", p.Fix, tt.fix)
			}
			if p.Path != "config.toml" {
				t.Errorf("path = %q, want config.toml", p.Path)
			}
			wantPrefix := "config.toml: " + tt.key + ": "
			if tt.line > 0 {
				wantPrefix = fmt.Sprintf("config.toml:%d: %s: ", tt.line, tt.key)
			}
			if !strings.Contains(errs.Error(), wantPrefix+p.Msg+"; "+p.Fix) {
				t.Errorf("Error() =\n%s\nwant a line %q", errs.Error(), wantPrefix+p.Msg+"; "+p.Fix)
			}
		})
	}
}

// All semantic problems come back together, in line order.
func TestProblemsAllReported(t *testing.T) {
	doc := lines(
		`data_dir = ""`, // 1
		`[mqtt]`,        // 2
		`broker = "tcp://b"`,
		`keepalive = "0s"`,
		`[hw]`,
		`backend = "gpio"`, // 6
		`[[relay]]`,
		`name = "pump"`,
		`pin = ""`, // 9
	)
	errs := parseErrs(t, doc)
	var got []string
	for _, p := range errs {
		got = append(got, fmt.Sprintf("%d %s", p.Line, p.Key))
	}
	want := []string{"0 device_id", "1 data_dir", "3 mqtt.broker", "4 mqtt.keepalive", "6 hw.backend", "9 relay[0].pin"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("problems = %v, want %v\n%s", got, want, errs.Error())
	}
	if n := strings.Count(errs.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "c.toml", Line: 3, Key: "mqtt.broker", Msg: "bad", Fix: "fix it"}, "c.toml:3: mqtt.broker: bad; fix it"},
		{Problem{Path: "c.toml", Key: "device_id", Msg: "is required", Fix: "set it"}, "c.toml: device_id: is required; set it"},
		{Problem{Line: 3, Key: "k", Msg: "m"}, "line 3: k: m"},
		{Problem{Path: "c.toml", Line: 1, Msg: "syntax"}, "c.toml:1: syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
