// Package metrics writes the Prometheus text exposition format (version
// 0.0.4) by hand, and hands it out: a file rewritten atomically for
// node_exporter's textfile collector, and GET /metrics on a TCP listener.
// No client library and no net/http server: the exposition is a few
// hundred lines of text, and the armv6 binary has no room for either
// (docs/design.md#metrics). Text's methods are kept out of line
// (go:noinline): inlined at each of the exposition's many call sites they
// would cost more bytes than they save time.
package metrics

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// Text builds an exposition. Families are written in the order they are
// added; each family's samples follow its HELP and TYPE lines.
type Text struct{ b []byte }

// Types of a family.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Head starts a family: its HELP and TYPE lines. help is a constant of the
// caller's, without backslashes or newlines (nothing escapes it).
//
//go:noinline
func (t *Text) Head(name, typ, help string) {
	s := "# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n"
	t.b = append(t.b, s...)
}

// Sample adds one sample; labels are name, value pairs.
//
//go:noinline
func (t *Text) Sample(name string, v float64, labels ...string) {
	b := append(t.b, name...)
	sep := byte('{')
	for i := 0; i+1 < len(labels) && labels[i] != ""; i += 2 {
		b = append(append(append(b, sep), labels[i]...), '=', '"')
		for _, c := range []byte(labels[i+1]) {
			if c == '\n' {
				b = append(b, '\\', 'n')
				continue
			}
			if c == '\\' || c == '"' {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
		b = append(b, '"')
		sep = ','
	}
	if sep == ',' {
		b = append(b, '}')
	}
	t.b = append(strconv.AppendFloat(append(b, ' '), v, 'g', -1, 64), '\n')
}

// Bytes is the exposition so far.
func (t *Text) Bytes() []byte { return t.b }

// WriteFile replaces path with b so that a reader sees the old text or the
// new one, never a part: b goes to path+".tmp" in the same directory (the
// same file system; node_exporter reads only *.prom), which is then
// renamed over path. One writer (the daemon's metrics loop) uses it.
//
// It does not fsync. A rewrite every interval is a few KB of page cache
// that the file system writes back on its own schedule (ext4: within 5 s,
// with the journal commit it makes anyway); an fsync per rewrite would force
// a journal commit of its own each time, for numbers that the next rewrite
// replaces. After a power cut the file may be old or empty until the next
// rewrite. On a tmpfs (/run) it costs no flash at all.
func WriteFile(path string, b []byte) error {
	tmp := path + ".tmp"
	// 0644: node_exporter runs as its own user; counters hold no secret.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// RSS is the process's resident set size in bytes (the second field of
// /proc/self/statm, in pages), 0 where that cannot be read.
func RSS() int64 {
	b, _ := os.ReadFile("/proc/self/statm")
	var n int64
	field := 0
	for _, c := range b {
		if c == ' ' {
			field++
		} else if field == 1 && c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
		}
	}
	return n * int64(os.Getpagesize())
}

// Serve answers GET /metrics on ln with body() until ln is closed. It is a
// deliberately small HTTP/1.1 server: one connection at a time on the
// calling goroutine (a scrape every few seconds at most), each read within
// a deadline, up to its blank line and at most 4 KiB, and closed after its
// one answer: all that a Prometheus scrape needs.
func Serve(ln net.Listener, body func() []byte) {
	buf := make([]byte, 4096)
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
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		n := 0
		for n < len(buf) && !bytes.Contains(buf[:n], []byte("\r\n\r\n")) && !bytes.Contains(buf[:n], []byte("\n\n")) {
			m, err := c.Read(buf[n:])
			if n += m; err != nil {
				break
			}
		}
		req := buf[:n]
		status, b := "404 Not Found", []byte("only GET /metrics is served here\n")
		if bytes.HasPrefix(req, []byte("GET /metrics ")) || bytes.HasPrefix(req, []byte("GET /metrics?")) {
			status, b = "200 OK", body()
		}
		head := "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(b)) + "\r\n\r\n"
		_, _ = c.Write(append([]byte(head), b...))
		c.Close()
	}
}
