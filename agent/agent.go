package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/hw/led"
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

// Backoff bounds for reconnecting: the first retry comes within a second,
// later ones double up to a cap near a minute (each jittered).
const (
	reconnectMin = time.Second
	reconnectMax = 60 * time.Second

	// shutdownTimeout bounds SIGTERM to exit: systemd's default stop
	// timeout is 90 s, a technician's patience much less.
	shutdownTimeout = 8 * time.Second
)

// Run is the daemon: it opens the store, brings the relays up in their
// power_on state and the LEDs, serves the control socket, holds the MQTT
// session, stores every notification before acknowledging it and executes
// the commands among them, until ctx ends. On the way out it finishes the
// commit and the command in flight, acknowledges what that commit stored,
// and disconnects cleanly. Relays keep their state; LEDs go dark.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	started := time.Now()

	db, err := store.Open(cfg.DataDir, &store.Options{
		RetainRecords: cfg.Store.RetainRecords,
		RetainBytes:   cfg.Store.RetainBytes,
		MaxSize:       int(cfg.Store.MaxDBSize),
	})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	st, err := db.Stats()
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	log.Info("store open", "path", db.Path(), "records", st.Total, "pending", st.Pending, "last_seq", st.LastSeq,
		"took", time.Since(started).Round(time.Millisecond))

	// Hardware before the network: relays reach their power_on state
	// whether or not a broker is ever reached.
	backend, err := openBackend(cfg, log.With("part", "hw"))
	if err != nil {
		return err
	}
	bank, err := openRelays(cfg, backend, db, time.Now(), log.With("part", "relay"))
	if err != nil {
		return err
	}
	panel, err := openPanel(cfg, backend)
	if err != nil {
		return err
	}
	defer panel.Close()

	sc, err := sessionConfigFrom(cfg, db)
	if err != nil {
		return err
	}

	h := newHealth(time.Now())
	w := newWriter(db, h, log.With("part", "writer"))
	src := &statusSource{cfg: cfg, version: opts.Version, sc: sc, health: h, db: db, bank: bank, leds: panel, ingest: &w.stats}
	w.notifyTopic, w.replyTopic, w.flash = sc.NotifyTopic, cfg.MQTT.ReplyTopic, panel.Flash
	stopHandler := make(chan struct{})
	handler := func(_ mqtt.Client, m mqtt.Message) {
		// Only enqueue: a handler that blocks on I/O stalls paho's network
		// loop and with it the keepalive (PITFALLS.md).
		msg := store.Message{ReceivedAt: time.Now(), Topic: m.Topic(), Payload: m.Payload(), Dup: m.Duplicate(), Retained: m.Retained()}
		if size, head, ok := sc.Oversize.decode(msg.Payload); ok {
			msg.Payload, msg.Oversize = head, size
		}
		w.enqueue(stopHandler, inbound{msg: msg, ack: m.Ack})
	}
	creds, err := credentialsFrom(cfg, db, log)
	if err != nil {
		return err
	}
	sess := newSession(sc, creds, h, log.With("part", "mqtt"), handler, newBackoff(reconnectMin, reconnectMax, nil))
	sess.outbox = db
	disp := &dispatcher{
		db: db, bank: bank, leds: panel, log: log.With("part", "command"),
		notifyTopic: sc.NotifyTopic, replyTopic: cfg.MQTT.ReplyTopic,
		status: src.build, now: time.Now,
		wake: make(chan struct{}, 1), local: make(chan localRelayReq),
		outboxUp: sess.wakeOutbox, failpoint: opts.Failpoint,
	}
	w.onPending, w.onReply, disp.handled = disp.poke, sess.wakeOutbox, w.handled

	ctl, err := control.Listen(cfg.DataDir, db, func() any { return src.build() },
		&controlActions{disp: disp, panel: panel}, log)
	if err != nil {
		return err
	}
	defer ctl.Close()

	bg, stopBG := context.WithCancel(context.Background())
	writerCtx, stopWriter := context.WithCancel(context.Background())
	dispCtx, stopDisp := context.WithCancel(context.Background())
	sessCtx, stopSession := context.WithCancel(context.Background())
	writerDone, dispDone, sessDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { defer close(writerDone); w.run(writerCtx) }()
	go func() { defer close(dispDone); disp.run(dispCtx) }()
	go func() { defer close(sessDone); sess.run(sessCtx) }()
	go showState(bg, src, panel)
	if opts.Alive != nil {
		every := opts.AliveEvery
		if every <= 0 {
			every = 10 * time.Second
		}
		go watchdog(bg, every, opts.Alive, &w.beat, &disp.beat)
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	log.Info("edge-agent running", "version", opts.Version, "device_id", cfg.DeviceID, "socket", ctl.Path())

	<-ctx.Done()
	log.Info("stopping")
	// Order matters: the writer finishes its commit in flight and sends
	// those acks while the connection is still up; the dispatcher finishes
	// its command; only then does the session say offline and disconnect.
	// Anything still queued was never acknowledged, so the broker
	// redelivers it.
	deadline := time.After(shutdownTimeout)
	stopWriter()
	close(stopHandler)
	stopDisp()
	for _, done := range []chan struct{}{writerDone, dispDone} {
		select {
		case <-done:
		case <-deadline:
			log.Warn("shutdown: a part did not finish in time; exiting anyway")
		}
	}
	stopSession()
	select {
	case <-sessDone:
	case <-deadline:
		log.Warn("disconnect did not finish in time; exiting anyway")
	}
	stopBG()
	ctl.Close()
	panel.Close()
	if err := db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// showState keeps the status LED on the agent's state.
func showState(ctx context.Context, src *statusSource, p *led.Panel) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		state, _, _, _ := src.state()
		p.SetState(state)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// controlActions carries out the control socket's requests.
type controlActions struct {
	disp  *dispatcher
	panel *led.Panel
}

func (a *controlActions) SetRelay(name string, on bool, dur time.Duration) (control.RelayApplied, error) {
	req := localRelayReq{relayRequest: relayRequest{name: name, on: on, dur: dur}, reply: make(chan localRelayResult, 1)}
	select {
	case a.disp.local <- req:
	case <-time.After(10 * time.Second):
		return control.RelayApplied{}, fmt.Errorf("the agent is busy; try again")
	}
	res := <-req.reply
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

func (a *controlActions) LEDTest(each time.Duration, announce func(state string)) error {
	return a.panel.Play(each, announce)
}
