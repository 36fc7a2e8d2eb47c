package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
)

// Error codes of a reply (docs/design.md#commands).
const (
	codeBadJSON       = "bad_json"
	codeBadCommand    = "bad_command"
	codeUnknownMethod = "unknown_method"
	codeUnknownRelay  = "unknown_relay"
	codeBadParams     = "bad_params"
	codeExpired       = "expired"
	codeInterlocked   = "interlocked"
	codeHardware      = "hardware"
)

// Methods.
const (
	methodRelaySet    = "relay.set"
	methodRelayToggle = "relay.toggle"
	methodLEDIdentify = "led.identify"
	methodStatus      = "agent.status"
	methodPing        = "agent.ping"
)

// maxIDLen bounds a command id: ids are kept in the store to execute each
// command at most once, so a hostile one must not be megabytes.
const maxIDLen = 128

// maxCommandBytes bounds a command. The largest real one (relay.set with a
// 128-byte id, a relay name, a duration and expires_at) is a few hundred
// bytes; anything larger is refused as it arrives, never held pending,
// so it cannot fill the store's pending space.
const maxCommandBytes = 64 << 10

// maxIdentify bounds led.identify's `for`: long enough to find a unit in a
// cabinet, short enough that a typo does not blink the LEDs for years. The
// control socket's `led identify` has the same bound.
const maxIdentify = control.MaxIdentify

// refuseOnArrival decides, as a message on the command topic is stored,
// whether it is a possible command that must not run whatever it says:
// one that came retained (a retained command would run again on every
// new subscription, MQTT 3.1.1 §3.3.1.3), one over max_message_size (only
// its first bytes were kept, oversize > 0), one larger than any command.
// nil means the usual way: pending if it may be a command, else plain.
func refuseOnArrival(payload []byte, retained bool, oversize int64) *cmdError {
	switch {
	case oversize > 0:
		// Only the head is here: refuse what looks like a command in it.
		if !startsLikeObject(payload) || !(bytes.Contains(payload, []byte("method")) || bytes.Contains(payload, []byte(`\u`))) {
			return nil
		}
		return &cmdError{Code: codeBadCommand, Message: fmt.Sprintf(
			"message of %d bytes is larger than max_message_size; only its first %d bytes were stored, and it was not executed",
			oversize, len(payload))}
	case !retained && len(payload) <= maxCommandBytes:
		return nil
	case !mayBeCommand(payload):
		return nil
	}
	_, err := parseCommand(payload)
	if errors.Is(err, errNotCommand) {
		return nil
	}
	var ce *cmdError
	if !retained && errors.As(err, &ce) && ce.Code == codeBadJSON {
		return ce // invalid JSON says so, whatever its size
	}
	id := commandID(payload)
	e := &cmdError{ID: id, HasID: id != "", Code: codeBadCommand}
	if retained {
		e.Message = "retained message: a retained command would run again on every new subscription, so it is stored and not executed; " +
			"publish commands without the retain flag, and clear this one (an empty retained message on the topic)"
	} else {
		e.Message = fmt.Sprintf("command of %d bytes; a command is at most %d bytes: stored, not executed", len(payload), maxCommandBytes)
	}
	return e
}

// commandID is the id of a possible command, "" when it has no usable one.
func commandID(payload []byte) string {
	var c struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(c.ID, &id) != nil || id == "" || len(id) > maxIDLen {
		return ""
	}
	return id
}

// command is a parsed command notification.
type command struct {
	ID        string
	Method    string
	Params    json.RawMessage
	ExpiresAt time.Time // zero = never
}

// cmdError is a command that cannot run, with the reply's error code. ID is
// the command's id when it had a usable one, so the reply can carry it.
type cmdError struct {
	_       noEq // never compared: no equality function in the binary
	ID      string
	HasID   bool
	Code    string
	Message string
}

func (e *cmdError) Error() string { return e.Code + ": " + e.Message }

// errNotCommand marks a plain notification: stored and logged only.
var errNotCommand = errors.New("not a command")

// startsLikeObject: a payload that starts with '{' (after white space) is a
// command or a malformed one (bad_json); anything else is a plain
// notification.
func startsLikeObject(p []byte) bool {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// mayBeCommand is the writer's test of whether a notification needs the
// dispatcher: it is stored pending if so. It must say true for every payload
// parseCommand does not call errNotCommand (the fuzz test holds it to that);
// a false true costs only a look by the dispatcher. Most fleets' plain
// notifications are JSON objects too, so "starts with '{'" alone sent every
// one through a dispatcher commit of its own, which capped a backlog drain
// at a third of the disk's rate. An object whose bytes hold neither "method"
// nor a \u escape (the only way to spell a key "method" otherwise) cannot
// have the key, and if it is valid JSON it is a plain notification.
func mayBeCommand(p []byte) bool {
	if !startsLikeObject(p) {
		return false
	}
	return bytes.Contains(p, []byte("method")) || bytes.Contains(p, []byte(`\u`)) || !validJSON(p)
}

// parseCommand reads a command. A JSON object without "method" is a plain
// notification (errNotCommand); a payload that starts with '{' but is not
// valid JSON is bad_json, since it was most likely meant as a command.
// Unknown top-level keys are refused (bad_command): a misspelt key must
// not silently change what a relay does.
func parseCommand(p []byte) (command, error) {
	if !startsLikeObject(p) {
		return command{}, errNotCommand
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(&raw); err != nil {
		return command{}, &cmdError{Code: codeBadJSON, Message: "payload starts with '{' but is not valid JSON: " + err.Error()}
	}
	// Only white space may follow the object. Not dec.More(): it reports
	// false before a '}' or ']', so `{…}}` would pass as valid JSON and run.
	if rest := bytes.TrimLeft(p[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return command{}, &cmdError{Code: codeBadJSON, Message: "payload has data after its JSON object"}
	}
	if _, ok := raw["method"]; !ok {
		return command{}, errNotCommand
	}
	var c command
	e := &cmdError{Code: codeBadCommand}
	if v, ok := raw["id"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &c.ID); err != nil {
			e.Message = "id must be a string"
			return c, e
		}
		if c.ID == "" || len(c.ID) > maxIDLen {
			e.Message = fmt.Sprintf("id must be a non-empty string of at most %d bytes", maxIDLen)
			return c, e
		}
		e.ID, e.HasID = c.ID, true
	} else {
		e.Message = "id is required: without one the command cannot be executed at most once"
		return c, e
	}
	if err := json.Unmarshal(raw["method"], &c.Method); err != nil || c.Method == "" {
		e.Message = "method must be a non-empty string"
		return c, e
	}
	for k := range raw {
		switch k {
		case "id", "method", "params", "expires_at":
		default:
			e.Message = fmt.Sprintf("unknown key %q (known: id, method, params, expires_at)", k)
			return c, e
		}
	}
	if v, ok := raw["expires_at"]; ok && !isNull(v) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			e.Message = "expires_at must be an RFC 3339 time string"
			return c, e
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			e.Message = "expires_at must be an RFC 3339 time, like 2026-11-27T10:00:00Z"
			return c, e
		}
		c.ExpiresAt = t
	}
	if v, ok := raw["params"]; ok && !isNull(v) {
		if bytes.TrimSpace(v)[0] != '{' {
			return c, &cmdError{ID: c.ID, HasID: true, Code: codeBadParams, Message: "params must be a JSON object"}
		}
		c.Params = v
	}
	return c, nil
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// decodeParams reads params strictly into dst: unknown keys are bad_params.
func decodeParams(c command, dst any) error {
	if len(c.Params) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(c.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return &cmdError{ID: c.ID, HasID: true, Code: codeBadParams, Message: paramsError(err, dst)}
	}
	return nil
}

// paramsError says what is wrong with params in the sender's terms, not in
// encoding/json's (which names Go types and struct fields).
func paramsError(err error, dst any) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a " + te.Type.Kind().String()
		switch te.Type.Kind() {
		case reflect.Bool:
			want = "true or false"
		case reflect.String:
			want = "a string"
		case reflect.Int, reflect.Int64, reflect.Float64:
			want = "a number"
		}
		return fmt.Sprintf("params.%s must be %s, not %s", te.Field, want, te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Sprintf("unknown param %s (known: %s)", clip(name), strings.Join(jsonKeys(dst), ", "))
	}
	return "params: " + err.Error()
}

// jsonKeys lists the JSON keys of the struct dst points to.
func jsonKeys(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return []string{"none"}
	}
	return keys
}

// duration is a Go duration string in params ("30s").
type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string like \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q (like \"30s\", \"5m\")", s)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q must be positive", s)
	}
	d.Duration = v
	return nil
}

// reply is the JSON a command gets back.
type reply struct {
	_      noEq        // never compared: no equality function in the binary
	ID     *string     `json:"id"` // null when the command had no usable id
	OK     bool        `json:"ok"`
	Result any         `json:"result,omitempty"`
	Error  *replyError `json:"error,omitempty"`
}

type replyError struct {
	_       noEq   // never compared: no equality function in the binary
	Code    string `json:"code"`
	Message string `json:"message"`
}

func okReply(id string, result any) []byte {
	b, _ := json.Marshal(reply{ID: &id, OK: true, Result: result})
	return b
}

// maxReplyMessage bounds a refusal's message: it quotes what the sender
// wrote (a method, a relay name, a key), and a 256 KiB method must not come
// back as a 256 KiB reply kept in the outbox.
const maxReplyMessage = 512

func errorReply(e *cmdError) []byte {
	msg := e.Message
	if len(msg) > maxReplyMessage {
		msg = fmt.Sprintf("%s… (%d bytes in all)", strings.ToValidUTF8(msg[:maxReplyMessage-32], ""), len(msg))
	}
	r := reply{Error: &replyError{Code: e.Code, Message: msg}}
	if e.HasID {
		r.ID = &e.ID
	}
	b, _ := json.Marshal(r)
	return b
}
