package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("edge-agent is not running")

// Client deadlines. A daemon that accepts and never answers (stuck, or its
// accept loop dead with connections left in the backlog) made the CLI hang
// for good.
const (
	// DialTimeout bounds connecting to the socket.
	DialTimeout = 2 * time.Second
	// ReplyTimeout bounds the whole answer to a one-reply request (status,
	// inbox show, relay set, led identify) and, for a stream (inbox list
	// and export), the silence between two reads: a stream's deadline is
	// renewed as data arrives, so a long export is not cut off.
	ReplyTimeout = 10 * time.Second
	// relayTimeout leaves room for the daemon's own answer when its
	// dispatcher is busy (it gives up after 10 s and says so).
	relayTimeout = 15 * time.Second
)

// Timeouts bound a call; a zero field takes its default.
type Timeouts struct {
	Dial  time.Duration // DialTimeout
	Reply time.Duration // see ReplyTimeout; led test adds its each
}

// NoAnswerError is a daemon that did not answer in time.
type NoAnswerError struct {
	_      noEq // never compared: no equality function in the binary
	Socket string
	After  time.Duration
	Stream bool // it had begun to answer
}

func (e *NoAnswerError) Error() string {
	what := "did not answer within"
	if e.Stream {
		what = "stopped answering for"
	}
	return fmt.Sprintf("the daemon at %s %s %v; %s", e.Socket, what, e.After, stuckAdvice)
}

const stuckAdvice = "it may be stuck: check `systemctl status edge-agent` and the journal (journalctl -u edge-agent)"

// Call sends req to the daemon whose data_dir is dir and calls fn for each
// reply line until the answer ends. A reply carrying an error is returned as
// the error; a daemon that does not answer in time, as a *NoAnswerError.
func Call(dir string, req Request, fn func(Reply) error) error {
	return CallTimeouts(dir, req, Timeouts{}, fn)
}

// streams says which requests answer with a stream of replies whose read
// deadline is renewed as data arrives.
func streams(cmd string) bool {
	return cmd == CmdInboxList || cmd == CmdInboxExport || cmd == CmdLEDTest || cmd == CmdInboxFollow
}

// replyTimeout is the default Timeouts.Reply for req.
func replyTimeout(req Request) time.Duration {
	switch req.Cmd {
	case CmdRelaySet:
		return relayTimeout
	case CmdLEDTest:
		// A pattern plays for each before the next is announced.
		each := 3 * time.Second
		if d, err := time.ParseDuration(req.Each); err == nil && d > 0 {
			each = d
		}
		return each + ReplyTimeout
	}
	return ReplyTimeout
}

// CallTimeouts is Call with other deadlines.
func CallTimeouts(dir string, req Request, to Timeouts, fn func(Reply) error) error {
	if to.Dial <= 0 {
		to.Dial = DialTimeout
	}
	if to.Reply <= 0 {
		to.Reply = replyTimeout(req)
	}
	path := filepath.Join(dir, SocketName)
	c, err := net.DialTimeout("unix", path, to.Dial)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: no control socket at %s (start it: edge-agent run, or systemctl start edge-agent)", ErrNotRunning, path)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("cannot open %s: permission denied (run as root or as a member of the agent's group)", path)
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.EAGAIN):
			// EAGAIN: the listen backlog is full, nobody accepts.
			return fmt.Errorf("the daemon at %s does not accept connections (%v); %s", path, err, stuckAdvice)
		}
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer c.Close()
	stream := streams(req.Cmd)
	// One deadline for the whole exchange; a stream's is renewed below.
	_ = c.SetDeadline(time.Now().Add(to.Reply))
	timedOut := func(err error, began bool) error {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &NoAnswerError{Socket: path, After: to.Reply, Stream: stream && began}
		}
		return fmt.Errorf("control socket: %w", err)
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return timedOut(err, false)
	}
	var r0 *renewing
	var sc *bufio.Scanner
	if stream {
		r0 = &renewing{c: c, d: to.Reply}
		sc = bufio.NewScanner(r0)
	} else {
		sc = bufio.NewScanner(c)
	}
	sc.Buffer(make([]byte, 64*1024), 64<<20) // a record line holds a whole payload
	sc.Split(lines)
	for sc.Scan() {
		var r Reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("control socket: bad reply: %w", err)
		}
		if r.Error != "" {
			return errors.New(r.Error)
		}
		if r.Done {
			return nil
		}
		if r.Heartbeat {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, errEndedEarly) {
		return timedOut(err, r0 != nil && r0.got > 0)
	}
	return errEndedEarly
}

// ErrEndedEarly is an answer cut short: the daemon stopped (or died) in
// the middle of it. For `inbox follow` that is how the stream ends.
var ErrEndedEarly = errors.New("control socket: the answer ended early (did the daemon stop?)")

var errEndedEarly = ErrEndedEarly

// lines splits at newlines like bufio.ScanLines, but a last line without
// its newline is an answer cut short (the daemon died, or a deadline
// passed mid-line), never a reply.
func lines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errEndedEarly
	}
	return 0, nil, nil
}

// renewing reads from c with a read deadline d from each read's start: the
// deadline bounds the daemon's silence, not the whole answer.
type renewing struct {
	_   noEq // never compared: no equality function in the binary
	c   net.Conn
	d   time.Duration
	got int64
}

func (r *renewing) Read(p []byte) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(r.d))
	n, err := r.c.Read(p)
	r.got += int64(n)
	return n, err
}
