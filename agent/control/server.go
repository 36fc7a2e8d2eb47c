package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// Inbox is what the server reads from the store.
type Inbox interface {
	Get(seq uint64) (store.Record, error)
	Scan(after uint64, fn func(store.Record) error) error
	Tail(n int, fn func(store.Record) error) error
}

// StatusFunc returns the status document.
type StatusFunc func() any

// Actions carries out the requests that change something.
type Actions interface {
	SetRelay(name string, on bool, dur time.Duration) (RelayApplied, error)
	Identify(d time.Duration)
	// LEDTest plays every pattern, calling announce as each starts, and
	// returns when done.
	LEDTest(each time.Duration, announce func(state string)) error
	// Follow calls fn for every record after `after`, then for each new
	// one as it is stored, until stop closes, fn fails or the daemon stops.
	Follow(stop <-chan struct{}, after uint64, fn func(store.Record) error) error
	// RewindSink makes a sink deliver again from seq.
	RewindSink(name string, seq uint64) error
	// SimInput drives an input of the simulated board as a wire would;
	// refused on real hardware.
	SimInput(name string, active bool) error
}

// Server answers control requests on a unix socket.
type Server struct {
	ln     net.Listener
	path   string
	inbox  Inbox
	status StatusFunc
	acts   Actions
	log    *slog.Logger

	wg        sync.WaitGroup
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// Listen creates the socket in dir with mode 0660 (group-readable, never
// world-writable), replacing a stale one left by a crash.
func Listen(dir string, inbox Inbox, status StatusFunc, acts Actions, log *slog.Logger) (*Server, error) {
	path := filepath.Join(dir, SocketName)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: another edge-agent is running with this data_dir", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return Serve(ln, inbox, status, acts, log), nil
}

// Serve answers control requests on ln, which Close closes. Listen is the
// daemon's way in; Serve lets a caller (a test) bring its own listener.
func Serve(ln net.Listener, inbox Inbox, status StatusFunc, acts Actions, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{ln: ln, path: ln.Addr().String(), inbox: inbox, status: status, acts: acts, log: log, done: make(chan struct{})}
	s.wg.Add(1)
	go s.serve()
	return s
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Accept's backoff after a failure, as net/http's Server does it, and the
// quiet after which a failure starts a new burst in the log.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
	acceptBurstGap = time.Minute
)

// serve accepts until the listener is closed. Any other Accept error
// (EMFILE at the file limit, ENFILE, ECONNABORTED) is retried after a
// backoff: once it ended the loop for good and the daemon ran on, its
// control socket dead. A burst of failures (at the file limit, accepts
// fail and succeed in turn as descriptors come and go) is logged once as
// it starts and once when an accept first works again.
func (s *Server) serve() {
	defer s.wg.Done()
	var (
		delay     time.Duration
		failed    int // in this burst
		lastFail  time.Time
		recovered bool // logged for this burst
	)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.closing() {
				return
			}
			if failed == 0 || time.Since(lastFail) > acceptBurstGap {
				s.log.Warn("control socket: accept failed; retrying with a backoff", "err", err)
				failed, recovered = 0, false
			}
			failed++
			lastFail = time.Now()
			if delay == 0 {
				delay = acceptRetryMin
			} else {
				delay = min(2*delay, acceptRetryMax)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		if failed > 0 && !recovered {
			s.log.Info("control socket: accept works again", "failed_accepts", failed)
			recovered = true
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *Server) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close stops accepting, waits for answers in progress (bounded by their
// write deadline) and removes the socket. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ln.Close()
		s.wg.Wait()
	})
	return nil
}

// MaxRequestLine bounds a request line, its newline included. Requests are
// short JSON; without a bound a client sending bytes and no newline grew the
// daemon by as much as it sent (600 MiB took it to 748 MB).
const MaxRequestLine = 64 << 10

func (s *Server) handle(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Reading one byte past the bound tells an over-long line from one
	// that ends exactly at it.
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequestLine+1), 4096).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	w := newReplyWriter(c)
	if len(line) > MaxRequestLine {
		// Answer, then close with the rest unread: the client's writes
		// fail, and nothing more is read.
		w.fail(fmt.Errorf("request line longer than %d bytes (a request is one short JSON line)", MaxRequestLine))
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		w.fail(fmt.Errorf("bad request: %w", err))
		return
	}
	switch req.Cmd {
	case CmdStatus:
		b, err := json.Marshal(s.status())
		if err != nil {
			w.fail(err)
			return
		}
		w.send(Reply{Status: b})
	case CmdInboxShow:
		r, err := s.inbox.Get(req.Seq)
		if errors.Is(err, store.ErrNotFound) {
			w.fail(fmt.Errorf("no record with seq %d (pruned, or not received yet)", req.Seq))
			return
		}
		if err != nil {
			w.fail(err)
			return
		}
		rec := FromStore(r)
		w.send(Reply{Record: &rec})
	case CmdInboxList, CmdInboxExport:
		n := req.N
		if n < 0 {
			w.fail(fmt.Errorf("bad n %d: the number of records must be positive", n))
			return
		}
		if req.Cmd == CmdInboxList && n <= 0 {
			n = 20
		}
		if err := s.stream(w, n); err != nil {
			w.fail(err)
			return
		}
	case CmdRelaySet, CmdLEDIdentify:
		var d time.Duration
		if req.For != "" {
			var err error
			if d, err = time.ParseDuration(req.For); err != nil || d <= 0 {
				w.fail(fmt.Errorf("bad duration %q (like 30s, 5m)", req.For))
				return
			}
		}
		if s.acts == nil {
			w.fail(errors.New("not available"))
			return
		}
		if req.Cmd == CmdLEDIdentify {
			if d == 0 {
				d = 30 * time.Second
			}
			if d > MaxIdentify {
				w.fail(fmt.Errorf("identify for %v: at most %v", d, MaxIdentify))
				return
			}
			s.acts.Identify(d)
		} else {
			applied, err := s.acts.SetRelay(req.Relay, req.On, d)
			if err != nil {
				w.fail(err)
				return
			}
			w.send(Reply{Relay: &applied})
		}
	case CmdInboxFollow:
		if s.acts == nil {
			w.fail(errors.New("not available"))
			return
		}
		s.follow(w, req.Seq)
	case CmdSinkRewind:
		if s.acts == nil {
			w.fail(errors.New("not available"))
			return
		}
		if req.Name == "" || req.Seq == 0 {
			w.fail(errors.New("sink rewind needs a sink name and a seq of 1 or more"))
			return
		}
		if err := s.acts.RewindSink(req.Name, req.Seq); err != nil {
			w.fail(err)
			return
		}
	case CmdSimInput:
		if s.acts == nil {
			w.fail(errors.New("not available"))
			return
		}
		if err := s.acts.SimInput(req.Name, req.On); err != nil {
			w.fail(err)
			return
		}
	case CmdMetrics:
		// Optional: an agent that refused its configuration has no
		// counters to show.
		m, ok := s.acts.(interface{ Metrics() []byte })
		if !ok {
			w.fail(errors.New("no metrics: the agent is not running its configuration (see edge-agent status)"))
			return
		}
		w.send(Reply{Text: string(m.Metrics())})
	case CmdLEDTest:
		if s.acts == nil {
			w.fail(errors.New("not available"))
			return
		}
		each := 3 * time.Second
		if req.Each != "" {
			d, err := time.ParseDuration(req.Each)
			if err != nil || d <= 0 || d > time.Minute {
				w.fail(fmt.Errorf("bad duration %q for each pattern (like 3s, at most 1m)", req.Each))
				return
			}
			each = d
		}
		if err := s.acts.LEDTest(each, func(state string) { w.send(Reply{State: state}) }); err != nil {
			w.fail(err)
			return
		}
	default:
		w.fail(fmt.Errorf("unknown request %q", req.Cmd))
		return
	}
	w.send(Reply{Done: true})
}

var errClientGone = errors.New("client went away")

// stream sends the last n records (all when n <= 0), oldest first. The
// store reads in short transactions and calls back outside them, so a slow
// client cannot hold a bbolt read transaction open
// (docs/dependencies.md#bbolt-32-bit-maxsize).
// followHeartbeat is how often an idle follow says it is alive: well
// within the client's renewed read deadline.
const followHeartbeat = 3 * time.Second

// follow streams records from `from` (0: only new ones) as they are stored,
// each flushed at once, with a heartbeat while idle, until the client goes
// (a write fails), the server closes or the daemon stops.
func (s *Server) follow(w *replyWriter, from uint64) {
	stop := make(chan struct{})
	var once sync.Once
	quit := func() { once.Do(func() { close(stop) }) }
	var mu sync.Mutex // the heartbeat and the records share w
	send := func(r Reply) bool {
		mu.Lock()
		defer mu.Unlock()
		return w.send(r)
	}
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		t := time.NewTicker(followHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-s.done:
				quit()
				return
			case <-t.C:
				if !send(Reply{Heartbeat: true}) {
					quit()
					return
				}
			}
		}
	}()
	after := uint64(0)
	if from > 0 {
		after = from - 1
	} else {
		after = ^uint64(0) // only what is stored from now on
	}
	err := s.acts.Follow(stop, after, func(r store.Record) error {
		rec := FromStore(r)
		if !send(Reply{Record: &rec}) {
			return errClientGone
		}
		return nil
	})
	quit()
	<-beatDone
	if err != nil && !errors.Is(err, errClientGone) {
		send(Reply{Error: err.Error()})
	}
}

func (s *Server) stream(w *replyWriter, n int) error {
	send := func(r store.Record) error {
		rec := FromStore(r)
		if !w.queue(Reply{Record: &rec}) {
			return errClientGone
		}
		return nil
	}
	var err error
	if n > 0 {
		err = s.inbox.Tail(n, send)
	} else {
		err = s.inbox.Scan(0, send)
	}
	if errors.Is(err, errClientGone) {
		return nil
	}
	return err
}

// replyWriter writes replies as JSON lines through a buffer: a stream's
// records leave in 4 KiB writes (an export of 100,000 records was 100,000
// write(2)s), every other reply at once.
type replyWriter struct {
	_   noEq // never compared: no equality function in the binary
	c   net.Conn
	bw  *bufio.Writer
	enc *json.Encoder // onto bw
	err error
}

func newReplyWriter(c net.Conn) *replyWriter {
	bw := bufio.NewWriter(c)
	return &replyWriter{c: c, bw: bw, enc: json.NewEncoder(bw)}
}

// send writes r and flushes it to the client.
func (w *replyWriter) send(r Reply) bool {
	return w.queue(r) && w.flush()
}

// queue writes r into the buffer; it reaches the client when the buffer
// fills or at the next send.
func (w *replyWriter) queue(r Reply) bool {
	if w.err != nil {
		return false
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	w.err = w.enc.Encode(r)
	return w.err == nil
}

func (w *replyWriter) flush() bool {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err == nil
}

func (w *replyWriter) fail(err error) { w.send(Reply{Error: err.Error()}) }
