package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseCommandRefusesTrailingBrackets: json.Decoder.More reports false
// before a '}' or ']', so these once parsed as valid commands and ran (the
// fault suite's hostile payloads found it). They are not JSON: bad_json.
func TestParseCommandRefusesTrailingBrackets(t *testing.T) {
	for _, p := range []string{
		`{"id":"c1","method":"agent.ping"}}`,
		`{"id":"c1","method":"agent.ping"}]`,
		`{"id":"c1","method":"relay.toggle","params":{"relay":"lamp"}} }`,
		`{}}`,
		"{\"id\":\"c1\",\"method\":\"agent.ping\"}\x00",
	} {
		_, err := parseCommand([]byte(p))
		var ce *cmdError
		if !errors.As(err, &ce) || ce.Code != codeBadJSON || ce.HasID {
			t.Errorf("parseCommand(%q) = %v, want bad_json with id null", p, err)
		}
	}
	// White space after the object is fine.
	if c, err := parseCommand([]byte("{\"id\":\"c1\",\"method\":\"agent.ping\"} \r\n\t")); err != nil || c.ID != "c1" {
		t.Errorf("trailing white space: %+v, %v", c, err)
	}
}

// TestErrorReplyBoundsMessage: a refusal quoting a huge method, relay or
// key comes back short (the fault suite's 256 KiB method came back whole).
func TestErrorReplyBoundsMessage(t *testing.T) {
	huge := strings.Repeat("é", 128<<10)
	for _, msg := range []string{
		"unknown method \"" + huge + "\"",
		"no relay named \"" + huge + "\"",
		"params: json: unknown field \"" + huge + "\"",
	} {
		b := errorReply(&cmdError{ID: "c1", HasID: true, Code: codeUnknownMethod, Message: msg})
		if len(b) > 1024 {
			t.Fatalf("reply of %d bytes", len(b))
		}
		var r struct{ Error struct{ Message string } }
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(r.Error.Message) || !strings.HasPrefix(r.Error.Message, msg[:100]) || !strings.HasSuffix(r.Error.Message, "bytes in all)") {
			t.Fatalf("message %q", r.Error.Message)
		}
	}
	short := `no relay named "pumpp"`
	if b := errorReply(&cmdError{Code: codeUnknownRelay, Message: short}); !strings.Contains(string(b), `"no relay named \"pumpp\""`) {
		t.Fatalf("a short message changed: %s", b)
	}
}

var replyCodes = map[string]bool{codeBadJSON: true, codeBadCommand: true, codeUnknownMethod: true, codeUnknownRelay: true,
	codeBadParams: true, codeExpired: true, codeInterlocked: true, codeHardware: true}

// FuzzParseCommand: no payload makes the parser panic; what it accepts is
// valid JSON with a usable id and method; what it calls plain is a JSON
// object without "method" (or not a command at all); everything else is a
// refusal with a known code whose reply is well-formed JSON with ok false.
//
//	go test -run '^$' -fuzz '^FuzzParseCommand$' -fuzztime 30s ./agent/
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":"c-1042","method":"relay.set","params":{"relay":"pump","on":true,"for":"30s"},"expires_at":"2026-11-27T10:00:00Z"}`,
		`{"id":"c-3","method":"relay.toggle","params":{"relay":"lamp"}}`,
		`{"id":"c-4","method":"led.identify","params":{"for":"2m"}}`,
		`{"id":"c-5","method":"agent.status"}`,
		`{"id":"c-6","method":"agent.ping","params":null,"expires_at":null}`,
		`{"id":"c1","method":"agent.ping"}}`,
		`{}}`,
		`{"event":"plain"}`,
		`{"id":null,"method":"agent.ping"}`,
		`{"id":1e400,"method":"agent.ping"}`,
		`{"id":"` + strings.Repeat("x", 129) + `","method":"agent.ping"}`,
		"{\"id\":\"\xff\xfe\",\"method\":\"agent.ping\"}",
		`{"id":"\ud800","method":"agent.ping"}`,
		`{"id":"a","method":"relay.set","params":{"relay":"lamp","on":1e999,"for":"-1s"}}`,
		`{"id":"a","method":"relay.set","params":{"relay":"lamp","on":true,"om":true}}`,
		`{"id":"a","method":"agent.ping","params":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64) + `}`,
		`{"id":"a","method":"agent.ping","params":[1]}`,
		" \n{\"id\":\"ws\",\"method\":\"agent.ping\"} ",
		"{\xff}",
		"[]", "", "null",
		`{"temp":21.5,"unit":"C"}`, `{"\u006dethod":"agent.ping","id":"u"}`, `{"METHOD":"agent.ping","id":"c"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := parseCommand(p)
		// The writer stores pending only what mayBeCommand says: a command
		// or a reply it missed would be lost.
		if !errors.Is(err, errNotCommand) && !mayBeCommand(p) {
			t.Fatalf("%q parses as %+v, %v, but mayBeCommand says it is plain", p, c, err)
		}
		if !startsLikeObject(p) {
			if !errors.Is(err, errNotCommand) {
				t.Fatalf("%q does not start with '{' but parsed as %+v, %v", p, c, err)
			}
			return
		}
		var ce *cmdError
		switch {
		case err == nil:
			if !json.Valid(p) {
				t.Fatalf("accepted invalid JSON %q", p)
			}
			if c.ID == "" || len(c.ID) > maxIDLen || !utf8.ValidString(c.ID) {
				t.Fatalf("accepted id %q", c.ID)
			}
			if c.Method == "" {
				t.Fatal("accepted an empty method")
			}
			if c.Params != nil && bytes.TrimSpace(c.Params)[0] != '{' {
				t.Fatalf("params %q is not an object", c.Params)
			}
			// Whatever the params, each method's decoding fails cleanly.
			for _, dst := range []any{&relayParams{}, &struct{}{}, &struct {
				For duration `json:"for"`
			}{}} {
				if err := decodeParams(c, dst); err != nil {
					var pe *cmdError
					if !errors.As(err, &pe) || pe.Code != codeBadParams || pe.ID != c.ID || !pe.HasID || pe.Message == "" {
						t.Fatalf("decodeParams: %#v", err)
					}
					checkReplyJSON(t, errorReply(pe), &c.ID, false, codeBadParams)
				}
			}
			checkReplyJSON(t, okReply(c.ID, map[string]any{"pong": true}), &c.ID, true, "")
		case errors.Is(err, errNotCommand):
			var m map[string]json.RawMessage
			if json.Unmarshal(p, &m) != nil {
				t.Fatalf("plain, but not a JSON object: %q", p)
			}
			if _, ok := m["method"]; ok {
				t.Fatalf("plain, but has a method: %q", p)
			}
		case errors.As(err, &ce):
			if !replyCodes[ce.Code] || ce.Message == "" {
				t.Fatalf("refusal %+v", ce)
			}
			if (ce.Code == codeBadJSON) == json.Valid(p) {
				t.Fatalf("code %s for %q (json.Valid %v)", ce.Code, p, json.Valid(p))
			}
			var id *string
			if ce.HasID {
				if ce.ID == "" || len(ce.ID) > maxIDLen {
					t.Fatalf("refusal carries id %q", ce.ID)
				}
				id = &ce.ID
			}
			checkReplyJSON(t, errorReply(ce), id, false, ce.Code)
		default:
			t.Fatalf("error %T: %v", err, err)
		}
	})
}

// checkReplyJSON: a reply is one JSON object with the id (or null), ok,
// and for a refusal the code and a message.
func checkReplyJSON(t *testing.T, b []byte, id *string, ok bool, code string) {
	t.Helper()
	var r struct {
		ID    *string `json:"id"`
		OK    *bool   `json:"ok"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil && !strings.Contains(err.Error(), `unknown field "result"`) {
		t.Fatalf("reply %s: %v", b, err)
	}
	if r.OK == nil || *r.OK != ok || (id == nil) != (r.ID == nil) || (id != nil && *id != *r.ID) {
		t.Fatalf("reply %s, want id %v ok %v", b, id, ok)
	}
	if !ok && (r.Error == nil || r.Error.Code != code || r.Error.Message == "") {
		t.Fatalf("reply %s, want error %s with a message", b, code)
	}
	// The id (128 bytes) and message (512) at worst escaped six times each.
	if !ok && len(b) > 6*(maxIDLen+maxReplyMessage)+128 {
		t.Fatalf("reply of %d bytes", len(b))
	}
}
