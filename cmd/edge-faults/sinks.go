package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
)

// The bound on what a sink repeats after a SIGKILL (agent/sinks): what it
// delivered since its cursor's last commit, which is at most 1000 records
// and only those of the last second or so. sinkRepeatSlack is the "or so":
// the commit's own transaction and fsync, and the file's polling.
const (
	sinkRepeatMax   = 1000
	sinkRepeatSince = time.Second
	sinkRepeatSlack = 300 * time.Millisecond
)

// runSinks: numbered QoS 1 notifications (one in seven binary) stream
// while the agent, with a file sink and an http sink (an httptest server
// here), is SIGKILLed p.sinkKills times. After the last restart every
// acknowledged message must be stored and have reached each sink at least
// once, each sink's first deliveries in seq order and byte-exact, and what
// each run repeated after a kill within the bound. Then the http target
// answers 503 for p.sinkDown while another stream runs: failed counted,
// last_error set, every acknowledged message stored and the file sink
// keeping up meanwhile; once the target is back, everything is delivered.
func runSinks(e *env, p params, r *result) {
	rnd := rng(p, "sinks")
	m := e.scenarioBroker(r, "sinks", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	web := newSinkServer()
	defer web.close()
	dir := e.sub("sinks")
	file := filepath.Join(dir, "out", "notify.log")
	cfg := newAgentConfig("faults-sinks", m.URL)
	cfg.extra = fmt.Sprintf(`
[[sink]]
name = "log"
type = "file"
path = %q
format = "{seq} {payload}"
max_size = "256MiB"

[[sink]]
name = "web"
type = "http"
url = %q
timeout = "5s"
`, file, web.srv.URL+"/notify")
	cfgPath, err := e.writeConfig(dir, cfg)
	if err != nil {
		r.fail("%v", err)
		return
	}
	fl := &fileLog{path: file}
	stopPoll := fl.poll(20 * time.Millisecond)
	defer stopPoll()

	cur, err := e.startAgent(cfgPath, nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer func() { cur.kill() }()
	if _, err := waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.Connected }); err != nil {
		r.fail("first start: %v\n%s", err, tail(cur.Log(), 20))
		return
	}
	s := e.newStream(m.URL, "faults-sinks-pub", cfg.topic("notify"), "sinks", 2*time.Millisecond).start(0)
	defer s.finish()

	// The kills: each a random 1 to 2.5 s after the store opened, so at
	// every phase of the sinks' one-second commits.
	var kills []sinkKill
	for k := 0; k < p.sinkKills; k++ {
		if !cur.waitLog("store open", 10*time.Second) {
			r.fail("run %d: no \"store open\" within 10 s:\n%s", k+1, tail(cur.Log(), 10))
		}
		time.Sleep(time.Duration(1000+rnd.IntN(1500)) * time.Millisecond)
		cur.kill()
		at := time.Now()
		if !cur.killedBySIGKILL() {
			r.fail("run %d ended by itself (%v), not by SIGKILL:\n%s", k+1, cur.state, tail(cur.Log(), 15))
		}
		// Nothing more comes from the dead run: its lines and posts so far
		// are where the next run's begin.
		time.Sleep(20 * time.Millisecond)
		kills = append(kills, sinkKill{at: at, marks: map[string]int{"log": fl.sync(), "web": web.len()}})
		next, err := e.startAgent(cfgPath, nil)
		if err != nil {
			r.fail("%v", err)
			return
		}
		cur = next
		e.logf("sinks: kill %d/%d, %d acknowledged so far", k+1, p.sinkKills, s.ackedLen())
	}
	if !cur.waitLog("store open", 10*time.Second) {
		r.fail("final run: no \"store open\" within 10 s:\n%s", tail(cur.Log(), 10))
	}
	time.Sleep(time.Second) // the last run takes the stream a while too
	s.finish()
	acked := s.ackedCopy()
	rep, ok := allStored(r, cfg.dataDir, acked, 60*time.Second)
	if !ok {
		return
	}
	if rep.lost > 0 {
		r.fail("%d of %d acknowledged messages NOT stored (first %s)", rep.lost, rep.acked, rep.firstLost)
	}
	if _, err := waitSinks(cfg.dataDir, 30*time.Second, "log", "web"); err != nil {
		r.fail("after the kills, the sinks did not catch up: %v", err)
		return
	}

	// The http target down: 503 for p.sinkDown while another stream runs.
	web.down.Store(true)
	downAt := time.Now()
	s2 := e.newStream(m.URL, "faults-sinks-pub2", cfg.topic("notify"), "sinks-down", 2*time.Millisecond).start(0)
	time.Sleep(p.sinkDown - time.Second)
	s2.finish()
	acked2 := s2.ackedCopy()
	rep2, ok := allStored(r, cfg.dataDir, acked2, max(time.Until(downAt.Add(p.sinkDown)), 500*time.Millisecond))
	if !ok {
		return
	}
	if rep2.lost > 0 {
		r.fail("while the http target was down, %d of %d acknowledged messages NOT stored (first %s)", rep2.lost, rep2.acked, rep2.firstLost)
	}
	// Everything stored, the file sink at the end of it, the http sink
	// failing and saying so, all before the target is back.
	during, err := waitSinks(cfg.dataDir, max(time.Until(downAt.Add(p.sinkDown)), 500*time.Millisecond), "log")
	if err != nil {
		r.fail("the file sink did not keep up while the http target was down: %v", err)
	}
	time.Sleep(time.Until(downAt.Add(p.sinkDown)))
	web.down.Store(false)
	backAt := time.Now()
	downFor := backAt.Sub(downAt)
	switch k := during.Sinks["web"]; {
	case k.Failed == 0:
		r.fail("http target down %v: failed is 0 in status", downFor)
	case !strings.Contains(k.LastError, "503"):
		r.fail("http target down %v: last_error %q does not name the 503", downFor, k.LastError)
	case k.Lag == 0:
		r.fail("http target down %v: lag 0, yet it took nothing", downFor)
	}
	final, err := waitSinks(cfg.dataDir, 60*time.Second, "web")
	if err != nil {
		r.fail("after the http target came back: %v", err)
		return
	}
	caughtUp := time.Since(backAt)
	// Failed counts every attempt since the start; last_error stays.
	webDown := final.Sinks["web"]
	if !strings.Contains(webDown.LastError, "503") {
		r.fail("after the http target came back: last_error %q, want the 503 kept", webDown.LastError)
	}
	if k := final.Sinks["web"]; k.Dropped > 0 || final.Sinks["log"].Dropped > 0 {
		r.fail("records dropped before a sink had them: web %d, log %d", k.Dropped, final.Sinks["log"].Dropped)
	}
	if f := final.Sinks["log"].Failed; f > 0 {
		r.fail("the file sink failed %d times (last_error %q)", f, final.Sinks["log"].LastError)
	}

	// What each sink got, against the store and the acknowledged messages.
	recs, err := export(cfg.dataDir)
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	fl.sync()
	all := append(append([][]byte(nil), acked...), acked2...)
	checks := []sinkCheck{
		checkSink("log", fl.copy(), kills, recs, all),
		checkSink("web", web.copy(), kills, recs, all),
	}
	for _, c := range checks {
		for _, f := range c.failures {
			r.fail("%s sink: %s", c.name, f)
		}
	}

	r.fig("SIGKILLs while the stream ran", "%d; %d acknowledged, %d lost, %d stored twice (broker resends)", len(kills), rep.acked, rep.lost, rep.dups)
	for _, c := range checks {
		r.fig(c.name+" sink ("+map[string]string{"log": "file", "web": "http"}[c.name]+")", "%d of %d stored records (both streams) delivered, %d lost, first deliveries in seq order; %d repeats in %d deliveries",
			c.distinct, len(recs), c.lost, c.deliveries-c.distinct, c.deliveries)
		r.fig("  repeated after each kill", "%s (bound min(%d, deliveries of the %v before it): %s)", intList(c.repeats), sinkRepeatMax, sinkRepeatSince+sinkRepeatSlack, intList(c.bounds))
	}
	r.fig("http target down (503)", "%s: %d failed attempts (%d 503s answered), last_error %q; %d acknowledged meanwhile, %d lost; the file sink at lag 0 meanwhile",
		ms(downFor), webDown.Failed, web.refused.Load(), webDown.LastError, rep2.acked, rep2.lost)
	r.fig("after it came back", "all delivered %s later (retry backoff 1 s doubling, jitter)", ms(caughtUp))

	worst := 0
	repeats := 0
	for _, c := range checks {
		repeats += c.deliveries - c.distinct
		for _, n := range c.repeats {
			worst = max(worst, n)
		}
	}
	summarise("sinks", "%d SIGKILLs: file and http sinks got each of %d acknowledged, 0 lost, in order; %d repeats (at most %d after one kill)",
		len(kills), len(all), repeats, worst)
	if checks[0].lost+checks[1].lost > 0 {
		summarise("sinks", "%d SIGKILLs: %d LOST by the file sink, %d by the http sink", len(kills), checks[0].lost, checks[1].lost)
	}
	summarise("sinks-down", "http target down %s: %d failed, last_error set, %d stored meanwhile, all delivered %s after it was back",
		ms(downFor), webDown.Failed, rep2.acked-rep2.lost, ms(caughtUp))
	if err := cur.term(10 * time.Second); err != nil {
		r.fail("final run: %v", err)
	}
}

// sinkKill is one SIGKILL: when, and how many deliveries each sink had
// then (where the next run's begin).
type sinkKill struct {
	at    time.Time
	marks map[string]int
}

// delivery is one record a sink handed over: its seq, its payload as the
// sink wrote it (decoded) and when the suite saw it.
type delivery struct {
	seq     uint64
	payload []byte
	at      time.Time
}

// waitSinks waits until each named sink's cursor is at the inbox's last
// seq and returns that status.
func waitSinks(dataDir string, d time.Duration, names ...string) (status, error) {
	st, err := waitStatus(dataDir, d, func(s status) bool {
		for _, n := range names {
			if k, ok := s.Sinks[n]; !ok || s.Inbox.LastSeq == 0 || k.Cursor < s.Inbox.LastSeq {
				return false
			}
		}
		return true
	})
	if err != nil {
		var b strings.Builder
		for _, n := range names {
			k := st.Sinks[n]
			fmt.Fprintf(&b, "; %s cursor %d of %d, failed %d, last_error %q", n, k.Cursor, st.Inbox.LastSeq, k.Failed, k.LastError)
		}
		return st, fmt.Errorf("%v%s", err, b.String())
	}
	return st, nil
}

// sinkServer is the http sink's target: it keeps every POST it answered
// 200, in arrival order, and answers 503 while down.
type sinkServer struct {
	srv     *httptest.Server
	down    atomic.Bool
	refused atomic.Int64

	mu  sync.Mutex
	got []delivery
}

func newSinkServer() *sinkServer {
	s := &sinkServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return // the agent was killed mid-request
		}
		if s.down.Load() {
			s.refused.Add(1)
			http.Error(w, "target down for the fault suite", http.StatusServiceUnavailable)
			return
		}
		seq, err := strconv.ParseUint(req.Header.Get("X-Edge-Seq"), 10, 64)
		if err != nil {
			http.Error(w, "no X-Edge-Seq", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, delivery{seq: seq, payload: body, at: time.Now()})
		s.mu.Unlock()
	}))
	return s
}

func (s *sinkServer) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *sinkServer) copy() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.got...)
}

func (s *sinkServer) close() { s.srv.Close() }

// fileLog follows the file sink's "{seq} {payload}" lines as they are
// written, stamping each when it is read.
type fileLog struct {
	path string

	mu    sync.Mutex
	off   int64
	carry []byte // a line not finished yet
	got   []delivery
}

// poll reads the file every d until the returned stop is called.
func (f *fileLog) poll(d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f.sync()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// sync reads what was appended since the last read and returns the number
// of lines read in all.
func (f *fileLog) sync() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.Open(f.path)
	if err != nil {
		return len(f.got)
	}
	defer fh.Close()
	if _, err := fh.Seek(f.off, io.SeekStart); err != nil {
		return len(f.got)
	}
	b, _ := io.ReadAll(fh)
	f.off += int64(len(b))
	now := time.Now()
	b = append(f.carry, b...)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		f.got = append(f.got, parseSinkLine(b[:i], now))
		b = b[i+1:]
	}
	f.carry = append([]byte(nil), b...)
	return len(f.got)
}

func (f *fileLog) copy() []delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivery(nil), f.got...)
}

// parseSinkLine reads "{seq} {payload}": the payload as the sink writes it,
// escaped as Go's %q without the quotes when it is not printable UTF-8
// (none of the suite's text payloads holds a quote or a backslash, so
// unquoting either form gives the payload). A line that does not parse
// gets seq 0, which no record has.
func parseSinkLine(line []byte, at time.Time) delivery {
	d := delivery{at: at, payload: append([]byte(nil), line...)}
	seq, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return d
	}
	n, err := strconv.ParseUint(string(seq), 10, 64)
	if err != nil {
		return d
	}
	d.seq = n
	d.payload = append([]byte(nil), rest...)
	if u, err := strconv.Unquote(`"` + string(rest) + `"`); err == nil {
		d.payload = []byte(u)
	}
	return d
}

// sinkCheck is what one sink got, against the store.
type sinkCheck struct {
	name                 string
	deliveries, distinct int
	lost                 int   // stored records never delivered
	repeats, bounds      []int // after each kill: repeated, and the bound
	failures             []string
}

// checkSink checks a sink's deliveries ds against the stored records and
// the acknowledged payloads: every stored record delivered at least once,
// byte-exact, first deliveries in seq order, every acknowledged payload
// among them; and, for each kill, that the run after it repeated no more
// than the bound: min(1000, what the killed run delivered in the last
// second or so before the kill).
func checkSink(name string, ds []delivery, kills []sinkKill, recs []control.Record, acked [][]byte) sinkCheck {
	c := sinkCheck{name: name, deliveries: len(ds)}
	fail := func(format string, args ...any) {
		if len(c.failures) < 5 {
			c.failures = append(c.failures, fmt.Sprintf(format, args...))
		}
	}
	stored := make(map[uint64][]byte, len(recs))
	for _, rec := range recs {
		b, err := rec.Bytes()
		if err != nil {
			fail("record %d: %v", rec.Seq, err)
			continue
		}
		stored[rec.Seq] = b
	}
	seen := map[uint64]bool{}
	got := map[string]bool{}
	var last uint64
	for i, d := range ds {
		want, ok := stored[d.seq]
		switch {
		case !ok:
			fail("delivery %d: seq %d is no stored record (%q)", i+1, d.seq, control.PayloadPrefix(d.payload, 60))
			continue
		case !bytes.Equal(d.payload, want):
			fail("delivery %d, seq %d: payload %q, stored %q", i+1, d.seq, control.PayloadPrefix(d.payload, 60), control.PayloadPrefix(want, 60))
		}
		if seen[d.seq] {
			continue
		}
		if d.seq < last {
			fail("delivery %d: seq %d first delivered after seq %d", i+1, d.seq, last)
		}
		seen[d.seq], last = true, d.seq
		got[string(want)] = true
	}
	c.distinct = len(seen)
	for seq := range stored {
		if !seen[seq] {
			c.lost++
		}
	}
	if c.lost > 0 {
		var miss []uint64
		for seq := range stored {
			if !seen[seq] {
				miss = append(miss, seq)
			}
		}
		sort.Slice(miss, func(i, j int) bool { return miss[i] < miss[j] })
		fail("%d of %d stored records never delivered (first seq %d)", c.lost, len(stored), miss[0])
	}
	lostAcked := 0
	for _, p := range acked {
		if !got[string(p)] {
			lostAcked++
		}
	}
	if lostAcked > 0 {
		fail("%d of %d acknowledged messages never delivered", lostAcked, len(acked))
	}

	// Repeats after each kill, against what the killed run delivered in
	// the second (and slack) before it.
	for k, kl := range kills {
		from := kl.marks[name]
		to := len(ds)
		if k+1 < len(kills) {
			to = kills[k+1].marks[name]
		}
		from, to = min(from, len(ds)), min(max(to, from), len(ds))
		before := map[uint64]bool{}
		window := 0
		for _, d := range ds[:from] {
			before[d.seq] = true
			if !d.at.Before(kl.at.Add(-sinkRepeatSince - sinkRepeatSlack)) {
				window++
			}
		}
		rep := 0
		for _, d := range ds[from:to] {
			if before[d.seq] {
				rep++
			}
		}
		bound := min(sinkRepeatMax, window)
		c.repeats = append(c.repeats, rep)
		c.bounds = append(c.bounds, bound)
		if rep > bound {
			fail("after kill %d: %d repeated, over the bound %d (min(%d, the %d delivered in the %v before the kill))",
				k+1, rep, bound, sinkRepeatMax, window, sinkRepeatSince+sinkRepeatSlack)
		}
	}
	return c
}

func intList(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}
