package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/agent/metrics"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/sinks"
	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// Options are the daemon's inputs that do not come from the config file.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Ready, when set, is called once the store is open, the relays and
	// LEDs are initialised and the control socket listens (systemd's
	// READY=1): before the network, which may take long to come.
	Ready func()
	// Alive, when set, is called every AliveEvery while the agent's loops
	// are responsive (systemd's WATCHDOG=1); a stuck loop stops the calls.
	Alive      func()
	AliveEvery time.Duration
	// Failpoint, when set, runs after a relay command moved its relay and
	// before its reply is recorded; the fault tests kill the process there.
	Failpoint func()
}

const (
	// Reconnect pacing: the first retry comes within a second, later ones
	// double up to a cap near a minute (each jittered).
	reconnectMin = time.Second
	reconnectMax = 60 * time.Second

	// Store retries (a full disk): soon at first, then every few seconds.
	storeRetryMin = 250 * time.Millisecond
	storeRetryMax = 5 * time.Second

	// shutdownTimeout bounds SIGTERM to exit, whatever is running:
	// systemd's default stop timeout is 90 s, a technician's patience much
	// less.
	shutdownTimeout = 8 * time.Second
)

// Run is the daemon: New, then Daemon.Run until ctx ends.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	d, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// Daemon is the agent. It owns every part and every goroutine it starts:
//
//	part        goroutine           what it owns
//	store       -                   the bbolt file
//	relays      (the dispatcher's)  the relay lines
//	panel       the panel's own     the LEDs; shows health's state
//	session     session.run         the paho client and its connection
//	dispatcher  dispatcher.run      the relay bank: commands, CLI, deadlines,
//	                                input presses, feedback, offline policy, events
//	inputs      one per [[input]]   its line's edges, debounced into changes
//	writer      writer.run          the write path: commit, then PUBACK
//	sinks       one per [[sink]]    each sink's cursor and delivery
//	control     control.Server      the unix socket and its connections
//	watchdog    watchdog            systemd's WATCHDOG=1 pings
//
// Run starts the parts in that order and stops them in reverse, under one
// deadline: the writer finishes its commit and sends its acks while the
// session is still connected, the dispatcher finishes its command, and only
// then does the session say offline and disconnect.
type Daemon struct {
	log    *slog.Logger
	opts   Options
	db     *store.DB
	bank   *relay.Bank
	panel  *led.Panel
	inputs []inputLine
	ctl    *control.Server
	acts   *controlActions
	parts  []part
	beats  map[string]*heartbeat // the loops the watchdog watches, by part
	scrape net.Listener          // metrics.listen; nil = off
}

// part is one long-running piece of the daemon: run returns once ctx ends
// and it has finished what it had in hand.
type part struct {
	name string
	run  func(ctx context.Context)
}

// New builds the daemon: it opens the store, brings the relays up in their
// power_on state and the LEDs (hardware before the network: relays reach
// their power_on state whether or not a broker is ever reached), and
// listens on the control socket. Nothing runs until Run.
func New(cfg *config.Config, opts Options) (d *Daemon, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d = &Daemon{log: log, opts: opts}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	started := time.Now()
	d.db, err = store.Open(cfg.DataDir, &store.Options{
		RetainRecords: cfg.Store.RetainRecords,
		RetainBytes:   cfg.Store.RetainBytes,
		MaxSize:       int(cfg.Store.MaxDBSize),
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	st, err := d.db.Stats()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	out, err := d.db.OutboxLen()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	log.Info("store open", "path", d.db.Path(), "records", st.Total, "pending", st.Pending, "last_seq", st.LastSeq,
		"took", time.Since(started).Round(time.Millisecond))

	backend, err := openBackend(cfg, log.With("part", "hw"))
	if err != nil {
		return nil, err
	}
	if d.bank, err = openRelays(cfg, backend, d.db, time.Now(), log.With("part", "relay")); err != nil {
		return nil, err
	}
	if d.panel, err = openPanel(cfg, backend); err != nil {
		return nil, err
	}
	if d.inputs, err = openInputs(cfg, backend); err != nil {
		return nil, err
	}
	// Each input's level now is its state until its first change.
	inputState := &inputStates{}
	initial := make([]bool, len(d.inputs))
	for i, l := range d.inputs {
		if initial[i], err = l.active(); err != nil {
			return nil, fmt.Errorf("input %q: read: %w", l.cfg.Name, err)
		}
		inputState.set(l.cfg.Name, InputStatus{Active: initial[i], Since: time.Now().UTC()})
		log.Info("input at start", "input", l.cfg.Name, "pin", l.cfg.Pin, "active", initial[i])
	}
	eventSeq, err := d.db.EventSeq()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// An offline spell counts from the one recorded before a restart; with
	// none (the agent was connected, or is new), from now.
	recorded, err := d.db.OfflineSince()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	bootNow := time.Now()
	if recorded.IsZero() {
		wall := bootNow.Round(0)
		if _, err := d.db.Apply(store.Change{Offline: &wall}); err != nil {
			log.Warn("record the start for the offline policy", "err", err)
		}
	}
	sc, err := sessionConfigFrom(cfg, d.db)
	if err != nil {
		return nil, err
	}
	creds, err := credentialsFrom(cfg, d.db, log)
	if err != nil {
		return nil, err
	}

	ruleSet, err := rules.Compile(cfg.Rules, cfg.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	sc.RuleTopics = ruleSet.Topics()

	h := newHealth(time.Now())
	h.setBacklog(st.Pending + out)
	h.subscribe(d.panel.SetState)
	// backlog reads the store's counters after a change to what is pending:
	// the commit that changed them just ran, so nothing needs to poll.
	backlog := func() {
		st, err := d.db.Stats()
		if err != nil {
			return
		}
		out, err := d.db.OutboxLen()
		if err != nil {
			return
		}
		h.setBacklog(st.Pending + out)
	}

	// The doorbells between the parts, made first so that every part gets
	// both ends at construction.
	pending, replies, freed := newWake(), newWake(), newWake()
	stored := newFeed()
	// Sinks read what the writer stored, each at its own pace: the writer
	// only rings them, so a slow or failing sink never slows ingest.
	sinkSet, err := sinks.New(cfg.Sinks, d.db, log.With("part", "sink"))
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	w := newWriter(writerConfig{
		Inbox: d.db, Health: h, Log: log.With("part", "writer"),
		NotifyTopic: sc.NotifyTopic, ReplyTopic: cfg.MQTT.ReplyTopic, Rules: ruleSet, CommitWindow: cfg.Store.CommitWindow,
		Pending: pending, Replies: replies, Freed: freed, Flash: d.panel.Flash, Backlog: backlog,
		Stored: func(last uint64) { stored.ring(); sinkSet.Stored(last) },
	})
	handler := func(_ mqtt.Client, m mqtt.Message) {
		// Only enqueue: a handler that blocks on I/O stalls paho's network
		// loop and with it the keepalive (docs/dependencies.md#paho-handler-must-not-block).
		msg := store.Message{ReceivedAt: time.Now(), Topic: m.Topic(), Payload: m.Payload(), Dup: m.Duplicate(), Retained: m.Retained()}
		if size, head, ok := sc.Oversize.decode(msg.Payload); ok {
			msg.Payload, msg.Oversize = head, size
		}
		w.enqueue(inbound{msg: msg, ack: m.Ack})
	}
	sess := newSession(sessionDeps{
		cfg: sc, creds: creds, health: h, log: log.With("part", "mqtt"), handler: handler,
		outbox: d.db, outboxWake: replies, onBacklog: backlog,
	})
	// The status document reads the parts; the dispatcher answers
	// agent.status with it.
	ruleCounts := &ruleStats{}
	faults := &relayFaults{}
	src := &statusSource{cfg: cfg, version: opts.Version, sc: sc, health: h, db: d.db, bank: d.bank, leds: d.panel,
		ingest: &w.stats, rules: ruleCounts, sinks: sinkSet, faults: faults}
	if len(d.inputs) > 0 {
		src.inputs = inputState
	}
	relayCfg := make(map[string]config.Relay, len(cfg.Relays))
	var relayNames []string
	for _, r := range cfg.Relays {
		relayCfg[r.Name] = r
		relayNames = append(relayNames, r.Name)
	}
	sort.Strings(relayNames)
	inputCh := make(chan inputChange, 16)
	link := newWake()
	h.watchLink(link.poke)
	disp := &dispatcher{
		db: d.db, bank: d.bank, leds: d.panel, log: log.With("part", "command"),
		notifyTopic: sc.NotifyTopic, replyTopic: cfg.MQTT.ReplyTopic, rules: ruleSet, ruleStats: ruleCounts,
		status: src.build, now: time.Now, pending: pending, replies: replies, freed: freed, onBacklog: backlog,
		local: make(chan localRelayReq), done: make(chan struct{}),
		failpoint: opts.Failpoint,
		retry:     backoff.Backoff{Min: storeRetryMin, Max: storeRetryMax},
		relayCfg:  relayCfg, relayNames: relayNames, inputs: cfg.Inputs, inputCh: inputCh, inputState: inputState,
		faults: faults, faultLED: d.panel.SetFault, eventTopic: cfg.MQTT.EventTopic, eventSeq: eventSeq, link: link,
		offline: offlinePolicy{connected: h.isConnected, since: offlineSince(recorded, bootNow), done: map[string]bool{}},
		counts:  &counters{},
	}
	ms := &metricsSource{src: src, counts: disp.counts, dbPath: d.db.Path()}
	ms.boot, _ = creds.(*bootstrapCreds)

	d.acts = &controlActions{disp: disp, panel: d.panel, db: d.db, feed: stored, sinks: sinkSet, stopping: make(chan struct{}),
		simInput: simInputFunc(cfg, backend), metrics: ms.text}
	if d.ctl, err = control.Listen(cfg.DataDir, d.db, func() any { return src.build() }, d.acts, log); err != nil {
		return nil, err
	}

	// Every loop that must stay alive, for the watchdog.
	d.beats = map[string]*heartbeat{"session": &sess.beat, "dispatcher": &disp.beat, "writer": &w.beat}
	d.parts = []part{
		{"panel", func(ctx context.Context) { <-ctx.Done(); d.panel.Close() }},
		{"session", sess.run},
		{"dispatcher", disp.run},
		{"inputs", func(ctx context.Context) { runInputs(ctx, d.inputs, initial, inputCh, log.With("part", "input")) }},
		{"writer", w.run},
		{"sinks", sinkSet.Run},
		{"control", func(ctx context.Context) { <-ctx.Done(); d.acts.stop(); d.ctl.Close() }},
	}
	// [metrics]: nothing runs and nothing listens unless it is configured.
	mcfg := cfg.Metrics
	if mcfg.Listen != "" {
		if d.scrape, err = net.Listen("tcp", mcfg.Listen); err != nil {
			return nil, fmt.Errorf("metrics.listen: %w (is another program on that port?)", err)
		}
		ln := d.scrape
		d.parts = append(d.parts, part{"metrics-http", func(ctx context.Context) {
			stop := context.AfterFunc(ctx, func() { ln.Close() })
			defer stop()
			metrics.Serve(ln, ms.text)
		}})
	}
	if mcfg.Textfile != "" || mcfg.TelemetryTopic != "" {
		r := &reporter{m: ms, cfg: mcfg, db: d.db, replies: replies, backlog: backlog, log: log}
		d.parts = append(d.parts, part{"metrics", r.run})
	}
	if opts.Alive != nil {
		every := opts.AliveEvery
		if every <= 0 {
			every = 10 * time.Second
		}
		beats := make([]*heartbeat, 0, len(d.beats))
		for _, b := range d.beats {
			beats = append(beats, b)
		}
		alive := func() { disp.counts.pings.Add(1); opts.Alive() }
		d.parts = append(d.parts, part{"watchdog", func(ctx context.Context) { watchdog(ctx, every, stuckAfter, alive, beats...) }})
	}
	return d, nil
}

// Run starts every part, in order, and waits for ctx; then it stops them in
// reverse order under one deadline (shutdownTimeout), joining each
// goroutine. A part still running at the deadline is left behind: the
// process is about to exit, and what was not acknowledged the broker sends
// again. Relays keep their state; LEDs go dark.
func (d *Daemon) Run(ctx context.Context) error {
	type running struct {
		name   string
		cancel context.CancelFunc
		done   chan struct{}
	}
	var rs []running
	for _, p := range d.parts {
		pctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.run(pctx) }()
		rs = append(rs, running{p.name, cancel, done})
	}
	if d.opts.Ready != nil {
		d.opts.Ready()
	}
	d.log.Info("edge-agent running", "version", d.opts.Version, "socket", d.ctl.Path())

	<-ctx.Done()
	d.log.Info("stopping")
	deadline := make(chan struct{})
	t := time.AfterFunc(shutdownTimeout, func() { close(deadline) })
	defer t.Stop()
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		r.cancel()
		select {
		case <-r.done:
		case <-deadline:
			d.log.Warn("shutdown: a part did not stop in time; exiting anyway", "part", r.name, "within", shutdownTimeout)
			return nil
		}
	}
	if err := d.close(); err != nil {
		return err
	}
	d.log.Info("stopped")
	return nil
}

// close releases what New opened; Run calls it once every part stopped.
func (d *Daemon) close() error {
	if d.ctl != nil {
		d.ctl.Close()
	}
	if d.scrape != nil {
		d.scrape.Close()
	}
	if d.panel != nil {
		d.panel.Close()
	}
	for _, l := range d.inputs {
		l.line.Close()
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			return fmt.Errorf("close store: %w", err)
		}
	}
	return nil
}

// controlActions carries out the control socket's requests. Once the
// daemon stops (stopping closes), a request waiting on a part gives up at
// once, so no connection holds the shutdown.
type controlActions struct {
	disp     *dispatcher
	panel    *led.Panel
	db       followStore
	feed     *feed
	sinks    *sinks.Manager
	simInput func(name string, active bool) error
	metrics  func() []byte
	stopping chan struct{}
	once     sync.Once
}

// followStore is what `inbox follow` reads.
type followStore interface {
	Stats() (store.Stats, error)
	Scan(after uint64, fn func(store.Record) error) error
}

func (a *controlActions) stop() { a.once.Do(func() { close(a.stopping) }) }

var errStopping = fmt.Errorf("the agent is stopping; try again once it is back")

func (a *controlActions) SetRelay(name string, on bool, dur time.Duration) (control.RelayApplied, error) {
	req := localRelayReq{relayRequest: relayRequest{name: name, on: on, dur: dur}, reply: make(chan localRelayResult, 1)}
	busy := time.NewTimer(10 * time.Second)
	defer busy.Stop()
	select {
	case a.disp.local <- req:
	case <-busy.C:
		return control.RelayApplied{}, fmt.Errorf("the agent is busy; try again")
	case <-a.stopping:
		return control.RelayApplied{}, errStopping
	case <-a.disp.done:
		return control.RelayApplied{}, errStopping
	}
	res := <-req.reply // the dispatcher always answers a request it took
	if res.err != nil {
		return control.RelayApplied{}, res.err
	}
	applied := control.RelayApplied{On: res.state.On, Since: res.state.Since.UTC()}
	if !res.state.Deadline.IsZero() {
		u := res.state.Deadline.UTC()
		applied.Until = &u
	}
	return applied, nil
}

func (a *controlActions) Identify(d time.Duration) { a.panel.Identify(d) }

// Follow is `inbox follow`: every record after `after` (math.MaxUint64:
// from the next one stored), then each as it is stored.
func (a *controlActions) Follow(stop <-chan struct{}, after uint64, fn func(store.Record) error) error {
	if after == math.MaxUint64 {
		st, err := a.db.Stats()
		if err != nil {
			return err
		}
		after = st.LastSeq
	}
	for {
		next := a.feed.next() // before the read: a commit after it rings this one
		err := a.db.Scan(after, func(r store.Record) error {
			after = r.Seq
			return fn(r)
		})
		if err != nil {
			return err
		}
		select {
		case <-next:
		case <-stop:
			return nil
		case <-a.stopping:
			return nil
		}
	}
}

func (a *controlActions) RewindSink(name string, seq uint64) error { return a.sinks.Rewind(name, seq) }

func (a *controlActions) Metrics() []byte { return a.metrics() }

func (a *controlActions) SimInput(name string, active bool) error { return a.simInput(name, active) }

func (a *controlActions) LEDTest(each time.Duration, announce func(state string)) error {
	return a.panel.PlayUntil(a.stopping, each, announce)
}
