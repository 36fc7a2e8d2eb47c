package sinks

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type posted struct {
	body                  []byte
	seq, topic, at, ctype string
}

// A real HTTP server gets each payload byte-exact with its headers; a
// non-2xx answer is retried.
func TestHTTPSinkPosts(t *testing.T) {
	var mu sync.Mutex
	var got []posted
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		body, _ := io.ReadAll(r.Body)
		if calls == 2 || calls == 3 { // seq 2 fails twice
			http.Error(w, "busy\nnow", http.StatusServiceUnavailable)
			return
		}
		got = append(got, posted{body, r.Header.Get("X-Edge-Seq"), r.Header.Get("X-Edge-Topic"),
			r.Header.Get("X-Edge-Received-At"), r.Header.Get("Content-Type")})
	}))
	defer srv.Close()

	db := openStore(t, nil)
	payloads := [][]byte{[]byte("one"), {0xff, 0x00, 0x80, '\r', '\n'}, {}}
	appendMsgs(t, db, "a/b%c", payloads...)
	appendMsgs(t, db, "x\ny", []byte("four"))
	m, _ := newManager(t, []Config{{Name: "h", Type: TypeHTTP, URL: srv.URL + "/in?k=v"}}, db)
	start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "h").Cursor == 4 })

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("server took %d posts, want 4", len(got))
	}
	for i, p := range append(payloads, []byte("four")) {
		g := got[i]
		if !bytes.Equal(g.body, p) {
			t.Errorf("post %d: body %q, want %q", i, g.body, p)
		}
		if want := string(rune('1' + i)); g.seq != want {
			t.Errorf("post %d: X-Edge-Seq %q, want %q", i, g.seq, want)
		}
		if g.ctype != "application/octet-stream" {
			t.Errorf("post %d: Content-Type %q", i, g.ctype)
		}
		if ts, err := time.Parse(time.RFC3339Nano, g.at); err != nil || !ts.Equal(t0.Add(time.Duration(i%3)*time.Millisecond)) {
			t.Errorf("post %d: X-Edge-Received-At %q", i, g.at)
		}
	}
	if got[0].topic != "a/b%25c" || got[3].topic != "x%0Ay" {
		t.Errorf("X-Edge-Topic %q and %q, want a/b%%25c and x%%0Ay", got[0].topic, got[3].topic)
	}
	st := status(m, "h")
	if st.Failed != 2 || st.Delivered != 4 || !strings.Contains(st.LastError, "HTTP 503 Service Unavailable (seq 2): busy now") {
		t.Errorf("status %+v", st)
	}
}

// A redirect is not followed: it is a failure like any other non-2xx.
func TestHTTPSinkRedirectIsFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	db := openStore(t, nil)
	appendMsgs(t, db, "t", []byte("x"))
	m, _ := newManager(t, []Config{{Name: "h", Type: TypeHTTP, URL: srv.URL}}, db)
	start(t, m)
	waitFor(t, "a failure", func() bool { return status(m, "h").Failed > 0 })
	if st := status(m, "h"); st.Cursor != 0 || !strings.Contains(st.LastError, "307") {
		t.Errorf("status %+v", st)
	}
}

// A server slower than timeout fails the attempt.
func TestHTTPSinkTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	db := openStore(t, nil)
	appendMsgs(t, db, "t", []byte("x"))
	m, _ := newManager(t, []Config{{Name: "h", Type: TypeHTTP, URL: srv.URL, Timeout: 100 * time.Millisecond}}, db)
	start(t, m)
	waitFor(t, "a failure", func() bool { return status(m, "h").Failed > 0 })
	if st := status(m, "h"); st.Cursor != 0 || !strings.Contains(st.LastError, "Timeout") {
		t.Errorf("status %+v", st)
	}
}
