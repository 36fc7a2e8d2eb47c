package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statusServer serves only status on a unix socket in a new directory.
func statusServer(t *testing.T, wrap func(net.Listener) net.Listener, log *slog.Logger) (dir string, srv *Server) {
	t.Helper()
	dir = t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	srv = Serve(ln, nil, func() any { return map[string]string{"state": "ok"} }, nil, log)
	t.Cleanup(func() { srv.Close() })
	return dir, srv
}

func askStatus(dir string) error {
	return Call(dir, Request{Cmd: CmdStatus}, func(r Reply) error {
		if !bytes.Contains(r.Status, []byte(`"ok"`)) {
			return errors.New("unexpected status " + string(r.Status))
		}
		return nil
	})
}

// TestServerBoundsRequestLine: a client sending a long line without a
// newline gets an error once the bound is hit and is cut off; the server
// reads no further (the client cannot push much more than the bound plus
// the socket's buffers) and goes on serving others.
func TestServerBoundsRequestLine(t *testing.T) {
	dir, _ := statusServer(t, nil, nil)
	c, err := net.Dial("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const attempt = 32 << 20 // without a newline
	var written int
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for written < attempt {
			n, err := c.Write(chunk)
			written += n
			if err != nil {
				return
			}
		}
	}()

	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to an over-long request line: %v (read %q)", err, line)
	}
	var r Reply
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("answer %q: %v", line, err)
	}
	if !strings.Contains(r.Error, "longer than 65536 bytes") {
		t.Errorf("answer %q, want an error naming the bound", line)
	}
	<-wrote // the server closed the connection: the writer fails
	if written >= attempt {
		t.Fatalf("the server read all %d bytes of an unterminated line", written)
	}
	// The bound plus the kernel's socket buffers (a few hundred KiB).
	if written > 4<<20 {
		t.Errorf("the client pushed %d bytes before the server gave up; want about %d plus socket buffers", written, MaxRequestLine)
	}
	t.Logf("client wrote %d bytes before the server cut it off", written)

	if err := askStatus(dir); err != nil {
		t.Fatalf("status after the over-long request: %v", err)
	}
}

// TestServerRequestAtTheBound: a line of exactly MaxRequestLine bytes
// (newline included) is read; one byte more is refused.
func TestServerRequestAtTheBound(t *testing.T) {
	dir, _ := statusServer(t, nil, nil)
	ask := func(size int) Reply {
		t.Helper()
		c, err := net.Dial("unix", filepath.Join(dir, SocketName))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := []byte(`{"cmd":"status"}`)
		line := append(append(req, bytes.Repeat([]byte(" "), size-len(req)-1)...), '\n')
		if _, err := c.Write(line); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var r Reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask(MaxRequestLine); r.Error != "" || r.Status == nil {
		t.Errorf("a %d-byte line: %+v", MaxRequestLine, r)
	}
	if r := ask(MaxRequestLine + 1); !strings.Contains(r.Error, "longer than") {
		t.Errorf("a %d-byte line: %+v", MaxRequestLine+1, r)
	}
}
