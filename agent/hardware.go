package agent

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/hw"
	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/hw/periph"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/hw/sim"
	"github.com/edge-agent/edge-agent/store"
)

// openBackend loads the configured GPIO backend and says which in the log.
func openBackend(cfg *config.Config, log *slog.Logger) (hw.Backend, error) {
	var b hw.Backend
	switch cfg.HW.Backend {
	case config.BackendSim:
		s := sim.New(nil)
		// The simulated board's every transition goes to the log: that is
		// how an operator without hardware sees the relays and LEDs work.
		s.OnTransition(func(t sim.Transition) {
			if !t.Initial && isLEDPin(cfg, t.Pin) {
				return // LED blinking would drown the log; status shows patterns
			}
			log.Info("sim gpio", "pin", t.Pin, "high", t.High, "initial", t.Initial)
		})
		b = s
	default:
		p, err := periph.New()
		if err != nil {
			return nil, fmt.Errorf("hw.backend = %q: %w", cfg.HW.Backend, err)
		}
		b = p
	}
	log.Info("gpio backend", "backend", cfg.HW.Backend, "driver", b.Describe())
	return b, nil
}

func isLEDPin(cfg *config.Config, pin string) bool {
	return pin != "" && (pin == cfg.LEDs.Status || pin == cfg.LEDs.Activity || pin == cfg.LEDs.Fault)
}

// relayConfigs maps the configuration's relays to the bank's.
func relayConfigs(cfg *config.Config) []relay.Config {
	out := make([]relay.Config, 0, len(cfg.Relays))
	for _, r := range cfg.Relays {
		out = append(out, relay.Config{Name: r.Name, Pin: r.Pin, ActiveLow: r.ActiveLow,
			PowerOn: string(r.PowerOn), MaxOn: r.MaxOn, Interlock: r.Interlock})
	}
	return out
}

// relayStore is what opening the relays needs of the store.
type relayStore interface {
	Relays() (map[string]store.RelayState, error)
	Apply(c store.Change) ([]uint64, error)
}

// openRelays brings every relay up in its power_on state, before the
// network: each line becomes an output already at its boot level, and the
// boot states are recorded so a later restore and the status agree.
func openRelays(cfg *config.Config, b hw.Backend, db relayStore, now time.Time, log *slog.Logger) (*relay.Bank, error) {
	saved, err := db.Relays()
	if err != nil {
		return nil, err
	}
	prev := make(map[string]relay.State, len(saved))
	for k, v := range saved {
		prev[k] = relay.State(v)
	}
	cfgs := relayConfigs(cfg)
	boot := relay.BootStates(cfgs, prev, now)
	bank, err := relay.Open(cfgs, func(pin string, high bool) (relay.Line, error) {
		return b.Output(pin, high)
	}, boot)
	if err != nil {
		return nil, err
	}
	rec := make(map[string]store.RelayState, len(boot))
	for k, v := range boot {
		rec[k] = store.RelayState(v)
		log.Info("relay at boot", "relay", k, "on", v.On, "power_on", powerOnOf(cfgs, k), "until", v.Deadline)
	}
	if len(rec) > 0 {
		if _, err := db.Apply(store.Change{Relays: rec}); err != nil {
			// The relays are already right; only the record lags. A full disk
			// must not keep the agent from running.
			log.Error("record relay boot states", "err", err)
		}
	}
	return bank, nil
}

func powerOnOf(cfgs []relay.Config, name string) string {
	for _, c := range cfgs {
		if c.Name == name {
			return c.PowerOn
		}
	}
	return ""
}

// openPanel opens the configured LEDs and starts the panel that owns them.
func openPanel(cfg *config.Config, b hw.Backend) (*led.Panel, error) {
	leds, err := openLEDs(cfg, b)
	if err != nil {
		return nil, err
	}
	return led.NewPanel(leds, led.RealClock()), nil
}

// openLEDs opens the configured LEDs, off at first.
func openLEDs(cfg *config.Config, b hw.Backend) (led.LEDs, error) {
	var l led.LEDs
	for _, x := range []struct {
		pin string
		dst **hw.Switch
		key string
	}{{cfg.LEDs.Status, &l.Status, "leds.status"}, {cfg.LEDs.Activity, &l.Activity, "leds.activity"}, {cfg.LEDs.Fault, &l.Fault, "leds.fault"}} {
		if x.pin == "" {
			continue
		}
		sw, err := hw.OpenSwitch(b, x.pin, cfg.LEDs.ActiveLow, false)
		if err != nil {
			return led.LEDs{}, fmt.Errorf("%s: %w", x.key, err)
		}
		*x.dst = sw
	}
	return l, nil
}
