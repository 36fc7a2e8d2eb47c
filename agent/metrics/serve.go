package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"
)

// Serve answers GET /metrics on ln with body() until ln is closed. It is a
// deliberately small HTTP/1.1 server: one connection at a time on the
// calling goroutine, each bounded by a deadline and closed after its one
// answer, which is all a Prometheus scrape needs (net/http's server would
// add tens of KB to the binary for features no scraper uses).
func Serve(ln net.Listener, body func() []byte) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, or a connection reset before it was
			// taken: the next one may work.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		answer(c, body)
	}
}

// maxHeader bounds what one request may send before its blank line.
const maxHeader = 8 << 10

func answer(c net.Conn, body func() []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(c, 1024)
	line, err := r.ReadSlice('\n')
	if err != nil {
		return
	}
	// The headers are read away (a client may wait until it has sent
	// them) and ignored.
	for n := len(line); ; {
		h, err := r.ReadSlice('\n')
		n += len(h)
		if err != nil || n > maxHeader {
			return
		}
		if len(bytes.TrimSpace(h)) == 0 {
			break
		}
	}
	status, typ, b := "200 OK", "text/plain; version=0.0.4; charset=utf-8", []byte(nil)
	f := bytes.Fields(line)
	switch {
	case len(f) != 3:
		status, typ = "400 Bad Request", "text/plain"
	case string(f[1]) != "/metrics" && !bytes.HasPrefix(f[1], []byte("/metrics?")):
		status, typ, b = "404 Not Found", "text/plain", []byte("only /metrics is served here\n")
	case string(f[0]) != "GET" && string(f[0]) != "HEAD":
		status, typ = "405 Method Not Allowed", "text/plain"
	default:
		b = body()
	}
	out := make([]byte, 0, 160+len(b))
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\nContent-Type: "...)
	out = append(out, typ...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(b)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	if len(f) == 3 && string(f[0]) != "HEAD" {
		out = append(out, b...)
	}
	_, _ = c.Write(out)
}
