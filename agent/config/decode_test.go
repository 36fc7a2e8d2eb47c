package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Every unknown key and table is reported with its line, and the semantic
// checks still run after them.
func TestUnknownKeys(t *testing.T) {
	doc := lines(
		`device_id = "gw"`,
		`colour = "red"`, // 2
		`[mqtt]`,
		`broker = "tls://b"`,
		`pasword = "x"`, // 5
		`[mqttt]`,       // 6
		`a = 1`,
		`[[relay]]`,
		`name = "pump"`,
		`pin = "GPIO17"`,
		`[[relay]]`,
		`name = "fan"`,
		`pin = "GPIO18"`,
		`speed = 3`, // 14
		`[hw]`,
		`backend = "gpio"`, // 16
	)
	errs := parseErrs(t, doc)
	var got []string
	for _, p := range errs {
		got = append(got, fmt.Sprintf("%d %s: %s", p.Line, p.Key, p.Msg))
	}
	want := []string{
		"2 colour: unknown key",
		"5 mqtt.pasword: unknown key",
		"6 mqttt: unknown table",
		"14 relay[1].speed: unknown key",
		`16 hw.backend: unknown backend "gpio"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range errs {
		if p.Fix == "" {
			t.Errorf("%s: no fix", p)
		}
	}
}

func TestUnknownKeySuggestions(t *testing.T) {
	tests := []struct {
		name, doc, key, fix string
	}{
		{"misspelt", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `pasword_file = "p"`), "mqtt.pasword_file", `did you mean "password_file"?`},
		{"wrong section", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[hw]`, `allow_plaintext = true`), "hw.allow_plaintext", "mqtt.allow_plaintext"},
		{"top level key in a table", lines(`[mqtt]`, `device_id = "gw"`, `broker = "tls://b"`), "mqtt.device_id", "accepted as device_id"},
		{"plural table", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[relays]]`, `name = "x"`), "relays", "[[relay]]"},
		{"nothing close", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `zzz = 1`), "mqtt.zzz", "edge-agent.example.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := problemFor(t, parseErrs(t, tt.doc), tt.key)
			if !strings.Contains(p.Fix, tt.fix) {
				t.Errorf("fix = %q, want it to contain %q", p.Fix, tt.fix)
			}
		})
	}
}

// A value of the wrong type is one problem, naming the key and its line,
// saying what was expected (and no second one from checking its default).
func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		msg  string
		fix  string
	}{
		{"string for a bool", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `insecure_skip_verify = "false"`),
			"mqtt.insecure_skip_verify", 4, "expected true or false, found a string", "without quotes"},
		{"int for a string", lines(`device_id = 5219709`, `[mqtt]`, `broker = "tls://b"`),
			"device_id", 1, "expected a string, found an integer", `device_id = "…"`},
		{"int for a duration", lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `keepalive = 30`),
			"mqtt.keepalive", 4, "expected a duration string, found an integer", `"30s"`},
		{"int for a size", lines(`device_id = "gw"`, `[store]`, `max_db_size = 256`, `[mqtt]`, `broker = "tls://b"`),
			"store.max_db_size", 3, "expected a size string, found an integer", `"64MiB"`},
		{"string for an int", lines(`device_id = "gw"`, `[store]`, `retain_records = "100"`, `[mqtt]`, `broker = "tls://b"`),
			"store.retain_records", 3, "expected a whole number, found a string", "without quotes"},
		{"bool in the second relay", lines(`device_id = "gw"`, `mqtt.broker = "tls://b"`, `[[relay]]`, `name = "a"`, `pin = "GPIO5"`, `[[relay]]`, `name = "b"`, `active_low = "yes"`, `pin = "GPIO6"`),
			"relay[1].active_low", 8, "expected true or false", "active_low = true"},
		{"inside an inline table", lines(`device_id = "gw"`, `mqtt = { username = "u", broker = 8883 }`),
			"mqtt.broker", 2, "expected a string, found an integer", `broker = "…"`},
		{"dotted key", lines(`device_id = "gw"`, `mqtt.allow_plaintext = 1`, `mqtt.broker = "tls://b"`),
			"mqtt.allow_plaintext", 2, "expected true or false, found an integer", "allow_plaintext = true"},
		{"value for a table", lines(`device_id = "gw"`, `mqtt = "tls://b"`),
			"mqtt", 2, "expected a table, found a string", "[mqtt]"},
		{"array for a string", lines(`device_id = ["a", "b"]`, `mqtt = { broker = "tls://b" }`),
			"device_id", 1, "expected a string, found an array", `device_id = "…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrs(t, tt.doc)
			if len(errs) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(errs), errs.Error())
			}
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
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		fix  string
	}{
		{"unterminated string", lines(`device_id = "gw`), 1, "syntax"},
		{"missing value", lines(`device_id = "gw"`, `[mqtt]`, `broker =`), 3, "syntax"},
		{"unquoted string", lines(`device_id = "gw"`, `[hw]`, `backend = periph`), 3, "syntax"},
		{"duplicate key", lines(`device_id = "gw"`, `device_id = "gw2"`), 2, "appear once"},
		{"duplicate table", lines(`[mqtt]`, `broker = "tls://b"`, `[mqtt]`), 3, "appear once"},
		{"unclosed header", lines(`device_id = "gw"`, `[mqtt`), 2, "syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrs(t, tt.doc)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1:\n%s", len(errs), errs.Error())
			}
			if errs[0].Line != tt.line {
				t.Errorf("line = %d, want %d (%s)", errs[0].Line, tt.line, errs[0])
			}
			if !strings.Contains(errs[0].Fix, tt.fix) {
				t.Errorf("fix = %q, want it to contain %q", errs[0].Fix, tt.fix)
			}
			if strings.Contains(errs[0].Msg, "U+") {
				t.Errorf("msg %q quotes a character of the file", errs[0].Msg)
			}
		})
	}
}

func TestSingleBracketRelay(t *testing.T) {
	errs := parseErrs(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[relay]`, `name = "pump"`, `pin = "GPIO17"`))
	p := problemFor(t, errs, "relay")
	if p.Line != 4 || !strings.Contains(p.Fix, "[[relay]]") {
		t.Errorf("got %s, want line 4 and a fix naming [[relay]]", p)
	}
}

// A type error does not hide the rest: every mistake in the file is listed
// at once, each with its line, and keys after the bad value still decode.
func TestTypeErrorAmongOthers(t *testing.T) {
	doc := lines(
		`device_id = "gw"`,
		`[mqtt]`,
		`broker = "tcp://b:1883"`,        // 3: plaintext refused
		`insecure_skip_verify = "false"`, // 4: type error
		`brokr = "x"`,                    // 5: unknown key
		`keepalive = 30`,                 // 6: second type error
		`notify_topic = "/a/#/b"`,        // 7: bad value
		`[hw]`,
		`backend = "sim"`,
		`[leds]`,
		`status = { pin = 1 }`, // 11: table for a string
		`[[relay]]`,
		`name = "pump"`,
		`pin = "GPIO99"`,  // 14: not on the sim board
		`power_on = true`, // 15: type error in an array of tables
		`[store]`,
		`retain_bytes = "lots"`, // 17: bad size
	)
	errs := parseErrs(t, doc)
	var got []string
	for _, p := range errs {
		got = append(got, fmt.Sprintf("%d %s", p.Line, p.Key))
		if p.Path != "config.toml" || p.Msg == "" || p.Fix == "" {
			t.Errorf("incomplete problem: %s", p)
		}
	}
	want := []string{
		"5 mqtt.brokr",
		"3 mqtt.broker",
		"4 mqtt.insecure_skip_verify",
		"6 mqtt.keepalive",
		"7 mqtt.notify_topic",
		"11 leds.status",
		"14 relay[0].pin",
		"15 relay[0].power_on",
		"17 store.retain_bytes",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s\nin full:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), errs.Error())
	}
}

// A wrong type inside an inline table, between other keys: the keys
// around it still count.
func TestTypeErrorInInlineTable(t *testing.T) {
	errs := parseErrs(t, lines(
		`device_id = "gw"`,
		`mqtt = { username = "u", allow_plaintext = "yes", broker = "tcp://b", keepalive = 5 }`,
	))
	var got []string
	for _, p := range errs {
		got = append(got, fmt.Sprintf("%d %s: %s", p.Line, p.Key, p.Msg))
	}
	// broker decoded (it is checked: plaintext without allow_plaintext).
	want := []string{
		"2 mqtt.allow_plaintext: expected true or false, found a string",
		`2 mqtt.broker: plaintext broker "tcp://b:1883" refused`,
		"2 mqtt.keepalive: expected a duration string, found an integer",
	}
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
