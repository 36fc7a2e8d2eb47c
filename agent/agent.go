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
	"github.com/edge-agent/edge-agent/store"
)

// Options are the daemon's inputs that do not come from the config file.
type Options struct {
	Version string
	Logger  *slog.Logger
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

// Run is the daemon: it opens the store, serves the control socket, holds
// the MQTT session and stores every notification before acknowledging it,
// until ctx ends. On the way out it finishes the commit in flight,
// acknowledges what that commit stored, and disconnects cleanly.
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

	sc, err := sessionConfigFrom(cfg, db)
	if err != nil {
		return err
	}

	h := newHealth(time.Now())
	w := newWriter(db, h, log.With("part", "writer"))
	stopHandler := make(chan struct{})
	handler := func(_ mqtt.Client, m mqtt.Message) {
		// Only enqueue: a handler that blocks on I/O stalls paho's network
		// loop and with it the keepalive (PITFALLS.md).
		w.enqueue(stopHandler, inbound{
			msg: store.Message{ReceivedAt: time.Now(), Topic: m.Topic(), Payload: m.Payload(), Dup: m.Duplicate()},
			ack: m.Ack,
		})
	}
	sess := newSession(sc, h, log.With("part", "mqtt"), handler, newBackoff(reconnectMin, reconnectMax, nil))

	status := func() any { return buildStatus(cfg, opts.Version, sc, h, db) }
	ctl, err := control.Listen(cfg.DataDir, db, status, log)
	if err != nil {
		return err
	}
	defer ctl.Close()

	writerCtx, stopWriter := context.WithCancel(context.Background())
	sessCtx, stopSession := context.WithCancel(context.Background())
	writerDone, sessDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(writerDone); w.run(writerCtx) }()
	go func() { defer close(sessDone); sess.run(sessCtx) }()
	log.Info("edge-agent running", "version", opts.Version, "device_id", cfg.DeviceID, "socket", ctl.Path())

	<-ctx.Done()
	log.Info("stopping")
	// Order matters: the writer finishes its commit in flight and sends
	// those acks while the connection is still up; only then does the
	// session say offline and disconnect. Anything still queued was never
	// acknowledged, so the broker redelivers it.
	deadline := time.After(shutdownTimeout)
	stopWriter()
	close(stopHandler)
	select {
	case <-writerDone:
	case <-deadline:
		log.Warn("the writer did not finish in time; exiting without its acknowledgements")
	}
	stopSession()
	select {
	case <-sessDone:
	case <-deadline:
		log.Warn("disconnect did not finish in time; exiting anyway")
	}
	ctl.Close()
	if err := db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}
