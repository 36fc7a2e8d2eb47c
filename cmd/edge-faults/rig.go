package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// Credentials of the brokers the suite starts.
const (
	agentUser = "gw-faults"
	agentPass = "faults-secret-never-logged"
	cloudUser = "cloud"
	cloudPass = "cloud-pass"
)

// env is what every scenario shares: the agent binary, a work directory and
// a throw-away PKI.
type env struct {
	agentBin string
	dir      string
	pki      *agenttest.PKI
	verbose  bool

	mu     sync.Mutex
	agents []*agentProc // every agent started, killed at exit
	seq    int
}

// sub makes a fresh directory for one scenario or agent.
func (e *env) sub(name string) string {
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	d := filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		panic(err)
	}
	return d
}

func (e *env) logf(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(os.Stderr, "  · "+format+"\n", args...)
	}
}

// broker starts a mosquitto with TLS, the agent's and the cloud's users, a
// queue far above what a scenario produces
// (docs/deploying.md#the-broker), and optionally persistence.
func (e *env) broker(name string, opts agenttest.MosquittoOptions) (*agenttest.Mosquitto, error) {
	opts.PKI = e.pki
	if opts.Users == nil {
		opts.Users = map[string]string{agentUser: agentPass, cloudUser: cloudPass}
	}
	if opts.Dir == "" {
		opts.Dir = e.sub("mosquitto-" + name)
	}
	opts.Extra = append(opts.Extra, "max_queued_messages 1000000")
	return agenttest.StartMosquitto(opts)
}

// scenarioBroker starts the scenario's broker (see broker); a failure is
// reported to r and the result is nil. The caller stops it.
func (e *env) scenarioBroker(r *result, name string, opts agenttest.MosquittoOptions) *agenttest.Mosquitto {
	m, err := e.broker(name, opts)
	if err != nil {
		r.fail("%v", err)
		return nil
	}
	return m
}

// agentConfig is one agent's configuration file.
type agentConfig struct {
	device  string
	dataDir string
	broker  string
	mqtt    map[string]string // extra [mqtt] keys, values as TOML
	extra   string            // appended: [[relay]], [store]
}

func newAgentConfig(device, brokerURL string) *agentConfig {
	return &agentConfig{device: device, broker: brokerURL, mqtt: map[string]string{}}
}

// write writes config.toml and the password file in dir and returns the
// config's path. data_dir is dir/data unless c.dataDir is set.
func (e *env) writeConfig(dir string, c *agentConfig) (string, error) {
	if c.dataDir == "" {
		c.dataDir = filepath.Join(dir, "data")
	}
	pass := filepath.Join(dir, "mqtt.pass")
	if err := os.WriteFile(pass, []byte(agentPass+"\n"), 0o600); err != nil {
		return "", err
	}
	mq := map[string]string{
		"broker":        fmt.Sprintf("%q", c.broker),
		"username":      fmt.Sprintf("%q", agentUser),
		"password_file": fmt.Sprintf("%q", pass),
		"ca_file":       fmt.Sprintf("%q", e.pki.CAFile),
		"keepalive":     `"5s"`,
	}
	for k, v := range c.mqtt {
		mq[k] = v
	}
	keys := make([]string, 0, len(mq))
	for k := range mq {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = %q\ndata_dir = %q\n\n[mqtt]\n", c.device, c.dataDir)
	for _, k := range keys {
		if mq[k] != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, mq[k])
		}
	}
	b.WriteString("\n[hw]\nbackend = \"sim\"\n")
	b.WriteString(c.extra)
	path := filepath.Join(dir, "config.toml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// topic is the device's topic under /sys/<device>/thing/push/, e.g.
// "notify" or "reply".
func (c *agentConfig) topic(leaf string) string {
	return "/sys/" + c.device + "/thing/push/" + leaf
}

// startConnected writes cfg in dir, starts the agent on it (under wrap, as
// startAgent) and waits up to 15 s for it to report connected. A failure is
// reported to r, a failed wait through waitFail when it is not nil (else as
// the others, "%v"); the agent is then killed and ok is false. Otherwise the
// caller kills a; st is the status that showed it connected.
func (e *env) startConnected(r *result, dir string, cfg *agentConfig, waitFail func(a *agentProc, err error), wrap ...string) (cfgPath string, a *agentProc, st status, ok bool) {
	cfgPath, err := e.writeConfig(dir, cfg)
	if err != nil {
		r.fail("%v", err)
		return "", nil, st, false
	}
	a, err = e.startAgent(cfgPath, nil, wrap...)
	if err != nil {
		r.fail("%v", err)
		return "", nil, st, false
	}
	st, err = waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.Connected })
	if err != nil {
		if waitFail != nil {
			waitFail(a, err)
		} else {
			r.fail("%v", err)
		}
		a.kill()
		return "", nil, st, false
	}
	return cfgPath, a, st, true
}

// agentProc is one run of the real edge-agent binary.
type agentProc struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time

	mu  sync.Mutex
	buf bytes.Buffer

	done  chan struct{}
	state *os.ProcessState
}

func (p *agentProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

// Log is everything the process wrote so far.
func (p *agentProc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// startAgent runs `wrap... agentBin run -config cfg` with extra environment.
// wrap is a prefix such as `ip netns exec NS` or `strace …`.
func (e *env) startAgent(cfg string, extraEnv []string, wrap ...string) (*agentProc, error) {
	args := append(append([]string{}, wrap...), e.agentBin, "run", "-config", cfg)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	// The agent dies with the suite if the suite is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &agentProc{cmd: cmd, done: make(chan struct{}), logPath: strings.TrimSuffix(cfg, ".toml") + ".log"}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	out := io.MultiWriter(p, f)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	p.started = time.Now()
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.agents = append(e.agents, p)
	e.mu.Unlock()
	return p, nil
}

func (p *agentProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the agent (and to the process it runs under, for
// a wrapper such as strace) and waits for it.
func (p *agentProc) kill() {
	if !p.alive() {
		return
	}
	for _, pid := range childPids(p.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to d; it reports how the process ended.
func (p *agentProc) term(d time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("no exit within %v of SIGTERM", d)
	}
	if !p.state.Success() {
		return fmt.Errorf("exit after SIGTERM: %v", p.state)
	}
	return nil
}

// killedBySIGKILL reports whether the run ended by SIGKILL (ours, or one
// injected into it), as opposed to exiting by itself.
func (p *agentProc) killedBySIGKILL() bool {
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// childPids lists the direct children of pid (the agent under strace).
func childPids(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var c int
			if _, err := fmt.Sscan(f, &c); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// waitLog waits until the log contains s, the process exits, or d passes.
func (p *agentProc) waitLog(s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Log(), s) {
			return true
		}
		if !p.alive() {
			return strings.Contains(p.Log(), s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func (e *env) killAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.agents {
		p.kill()
	}
}

// status is the subset of `status -json` (docs/design.md#status-document)
// the suite reads.
type status struct {
	State     string    `json:"state"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	Inbox     struct {
		Total   int    `json:"total"`
		Pending int    `json:"pending"`
		LastSeq uint64 `json:"last_seq"`
	} `json:"inbox"`
	Outbox struct {
		Pending int `json:"pending"`
	} `json:"outbox"`
	Relays map[string]struct {
		On bool `json:"on"`
	} `json:"relays"`
	LEDs             map[string]string `json:"leds"`
	LastError        string            `json:"last_error"`
	StoredSinceStart uint64            `json:"stored_since_start"`
	Ingest           struct {
		Oversize uint64 `json:"oversize"`
		Refused  uint64 `json:"refused"`
	} `json:"ingest"`
	Sinks map[string]sinkStatus `json:"sinks"`
}

// sinkStatus is one [[sink]] in the status document.
type sinkStatus struct {
	Cursor    uint64 `json:"cursor"`
	Lag       uint64 `json:"lag"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	LastError string `json:"last_error"`
}

func getStatus(dataDir string) (status, error) {
	var st status
	err := control.Call(dataDir, control.Request{Cmd: control.CmdStatus}, func(r control.Reply) error {
		return json.Unmarshal(r.Status, &st)
	})
	return st, err
}

// waitStatus polls until ok accepts the status, or fails after d.
func waitStatus(dataDir string, d time.Duration, ok func(status) bool) (status, error) {
	deadline := time.Now().Add(d)
	var st status
	var err error
	for time.Now().Before(deadline) {
		st, err = getStatus(dataDir)
		if err == nil && ok(st) {
			return st, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return st, fmt.Errorf("status not reached within %v: %w", d, err)
	}
	return st, fmt.Errorf("status not reached within %v: state=%s connected=%v inbox=%d pending=%d outbox=%d last_error=%q",
		d, st.State, st.Connected, st.Inbox.Total, st.Inbox.Pending, st.Outbox.Pending, st.LastError)
}

// export returns every stored record, oldest first.
func export(dataDir string) ([]control.Record, error) {
	var recs []control.Record
	err := control.Call(dataDir, control.Request{Cmd: control.CmdInboxExport}, func(r control.Reply) error {
		recs = append(recs, *r.Record)
		return nil
	})
	return recs, err
}

// counts maps payload to how often it is stored.
func counts(recs []control.Record) (map[string]int, error) {
	m := make(map[string]int, len(recs))
	for _, r := range recs {
		b, err := r.Bytes()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", r.Seq, err)
		}
		m[string(b)]++
	}
	return m, nil
}

// checkStoreOffline opens a copy of the store's files (the database and,
// if there is one, the journal) with the store's own Open, which runs the
// integrity check (page bounds and bbolt's Tx.Check) and replays the
// journal's groups, and returns the relay states it records. A copy, so
// that a repair of a torn meta page, or the zeros Open writes into a short
// journal, hide nothing from the agent's own next start; and both files,
// so that the check sees what that start sees. scan, if not nil, is called
// for every record the copy holds, oldest first.
func checkStoreOffline(dataDir, scratch string, scan func(store.Record) error) (map[string]store.RelayState, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, store.FileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // killed before it was created
	}
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(scratch, "check")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, store.FileName), b, 0o600); err != nil {
		return nil, err
	}
	switch j, err := os.ReadFile(filepath.Join(dataDir, store.JournalName)); {
	case errors.Is(err, os.ErrNotExist): // killed before it was created
	case err != nil:
		return nil, err
	default:
		if err := os.WriteFile(filepath.Join(dir, store.JournalName), j, 0o600); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Stats(); err != nil {
		return nil, err
	}
	if scan != nil {
		if err := db.Scan(0, scan); err != nil {
			return nil, err
		}
	}
	relays, err := db.Relays()
	if err != nil {
		return nil, err
	}
	return relays, db.Close()
}

// publisher connects a cloud-side client (clean session, no auto-reconnect).
func (e *env) publisher(brokerURL, id string) (mqtt.Client, error) {
	return agenttest.Publisher(brokerURL, e.pki, cloudUser, cloudPass, id)
}

// cloudClients connects the cloud side for cfg's device: a reply log on its
// reply topic (client id <id>-replies) and a publisher (<id>-pub). A
// failure is reported to r, whatever was connected is closed again, and ok
// is false; otherwise the caller closes both.
func (e *env) cloudClients(r *result, brokerURL string, cfg *agentConfig, id string) (rl *replyLog, pub mqtt.Client, ok bool) {
	rl, err := e.replies(brokerURL, cfg.topic("reply"), id+"-replies")
	if err != nil {
		r.fail("%v", err)
		return nil, nil, false
	}
	pub, err = e.publisher(brokerURL, id+"-pub")
	if err != nil {
		r.fail("%v", err)
		rl.close()
		return nil, nil, false
	}
	return rl, pub, true
}

// replyLog subscribes to a reply topic and keeps every reply in arrival
// order.
type replyLog struct {
	c  mqtt.Client
	mu sync.Mutex
	// all replies in arrival order, decoded.
	all []map[string]any
	raw [][]byte
}

func (e *env) replies(brokerURL, topic, id string) (*replyLog, error) {
	o, err := agenttest.ClientOptions(brokerURL, e.pki, cloudUser, cloudPass, id)
	if err != nil {
		return nil, err
	}
	rl := &replyLog{}
	c, err := agenttest.Connect(o)
	if err != nil {
		return nil, err
	}
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var v map[string]any
		_ = json.Unmarshal(m.Payload(), &v) // a nil v is checked as "not JSON"
		rl.mu.Lock()
		rl.all = append(rl.all, v)
		rl.raw = append(rl.raw, append([]byte(nil), m.Payload()...))
		rl.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s: %v", topic, tok.Error())
	}
	rl.c = c
	return rl, nil
}

func (rl *replyLog) snapshot() ([]map[string]any, [][]byte) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return append([]map[string]any(nil), rl.all...), append([][]byte(nil), rl.raw...)
}

func (rl *replyLog) len() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.all)
}

func (rl *replyLog) close() { rl.c.Disconnect(100) }

// byID groups the replies by id ("" for id null).
func byID(all []map[string]any) map[string][]map[string]any {
	m := map[string][]map[string]any{}
	for _, v := range all {
		id, _ := v["id"].(string)
		m[id] = append(m[id], v)
	}
	return m
}

func errCode(v map[string]any) string {
	if e, ok := v["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	return ""
}

// stream publishes numbered QoS 1 notifications and remembers which the
// broker acknowledged: those must end up in the inbox. It reconnects when
// the broker goes away (a message whose PUBACK never came is not counted).
type stream struct {
	e     *env
	url   string
	id    string
	topic string
	tag   string
	pace  time.Duration
	// payload makes message i; nil = textOrBinary.
	payload func(i int) []byte

	mu     sync.Mutex
	acked  [][]byte
	failed int
	sent   int

	stop chan struct{}
	done chan struct{}
}

func (e *env) newStream(url, id, topic, tag string, pace time.Duration) *stream {
	return &stream{e: e, url: url, id: id, topic: topic, tag: tag, pace: pace,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// textOrBinary is message i: numbered text, and one in seven binary with
// every byte value (byte-exactness on both).
func textOrBinary(tag string, i int) []byte {
	if i%7 == 3 {
		b := []byte(fmt.Sprintf("%s-bin-%07d:", tag, i))
		for v := 0; v < 256; v++ {
			b = append(b, byte(v))
		}
		return b
	}
	return []byte(fmt.Sprintf("%s-msg-%07d", tag, i))
}

// run publishes until stopped or n messages (n <= 0: no limit).
func (s *stream) run(n int) {
	defer close(s.done)
	var c mqtt.Client
	defer func() {
		if c != nil {
			c.Disconnect(100)
		}
	}()
	for i := 0; n <= 0 || i < n; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		for c == nil || !c.IsConnectionOpen() {
			if c != nil {
				c.Disconnect(0)
			}
			var err error
			c, err = s.e.publisher(s.url, s.id)
			if err != nil {
				c = nil
				select {
				case <-s.stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		var p []byte
		if s.payload != nil {
			p = s.payload(i)
		} else {
			p = textOrBinary(s.tag, i)
		}
		err := agenttest.PublishQoS1(c, s.topic, p, 10*time.Second)
		s.mu.Lock()
		s.sent++
		if err == nil {
			s.acked = append(s.acked, p)
		} else {
			s.failed++
		}
		s.mu.Unlock()
		if s.pace > 0 {
			time.Sleep(s.pace)
		}
	}
}

func (s *stream) start(n int) *stream { go s.run(n); return s }

func (s *stream) finish() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *stream) ackedCopy() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.acked...)
}

func (s *stream) ackedLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// lossReport compares what the broker acknowledged with what is stored.
type lossReport struct {
	acked, lost, dups int
	firstLost         string
}

func compare(acked [][]byte, stored map[string]int) lossReport {
	r := lossReport{acked: len(acked)}
	seen := map[string]bool{}
	for _, p := range acked {
		if seen[string(p)] {
			continue
		}
		seen[string(p)] = true
		c := stored[string(p)]
		if c == 0 {
			r.lost++
			if r.firstLost == "" {
				r.firstLost = control.PayloadPrefix(p, 40)
			}
		}
		if c > 1 {
			r.dups += c - 1
		}
	}
	return r
}

// waitAllStored waits until every acknowledged payload is in the inbox, or
// the inbox stopped growing for quiet, or d passed; then reports.
func waitAllStored(dataDir string, acked [][]byte, d, quiet time.Duration) (lossReport, error) {
	deadline := time.Now().Add(d)
	lastTotal, lastChange := -1, time.Now()
	for {
		st, err := getStatus(dataDir)
		if err == nil && st.Inbox.Total != lastTotal {
			lastTotal, lastChange = st.Inbox.Total, time.Now()
		}
		if err == nil && st.Inbox.Total >= len(acked) || time.Now().After(deadline) || time.Since(lastChange) > quiet {
			recs, err := export(dataDir)
			if err != nil {
				return lossReport{}, err
			}
			stored, err := counts(recs)
			if err != nil {
				return lossReport{}, err
			}
			r := compare(acked, stored)
			if r.lost == 0 || time.Now().After(deadline) || time.Since(lastChange) > quiet {
				return r, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allStored is waitAllStored (10 s quiet) with the report added to the
// totals; a failed wait is reported to r and ok is false.
func allStored(r *result, dataDir string, acked [][]byte, d time.Duration) (rep lossReport, ok bool) {
	rep, err := waitAllStored(dataDir, acked, d, 10*time.Second)
	if err != nil {
		r.fail("%v", err)
		return rep, false
	}
	tally(rep)
	return rep, true
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
