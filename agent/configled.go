package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/hw/led"
)

// ErrNoConfigLED means the configuration does not say, even leniently,
// where a status LED is, so the config state cannot be shown.
var ErrNoConfigLED = errors.New("no status LED to show the config state on")

// ShowConfigState is what `run` does with a configuration it refuses: a
// technician cannot read the error on a gateway without a screen, so when
// the file still says (read leniently) which backend and status LED there
// are, the LED shows the config state (very fast blink, fault LED on) until
// ctx ends. Relays are not touched: nothing is known to be safe to do.
func ShowConfigState(ctx context.Context, path string, log *slog.Logger) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return ErrNoConfigLED
	}
	var lenient struct {
		HW struct {
			Backend string `toml:"backend"`
		} `toml:"hw"`
		LEDs struct {
			Status    string `toml:"status"`
			Fault     string `toml:"fault"`
			ActiveLow bool   `toml:"active_low"`
		} `toml:"leds"`
	}
	if toml.NewDecoder(bytes.NewReader(b)).Decode(&lenient) != nil || lenient.LEDs.Status == "" {
		return ErrNoConfigLED
	}
	cfg := &config.Config{HW: config.HW{Backend: lenient.HW.Backend}}
	if cfg.HW.Backend != config.BackendSim {
		cfg.HW.Backend = config.BackendPeriph
	}
	cfg.LEDs = config.LEDs{Status: lenient.LEDs.Status, Fault: lenient.LEDs.Fault, ActiveLow: lenient.LEDs.ActiveLow}
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
	<-ctx.Done()
	return nil
}
