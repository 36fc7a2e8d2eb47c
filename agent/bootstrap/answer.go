package bootstrap

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// field is a value Fetch needs from an answer, and where it looks for it
// when no path is configured.
type field struct {
	what  string   // for messages
	key   string   // the config key that sets its path
	names []string // default names, case-insensitive, at the top level then under "data"
}

// The defaults (doc.go lists them; docs/design.md#bootstrap too).
var (
	tokenField    = field{"token", "bootstrap.token_field", []string{"Token", "accessToken"}}
	brokerField   = field{"broker", "bootstrap.broker_field", []string{"broker", "brokerUrl", "brokerAddress", "mqttUrl", "mqttBroker", "url", "address", "server"}}
	usernameField = field{"MQTT username", "bootstrap.mqtt_username_field", []string{"username", "mqttUsername", "mqttUser", "user"}}
	passwordField = field{"MQTT password", "bootstrap.mqtt_password_field", []string{"password", "mqttPassword", "passwd", "pwd"}}
	expiryNames   = []string{
		"expiresIn", "expires_in", "expireIn", "expire_in", "ttl",
		"expiresAt", "expires_at", "expireAt", "expire_at", "expireTime", "expire_time",
		"expiration", "expiry", "exp",
	}
)

// scopes are where the default names are looked for.
var scopes = [][]string{nil, {"data"}}

// splitPath splits a dotted path; nil if it has an empty segment.
func splitPath(p string) []string {
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return nil
		}
	}
	return segs
}

// lookup follows path from root. A segment names an object's key (exactly,
// or ignoring case when fold is set and no key matches exactly) or, all
// digits, an array's element. A null value counts as absent.
func lookup(root any, path []string, fold bool) (any, bool) {
	v, ok := lookupRaw(root, path, fold)
	return v, ok && v != nil
}

// lookupRaw is lookup with a null value present (as nil).
func lookupRaw(root any, path []string, fold bool) (any, bool) {
	v := root
	for _, seg := range path {
		switch n := v.(type) {
		case map[string]any:
			next, ok := n[seg]
			if !ok && fold {
				keys := make([]string, 0, len(n))
				for k := range n {
					keys = append(keys, k)
				}
				sort.Strings(keys) // the same answer always gives the same pick
				for _, k := range keys {
					if strings.EqualFold(k, seg) {
						next, ok = n[k], true
						break
					}
				}
			}
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// lookupString finds f in the answer: at path if set, else under its
// default names. Numbers are taken as their text (a numeric user name).
func lookupString(root any, path string, f field, red redactor) (string, *Error) {
	var (
		v     any
		ok    bool
		where string
	)
	if path != "" {
		v, ok = lookup(root, splitPath(path), false)
		where = path
	} else {
		where = f.names[0]
	search:
		for _, scope := range scopes {
			for _, name := range f.names {
				p := append(append([]string(nil), scope...), name)
				if v, ok = lookup(root, p, true); ok {
					where = strings.Join(p, ".")
					break search
				}
			}
		}
	}
	if !ok {
		return "", missing(root, path, f, red)
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return "", &Error{Msg: fmt.Sprintf("answer's %q field (the %s) is %s, not a string", where, f.what, jsonType(v)), kind: kindAnswer}
	}
	if strings.TrimSpace(s) == "" {
		if failed, _ := failure(root); failed {
			return "", missing(root, path, f, red) // {"code":401,"Token":""}
		}
		return "", &Error{Msg: fmt.Sprintf("answer's %q field (the %s) is empty", where, f.what), kind: kindAnswer}
	}
	return s, nil
}

// missing describes an answer without f: a refusal if the answer says it
// failed, else a shape the configuration does not describe, with the
// answer's field names (never its values) to help write the path.
func missing(root any, path string, f field, red redactor) *Error {
	failed, transient := failure(root)
	if !failed {
		if where, null := nullAt(root, path, f); null {
			return &Error{Msg: fmt.Sprintf("answer's %q field (the %s) is null", where, f.what), kind: kindAnswer}
		}
	}
	if failed {
		e := &Error{Msg: fmt.Sprintf("answer has no %s and says the request failed", f.what), kind: kindRefused}
		if transient {
			e.kind = kindUnreachable
		}
		if m := serviceMessage(root, red); m != "" {
			e.Msg += ": service says " + m
		}
		return e
	}
	if _, isObj := root.(map[string]any); !isObj {
		return &Error{Msg: fmt.Sprintf("answer is %s, not a JSON object with the %s", jsonType(root), f.what), kind: kindAnswer}
	}
	var msg string
	if path != "" {
		msg = fmt.Sprintf("answer has no %q field (the %s, from %s)", path, f.what, f.key)
	} else {
		msg = fmt.Sprintf("answer has no %q field (looked for the %s as %s, at the top level and under \"data\"; set %s to its dotted path)",
			f.names[0], f.what, strings.Join(f.names, ", "), f.key)
	}
	if ks := fieldNames(root); ks != "" {
		msg += "; the answer's fields: " + ks
	}
	return &Error{Msg: msg, kind: kindAnswer}
}

// nullAt finds where f is null: at path, or under a default name.
func nullAt(root any, path string, f field) (string, bool) {
	if path != "" {
		v, ok := lookupRaw(root, splitPath(path), false)
		return path, ok && v == nil
	}
	for _, scope := range scopes {
		for _, name := range f.names {
			p := append(append([]string(nil), scope...), name)
			if v, ok := lookupRaw(root, p, true); ok && v == nil {
				return strings.Join(p, "."), true
			}
		}
	}
	return "", false
}

// fieldNames lists the keys of an object and of the objects directly in
// it, like "code, data{token, user}, msg", cut short when long.
func fieldNames(root any) string {
	m, ok := root.(map[string]any)
	if !ok {
		return ""
	}
	names := func(m map[string]any) []string {
		ks := make([]string, 0, len(m))
		for k := range m {
			q := strconv.Quote(k) // a key with control characters stays on one line
			ks = append(ks, q[1:len(q)-1])
		}
		sort.Strings(ks)
		if len(ks) > 20 {
			ks = append(ks[:20], "…")
		}
		return ks
	}
	ks := names(m)
	for i, k := range ks {
		if sub, ok := m[k].(map[string]any); ok {
			ks[i] = k + "{" + strings.Join(names(sub), ", ") + "}"
		}
	}
	return strings.Join(ks, ", ")
}

// jsonType names v's JSON type, with its article.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// expiry returns the expiry times an answer carries: the value at path, or
// at every default name (top level and under "data") when path is "".
// A default field whose value does not read as a time is skipped (it may
// mean something else); a configured one is an error. start is when the
// request went out, the base of a relative expiry.
func expiry(root any, path string, start time.Time) ([]time.Time, *Error) {
	if path != "" {
		v, ok := lookup(root, splitPath(path), false)
		if !ok {
			return nil, nil // the other answer may carry it; Fetch checks
		}
		t, ok := expiryTime(v, start)
		if !ok {
			return nil, &Error{Msg: fmt.Sprintf("answer's %q field (the expiry) is not seconds from now, an epoch time or an RFC 3339 time", path), kind: kindAnswer}
		}
		return []time.Time{t}, nil
	}
	var ts []time.Time
	for _, scope := range scopes {
		for _, name := range expiryNames {
			if v, ok := lookup(root, append(append([]string(nil), scope...), name), true); ok {
				if t, ok := expiryTime(v, start); ok {
					ts = append(ts, t)
				}
			}
		}
	}
	return ts, nil
}

// Thresholds that tell the forms of a numeric expiry apart: under 1e9
// (2001 as an epoch) it is a number of seconds from now; under 1e11 epoch
// seconds; above, epoch milliseconds.
const (
	maxRelative = 1e9
	maxEpochSec = 1e11
)

// expiryTime reads an expiry value: a number (or numeric string) of
// seconds from start, epoch seconds or epoch milliseconds, or an RFC 3339
// time. Zero and negative numbers mean "no expiry".
func expiryTime(v any, start time.Time) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
	default:
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e15 {
		return time.Time{}, false
	}
	switch {
	case f < maxRelative:
		return start.Add(time.Duration(f * float64(time.Second))), true
	case f < maxEpochSec:
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	default:
		return time.UnixMilli(int64(f)), true
	}
}

// jwtExpiry reads the "exp" claim of a JSON Web Token without checking its
// signature: it is only a hint of when to fetch again.
func jwtExpiry(s string) (time.Time, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 || f >= maxEpochSec {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
