package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/hw"
)

// inputLine is one configured input on its line.
type inputLine struct {
	cfg  config.Input
	line hw.Input
}

// inputChange is one debounced change of an input, for the dispatcher.
type inputChange struct {
	input  int // index in the dispatcher's inputs
	active bool
	at     time.Time // the first edge of the change
}

// openInputs requests every [[input]]'s line with its pull resistor and
// edge detection. A missing pin is an error naming it.
func openInputs(cfg *config.Config, b hw.Backend) ([]inputLine, error) {
	if len(cfg.Inputs) == 0 {
		return nil, nil
	}
	var out []inputLine
	for i, in := range cfg.Inputs {
		bias := hw.BiasNone
		switch in.Pull {
		case config.PullUp:
			bias = hw.BiasUp
		case config.PullDown:
			bias = hw.BiasDown
		}
		l, err := b.Input(in.Pin, bias)
		if err != nil {
			for _, o := range out {
				o.line.Close()
			}
			return nil, fmt.Errorf("input[%d] %q: %w", i, in.Name, err)
		}
		out = append(out, inputLine{cfg: in, line: l})
	}
	return out, nil
}

// active reads whether the input is active now (its level, with
// active_low).
func (l inputLine) active() (bool, error) {
	high, err := l.line.Read()
	return high != l.cfg.ActiveLow, err
}

// debounce turns one input's edges into changes: an edge (re)starts the
// debounce window; when the window passes with no further edge, the line
// is read, and a level other than the last one reported is a change,
// stamped with the first edge of the burst. Bounces inside the window are
// one change, or none when the contact settles where it was. Reading the
// level at the end, rather than trusting the last edge, makes an edge the
// backend dropped harmless. It returns when ctx ends or the line closes.
func debounce(ctx context.Context, idx int, l inputLine, was bool, out chan<- inputChange, log *slog.Logger) {
	window := l.cfg.Debounce
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // the burst's first edge; zero = no burst
	edges := l.line.Edges()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-edges:
			if !ok {
				return
			}
			if first.IsZero() {
				first = e.At
			}
			if window > 0 {
				timer.Reset(window)
				continue
			}
			// No window: each edge is a change, at the level it reports.
			now := e.High != l.cfg.ActiveLow
			first = time.Time{}
			if now != was {
				was = now
				if !send(ctx, out, inputChange{idx, now, e.At}) {
					return
				}
			}
		case <-timer.C:
			now, err := l.active()
			if err != nil {
				log.Error("read input", "input", l.cfg.Name, "pin", l.cfg.Pin, "err", err)
				timer.Reset(time.Second) // the change stays to be seen
				continue
			}
			at := first
			first = time.Time{}
			if now != was {
				was = now
				if !send(ctx, out, inputChange{idx, now, at}) {
					return
				}
			}
		}
	}
}

func send(ctx context.Context, out chan<- inputChange, c inputChange) bool {
	select {
	case out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// InputStatus is one input's state in the status document.
type InputStatus struct {
	_      noEq      // never compared: no equality function in the binary
	Active bool      `json:"active"`
	Since  time.Time `json:"since"`
}

// inputStates is what the status shows of the inputs. The dispatcher is
// its one writer; status readers come from any goroutine.
type inputStates struct {
	mu sync.Mutex
	m  map[string]InputStatus
}

func (s *inputStates) set(name string, st InputStatus) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]InputStatus{}
	}
	s.m[name] = st
	s.mu.Unlock()
}

func (s *inputStates) get(name string) (InputStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[name]
	return st, ok
}

func (s *inputStates) all() map[string]InputStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]InputStatus, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// runInputs runs one debouncer per input until ctx ends: the inputs part.
func runInputs(ctx context.Context, lines []inputLine, initial []bool, out chan<- inputChange, log *slog.Logger) {
	var wg sync.WaitGroup
	for i, l := range lines {
		wg.Go(func() { debounce(ctx, i, l, initial[i], out, log) })
	}
	wg.Wait()
}

// wireSetter is what `sim input` needs of the GPIO backend: the sim
// board's wires.
type wireSetter interface {
	SetInput(pin string, high bool) error
}

// simInputFunc is `edge-agent sim input NAME active|inactive`: the sim
// board's input is driven as a wire would drive it (active_low applied);
// refused on real hardware, where only a wire moves a line.
func simInputFunc(cfg *config.Config, b hw.Backend) func(name string, active bool) error {
	return func(name string, active bool) error {
		ws, ok := b.(wireSetter)
		if !ok || cfg.HW.Backend != config.BackendSim {
			return fmt.Errorf("sim input drives the simulated board only; this agent runs [hw] backend = %q, where inputs move by their wires", cfg.HW.Backend)
		}
		for _, in := range cfg.Inputs {
			if in.Name == name {
				return ws.SetInput(in.Pin, active != in.ActiveLow)
			}
		}
		names := make([]string, 0, len(cfg.Inputs))
		for _, in := range cfg.Inputs {
			names = append(names, in.Name)
		}
		if len(names) == 0 {
			return fmt.Errorf("no input named %q: the configuration has no [[input]]", name)
		}
		return fmt.Errorf("no input named %q (inputs: %s)", name, strings.Join(names, ", "))
	}
}
