package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, tc := range []struct {
		name     string
		payload  string
		wantCode string // "" = parses; "plain" = not a command
		wantID   string
	}{
		{"plain text", "hello", "plain", ""},
		{"json array", `[1,2]`, "plain", ""},
		{"object without method", `{"event":"x"}`, "plain", ""},
		{"ping", `{"id":"c1","method":"agent.ping"}`, "", "c1"},
		{"leading space", "  \n{\"id\":\"c1\",\"method\":\"agent.ping\"}", "", "c1"},
		{"broken json", `{"id":"c1","method":`, codeBadJSON, ""},
		{"trailing data", `{"id":"c1","method":"agent.ping"} x`, codeBadJSON, ""},
		{"deep nesting", `{"id":"c1","method":"agent.ping","params":{"a":` + deep + `}}`, codeBadJSON, ""},
		{"no id", `{"method":"agent.ping"}`, codeBadCommand, ""},
		{"null id", `{"id":null,"method":"agent.ping"}`, codeBadCommand, ""},
		{"numeric id", `{"id":42,"method":"agent.ping"}`, codeBadCommand, ""},
		{"empty id", `{"id":"","method":"agent.ping"}`, codeBadCommand, ""},
		{"huge id", `{"id":"` + strings.Repeat("x", 129) + `","method":"agent.ping"}`, codeBadCommand, ""},
		{"method not string", `{"id":"c1","method":7}`, codeBadCommand, "c1"},
		{"unknown key", `{"id":"c1","method":"agent.ping","sudo":true}`, codeBadCommand, "c1"},
		{"bad expires_at", `{"id":"c1","method":"agent.ping","expires_at":"tomorrow"}`, codeBadCommand, "c1"},
		{"params not object", `{"id":"c1","method":"agent.ping","params":[1]}`, codeBadParams, "c1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCommand([]byte(tc.payload))
			var ce *cmdError
			switch {
			case tc.wantCode == "plain":
				if !errors.Is(err, errNotCommand) {
					t.Fatalf("got %v, want a plain notification", err)
				}
			case tc.wantCode == "":
				if err != nil || c.ID != tc.wantID {
					t.Fatalf("got %+v, %v; want id %q", c, err, tc.wantID)
				}
			case errors.As(err, &ce):
				if ce.Code != tc.wantCode || ce.ID != tc.wantID || ce.Message == "" {
					t.Fatalf("got code %q id %q (%s), want %q id %q", ce.Code, ce.ID, ce.Message, tc.wantCode, tc.wantID)
				}
				// The reply is JSON with id null unless the id was usable.
				var r map[string]any
				if err := json.Unmarshal(errorReply(ce), &r); err != nil {
					t.Fatal(err)
				}
				if (tc.wantID == "") != (r["id"] == nil) || r["ok"] != false {
					t.Fatalf("reply %v", r)
				}
			default:
				t.Fatalf("got %v, want code %s", err, tc.wantCode)
			}
		})
	}
}

func TestStartsLikeObject(t *testing.T) {
	for in, want := range map[string]bool{"{": true, " \t{x": true, "x{": false, "": false, "[{}]": false} {
		if got := startsLikeObject([]byte(in)); got != want {
			t.Errorf("startsLikeObject(%q) = %v", in, got)
		}
	}
}

// TestMayBeCommand: plain JSON notifications skip the dispatcher; commands,
// would-be commands and malformed objects do not.
func TestMayBeCommand(t *testing.T) {
	for in, want := range map[string]bool{
		`{"temp":21.5,"unit":"C"}`:               false,
		`{"text":"a \"quoted\" value"}`:          false,
		`plain text with method`:                 false,
		`[{"method":"agent.ping"}]`:              false,
		`{"id":"1","method":"agent.ping"}`:       true,
		`{"note":"no method key, but the word"}`: true, // false true: a look only
		`{"\u006dethod":"agent.ping","id":"1"}`:  true,
		`{"temp":21.5`:                           true, // bad_json reply
		`{"temp":21.5}}`:                         true, // bad_json reply
	} {
		if got := mayBeCommand([]byte(in)); got != want {
			t.Errorf("mayBeCommand(%q) = %v, want %v", in, got, want)
		}
	}
}
