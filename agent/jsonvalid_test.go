package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

var validJSONCases = []string{
	``, ` `, `{}`, ` {} `, `{}}`, `{}]`, `[]`, `[1,]`, `[,1]`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
	`{"a":[1,2,{"b":null}],"c":true,"d":false}`, `"x"`, `"\u00e9\n\t\/\\\""`, `"\u00g0"`, `"\x"`, "\"a\x01\"",
	"\"\xff\xfe\"", `0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5e`, `1.5e+10`, `1E-2`, `-12.34e5`, `+1`, `tru`, `true`,
	`nul`, `null `, `falsey`, `[true false]`, `{"a":1 "b":2}`, `[[[[[]]]]]`, `[[[[[]]]]`, `{"method":"x","id":"1"}`,
	`{"id":"c1","method":"relay.toggle","params":{"relay":"lamp"}}}`, "\t\r\n[1]\n", `[1]x`, `"abc`, `"\`, `"\u12`,
	strings.Repeat("[", jsonMaxDepth) + strings.Repeat("]", jsonMaxDepth),
	strings.Repeat("[", jsonMaxDepth+1) + strings.Repeat("]", jsonMaxDepth+1),
	strings.Repeat(`{"a":`, jsonMaxDepth) + "1" + strings.Repeat("}", jsonMaxDepth),
	strings.Repeat(`{"a":`, jsonMaxDepth+1) + "1" + strings.Repeat("}", jsonMaxDepth+1),
}

// TestValidJSONAgreesWithEncodingJSON: the same verdict as json.Valid on
// the edge cases of each production and of the nesting bound.
func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := validJSON(p), json.Valid(p); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", p, got, want)
		}
	})
}

// A 150-byte notification, as the bench sends: validJSON against json.Valid.
func BenchmarkValidJSON(b *testing.B) {
	p := []byte(`{"n":12345,"tag":"bench-drain","sent":1764000000000000000,"t":23.5,"h":41,"ok":true,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.Run("validJSON", func(b *testing.B) {
		for b.Loop() {
			validJSON(p)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		for b.Loop() {
			json.Valid(p)
		}
	})
}
