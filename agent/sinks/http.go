package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/store"
)

// httpSink POSTs each record.
type httpSink struct {
	url    string
	client *http.Client
}

func newHTTPSink(c Config) *httpSink {
	return &httpSink{url: c.URL, client: &http.Client{
		Timeout: c.Timeout,
		// A redirect is an answer, and not a 2xx: a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (h *httpSink) deliver(ctx context.Context, recs []store.Record) (int, error) {
	r := &recs[0]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(r.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Edge-Seq", strconv.FormatUint(r.Seq, 10))
	req.Header.Set("X-Edge-Topic", headerSafe(r.Topic))
	req.Header.Set("X-Edge-Received-At", string(appendTime(nil, r.ReceivedAt)))
	if r.Oversize > 0 {
		req.Header.Set("X-Edge-Oversize", strconv.FormatInt(r.Oversize, 10))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err // a *url.Error: the URL without its password
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keeps the connection for the next one
		return 1, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	msg := fmt.Sprintf("HTTP %s (seq %d)", resp.Status, r.Seq)
	if b := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " "); b != "" {
		msg += ": " + b
	}
	return 0, errors.New(msg)
}

func (h *httpSink) close() {}

// headerSafe percent-encodes %, the control characters and DEL, which a
// header value cannot hold.
func headerSafe(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '%' {
			if b == nil {
				b = append(make([]byte, 0, len(s)+8), s[:i]...)
			}
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}
