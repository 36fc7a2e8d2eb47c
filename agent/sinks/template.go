package sinks

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/store"
)

// template is a format or topic split at its placeholders.
type template []tpart

// tpart is a literal, or a placeholder when field is not "".
type tpart struct {
	lit, field string
}

// parseTemplate splits s at its placeholders: {name}, name of letters,
// digits and underscores. A placeholder not in allowed is an error; any
// other brace is a literal.
func parseTemplate(s string, allowed []string) (template, error) {
	var t template
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
			j++
		}
		if j == i+1 || j == len(s) || s[j] != '}' {
			continue
		}
		ph := s[i : j+1]
		ok := false
		for _, a := range allowed {
			ok = ok || a == ph
		}
		if !ok {
			return nil, fmt.Errorf("unknown placeholder %q (known: %s)", ph, strings.Join(allowed, " "))
		}
		if lit < i {
			t = append(t, tpart{lit: s[lit:i]})
		}
		t = append(t, tpart{field: ph})
		lit = j + 1
		i = j
	}
	if lit < len(s) {
		t = append(t, tpart{lit: s[lit:]})
	}
	return t, nil
}

// appendTo appends t filled in with r to b; escape makes payload and topic
// safe on one line (see escaped).
func (t template) appendTo(b []byte, r *store.Record, escape bool) []byte {
	for _, p := range t {
		switch p.field {
		case "":
			b = append(b, p.lit...)
		case "{payload}":
			if escape {
				b = appendEscaped(b, r.Payload)
			} else {
				b = append(b, r.Payload...)
			}
		case "{topic}":
			if escape {
				b = appendEscaped(b, []byte(r.Topic))
			} else {
				b = append(b, r.Topic...)
			}
		case "{seq}":
			b = strconv.AppendUint(b, r.Seq, 10)
		case "{received_at}":
			b = appendTime(b, r.ReceivedAt)
		}
	}
	return b
}

func (t template) fill(r *store.Record) string { return string(t.appendTo(nil, r, false)) }

// appendTime writes t as RFC 3339 with nanoseconds in UTC; nothing for the
// zero time (a record stored without one).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// appendEscaped appends p as it is when it is valid UTF-8 made only of
// printable characters (strconv.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space); otherwise as Go's %q writes
// it, without the surrounding quotes.
func appendEscaped(b, p []byte) []byte {
	if printable(p) {
		return append(b, p...)
	}
	q := strconv.AppendQuote(b, string(p))
	// Drop the quotes AppendQuote put around p.
	copy(q[len(b):], q[len(b)+1:len(q)-1])
	return q[:len(q)-2]
}

func printable(p []byte) bool {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && n == 1 || !strconv.IsPrint(r) {
			return false
		}
		i += n
	}
	return true
}
