package bootstrap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// jwt is an unsigned JSON Web Token with the claims given.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

// The answers' expiry is honoured in each accepted form; the earliest wins.
func TestExpiry(t *testing.T) {
	lb := func(extra map[string]any) map[string]any {
		m := map[string]any{"broker": "ssl://h:1883", "username": "u", "password": mqttPassword}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		login, lb  any
		expiryPath string
		want       time.Time // zero = none
		wantErr    string
	}{
		{name: "none", login: map[string]any{"Token": token}, lb: lb(nil)},
		{name: "expiresIn seconds in login", login: map[string]any{"Token": token, "expiresIn": 3600}, lb: lb(nil), want: now.Add(time.Hour)},
		{name: "expires_in as string", login: map[string]any{"Token": token, "expires_in": "7200"}, lb: lb(nil), want: now.Add(2 * time.Hour)},
		{name: "ttl under data", login: map[string]any{"data": map[string]any{"token": token, "TTL": 60.5}}, lb: lb(nil), want: now.Add(60500 * time.Millisecond)},
		{name: "expireTime epoch seconds", login: map[string]any{"Token": token},
			lb: lb(map[string]any{"expireTime": now.Add(3 * time.Hour).Unix()}), want: now.Add(3 * time.Hour)},
		{name: "expireTime epoch milliseconds under data", login: map[string]any{"Token": token},
			lb:   map[string]any{"data": map[string]any{"broker": "h", "username": "u", "password": mqttPassword, "expireTime": now.Add(4 * time.Hour).UnixMilli()}},
			want: now.Add(4 * time.Hour)},
		{name: "expiresAt RFC 3339", login: map[string]any{"Token": token},
			lb: lb(map[string]any{"expiresAt": "2026-03-01T20:00:00+08:00"}), want: now},
		{name: "earliest of both", login: map[string]any{"Token": token, "expiresIn": 7200},
			lb: lb(map[string]any{"expire_time": now.Add(time.Hour).Unix()}), want: now.Add(time.Hour)},
		{name: "JWT token", login: map[string]any{"Token": jwt(`{"sub":"x","exp":` + jsonInt(now.Add(90*time.Minute).Unix()) + `}`)},
			lb: lb(nil), want: now.Add(90 * time.Minute)},
		{name: "field earlier than JWT", login: map[string]any{"Token": jwt(`{"exp":` + jsonInt(now.Add(90*time.Minute).Unix()) + `}`), "expiresIn": 60},
			lb: lb(nil), want: now.Add(time.Minute)},
		{name: "zero means none", login: map[string]any{"Token": token, "expiresIn": 0}, lb: lb(nil)},
		{name: "unreadable default field skipped", login: map[string]any{"Token": token, "expiration": "soon"}, lb: lb(nil)},
		{name: "configured path", login: map[string]any{"Token": token, "expiresIn": 60},
			lb: lb(map[string]any{"lease": map[string]any{"until": now.Add(5 * time.Hour).Unix()}}), expiryPath: "lease.until",
			want: now.Add(5 * time.Hour)},
		{name: "configured path in login", login: map[string]any{"Token": token, "life": 600}, lb: lb(nil), expiryPath: "life",
			want: now.Add(10 * time.Minute)},
		{name: "configured path unreadable", login: map[string]any{"Token": token}, lb: lb(map[string]any{"life": "next week"}),
			expiryPath: "life", wantErr: `bootstrap: loadBalance: answer's "life" field (the expiry) is not seconds from now, an epoch time or an RFC 3339 time`},
		{name: "configured path missing", login: map[string]any{"Token": token}, lb: lb(nil),
			expiryPath: "life", wantErr: `bootstrap: loadBalance: neither answer has the expiry field "life"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, fixed(200, tt.login), fixed(200, tt.lb))
			o := s.options()
			o.ExpiryPath = tt.expiryPath
			o.Now = func() time.Time { return now }
			cr, err := newClient(t, o).Fetch(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v\nwant          %s", err, tt.wantErr)
				}
				asError(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !cr.Expires.Equal(tt.want) {
				t.Errorf("Expires = %v, want %v", cr.Expires, tt.want)
			}
			if !cr.FetchedAt.Equal(now) {
				t.Errorf("FetchedAt = %v, want %v", cr.FetchedAt, now)
			}
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestExpiryTime(t *testing.T) {
	tests := []struct {
		v    any
		want time.Time
		ok   bool
	}{
		{json.Number("3600"), now.Add(time.Hour), true},
		{"3600", now.Add(time.Hour), true},
		{json.Number("999999999"), now.Add(999999999 * time.Second), true},
		{json.Number("1000000000"), time.Unix(1e9, 0), true},
		{json.Number("1772366400.5"), time.Unix(1772366400, 5e8), true},
		{json.Number("1772366400000"), time.UnixMilli(1772366400000), true},
		{"2026-03-01T12:00:00.25Z", now.Add(250 * time.Millisecond), true},
		{json.Number("0"), time.Time{}, false},
		{json.Number("-5"), time.Time{}, false},
		{"2026-03-01 12:00:00", time.Time{}, false},
		{true, time.Time{}, false},
		{map[string]any{}, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := expiryTime(tt.v, now)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("expiryTime(%#v) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	tests := []struct {
		s    string
		want time.Time
		ok   bool
	}{
		{jwt(`{"exp":1772366400}`), time.Unix(1772366400, 0), true},
		{jwt(`{"exp":1772366400.9}`), time.Unix(1772366400, 0), true},
		{jwt(`{"sub":"x"}`), time.Time{}, false},
		{jwt(`{"exp":"soon"}`), time.Time{}, false},
		{jwt(`not json`), time.Time{}, false},
		{"a.b", time.Time{}, false},
		{"a.!!!.c", time.Time{}, false},
		{token, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := jwtExpiry(tt.s)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("jwtExpiry(%q) = %v, %v; want %v, %v", tt.s, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLookup(t *testing.T) {
	root, err := decodeJSON([]byte(`{"Data":{"list":[{"a":"x"},{"a":"y"}]},"data":{"b":null},"A":"upper","a":"lower"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		fold bool
		want any
		ok   bool
	}{
		{"Data.list.1.a", false, "y", true},
		{"data.list.0.a", false, nil, false}, // exact: "data" has no list
		{"data.b", false, nil, false},        // null is absent
		{"Data.list.2.a", false, nil, false},
		{"Data.list.x", false, nil, false},
		{"a", true, "lower", true}, // an exact match wins over a folded one
		{"A", true, "upper", true},
		{"DATA.LIST.0.A", true, "x", true},
		{"a.b", false, nil, false},
	}
	for _, tt := range tests {
		got, ok := lookup(root, splitPath(tt.path), tt.fold)
		if ok != tt.ok || got != tt.want {
			t.Errorf("lookup(%q, fold %v) = %v, %v; want %v, %v", tt.path, tt.fold, got, ok, tt.want, tt.ok)
		}
	}
}
