package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/store"
)

// ErrNoConfigLED means the configuration does not say, even leniently,
// where a status LED is, so the config state cannot be shown.
var ErrNoConfigLED = errors.New("no status LED to show the config state on")

// ShowConfigState is what `run` does with a configuration it refuses: a
// technician cannot read the error on a gateway without a screen, so when
// the file still says (read leniently, config.ParseLenient) which backend
// and status LED there are, the LED shows the config state (very fast
// blink, fault LED on) until ctx ends. Relays are not touched: nothing is
// known to be safe to do.
//
// Meanwhile it answers on the control socket in data_dir (read leniently
// too), so that the CLI says what is wrong instead of "not running":
// status gives a document whose state is "config" and whose last_error is
// problems (what config check prints about the file, free of secrets);
// led test and led identify work on the LEDs; inbox and relay requests are
// refused, as no store or relay is opened with a configuration that is
// wrong. opts gives the version, the logger and systemd's hooks (Ready
// once up, Alive while it waits).
func ShowConfigState(ctx context.Context, path, problems string, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ErrNoConfigLED
	}
	lenient, err := config.ParseLenient(b, path)
	if err != nil || lenient.LEDs.Status == "" {
		return ErrNoConfigLED
	}
	cfg := &config.Config{DataDir: lenient.DataDir, HW: config.HW{Backend: lenient.Backend}, LEDs: lenient.LEDs}
	backend, err := openBackend(cfg, log)
	if err != nil {
		return err
	}
	panel, err := openPanel(cfg, backend)
	if err != nil {
		return err
	}
	defer panel.Close()
	panel.SetState(led.StateConfig)
	log.Error("the configuration is invalid: showing the config state on the status LED until stopped; fix it (edge-agent config check) and restart", "config", path)

	started := time.Now()
	status := func() any {
		return Status{
			Version:   opts.Version,
			DeviceID:  lenient.DeviceID,
			State:     led.StateConfig,
			Since:     started.UTC(),
			Relays:    map[string]RelayStatus{},
			LEDs:      panel.Show(led.StateConfig),
			LastError: problems,
			Uptime:    time.Since(started).Round(time.Second).String(),
		}
	}
	refused := fmt.Errorf("the configuration is invalid, so the agent holds no store and no relays; fix it: edge-agent config check -config %s", path)
	acts := &configStateActions{panel: panel, refused: refused, stopping: make(chan struct{})}
	var ctl *control.Server
	err = os.MkdirAll(cfg.DataDir, 0o750) // as the store makes it on a first start
	if err == nil {
		ctl, err = control.Listen(cfg.DataDir, refusedInbox{refused}, status, acts, log)
	}
	if err != nil {
		log.Error("no control socket: edge-agent status will say the agent is not running", "err", err)
	}
	// Up, in the config state, for systemd too: without READY=1 it would
	// stop the unit at its start timeout and start it again, and the LED
	// would go dark every few minutes; the pings keep its watchdog fed.
	if opts.Ready != nil {
		opts.Ready()
	}
	if opts.Alive != nil && opts.AliveEvery > 0 {
		t := time.NewTicker(opts.AliveEvery)
		defer t.Stop()
		for done := false; !done; {
			select {
			case <-ctx.Done():
				done = true
			case <-t.C:
				opts.Alive()
			}
		}
	}
	<-ctx.Done()
	if ctl != nil {
		acts.stop() // a running led test ends now, not when its patterns do
		ctl.Close()
	}
	return nil
}

// configStateActions are the control socket's actions in the config state:
// the LEDs only.
type configStateActions struct {
	_        noEq // never compared: no equality function in the binary
	panel    *led.Panel
	refused  error
	stopping chan struct{}
	once     sync.Once
}

func (a *configStateActions) stop() { a.once.Do(func() { close(a.stopping) }) }

func (a *configStateActions) SetRelay(string, bool, time.Duration) (control.RelayApplied, error) {
	return control.RelayApplied{}, a.refused
}

func (a *configStateActions) Identify(d time.Duration) { a.panel.Identify(d) }

func (a *configStateActions) Follow(<-chan struct{}, uint64, func(store.Record) error) error {
	return a.refused
}

func (a *configStateActions) RewindSink(string, uint64) error { return a.refused }
func (a *configStateActions) SimInput(string, bool) error     { return a.refused }

func (a *configStateActions) LEDTest(each time.Duration, announce func(state string)) error {
	return a.panel.PlayUntil(a.stopping, each, announce)
}

// refusedInbox answers every inbox request with why there is none.
type refusedInbox struct{ err error }

func (r refusedInbox) Get(uint64) (store.Record, error)            { return store.Record{}, r.err }
func (r refusedInbox) Scan(uint64, func(store.Record) error) error { return r.err }
func (r refusedInbox) Tail(int, func(store.Record) error) error    { return r.err }
