package config

import (
	"fmt"
	"strconv"
	"time"
)

// Bounds of the [[input]] and relay safety durations.
const (
	// maxDebounce: a contact that bounces longer than this is broken, and a
	// longer debounce would swallow real presses.
	maxDebounce = 10 * time.Second
	// maxFeedbackTimeout: a contactor answers in milliseconds; a command
	// waiting longer would leave its sender without a reply for too long.
	maxFeedbackTimeout = time.Minute
	// minOfflineAfter keeps a broker hiccup from switching relays off.
	minOfflineAfter = time.Second
)

// checkRelaySafety checks relay k's feedback timeout and offline policy and
// sets them, defaults included, in out. The feedback input's name is
// checked in checkInputs, once the inputs are known.
func (l *loader) checkRelaySafety(k string, r relaySection, out *Relay) {
	out.Feedback = r.Feedback
	out.FeedbackTimeout = mustDuration(DefaultFeedbackTimeout)
	if key := k + ".feedback_timeout"; l.keys.has(key) {
		if d, ok := l.duration(key, r.FeedbackTimeout); ok {
			switch {
			case d <= 0:
				l.problem(key, fmt.Sprintf("%s is not positive", r.FeedbackTimeout),
					fmt.Sprintf("use a positive duration up to \"1m\"; the default is %q", DefaultFeedbackTimeout))
			case d > maxFeedbackTimeout:
				l.problem(key, fmt.Sprintf("%s is longer than a minute", r.FeedbackTimeout),
					fmt.Sprintf("use at most \"1m\"; the default is %q", DefaultFeedbackTimeout))
			default:
				out.FeedbackTimeout = d
			}
		}
		// The default written out (as the example config does) says
		// nothing; another value without feedback is a forgotten feedback.
		if r.Feedback == "" && out.FeedbackTimeout != mustDuration(DefaultFeedbackTimeout) {
			l.warn(key, "is set but this relay has no feedback input, so it does nothing",
				`set feedback = "INPUT" to the [[input]] that follows the relay, or remove feedback_timeout`)
		}
	}

	out.Offline = DefaultOffline
	if key := k + ".offline"; l.keys.has(key) {
		switch r.Offline {
		case OfflineKeep, OfflineOff:
			out.Offline = r.Offline
		default:
			l.problem(key, fmt.Sprintf("unknown policy %q", r.Offline), `use "keep" (stay as it is) or "off" (switch off after offline_after)`)
		}
	}
	out.OfflineAfter = mustDuration(DefaultOfflineAfter)
	if key := k + ".offline_after"; l.keys.has(key) {
		if d, ok := l.duration(key, r.OfflineAfter); ok {
			if d < minOfflineAfter {
				l.problem(key, fmt.Sprintf("%s is shorter than 1s", r.OfflineAfter),
					fmt.Sprintf("use at least \"1s\"; the default is %q", DefaultOfflineAfter))
			} else {
				out.OfflineAfter = d
			}
		}
		// As with feedback_timeout, the default written out says nothing.
		if out.Offline == OfflineKeep && out.OfflineAfter != mustDuration(DefaultOfflineAfter) {
			l.warn(key, `is set but offline is "keep", so the relay is never switched off for being offline`,
				`set offline = "off" to switch it off after offline_after, or remove offline_after`)
		}
	}
}

// checkInputs checks each [[input]] (its pin through claim, shared with the
// outputs), the relays its toggles names (relays: relay name → key of its
// name), and each relay's feedback input.
func (l *loader) checkInputs(c *Config, claim func(key, pin string), relays map[string]string) {
	if p, ok := l.keys["input"]; ok && p.header {
		l.problem("input", "is written [input]", "write [[input]] (double brackets): each input is one entry of an array")
	}
	names := map[string]int{} // input name → index
	for i, in := range l.doc.Inputs {
		k := "input[" + strconv.Itoa(i) + "]"
		out := Input{Name: in.Name, Pin: in.Pin, Pull: DefaultPull, ActiveLow: in.ActiveLow, Toggles: in.Toggles,
			Debounce: mustDuration(DefaultDebounce)}
		switch first, dup := names[in.Name]; {
		case in.Name == "":
			l.problem(k+".name", "an input needs a name", `set name = "…" in this [[input]]; events and status name inputs by it`)
		case dup:
			fk := "input[" + strconv.Itoa(first) + "].name"
			l.problem(k+".name", fmt.Sprintf("input name %q is already used by %s (line %d)", in.Name, fk, l.keys.line(fk)),
				"give each input its own name")
		default:
			names[in.Name] = i
		}
		if in.Pin == "" {
			l.problem(k+".pin", "an input needs a pin", `set pin = "GPIO5" (the line name) in this [[input]]`)
		} else {
			claim(k+".pin", in.Pin)
		}
		if l.keys.has(k + ".pull") {
			switch in.Pull {
			case PullUp, PullDown, PullNone:
				out.Pull = in.Pull
			default:
				l.problem(k+".pull", fmt.Sprintf("unknown pull %q", in.Pull),
					`use "up" (contact to ground), "down" (contact to 3.3V) or "none" (the circuit has its own resistor)`)
			}
		}
		if l.keys.has(k + ".debounce") {
			if d, ok := l.duration(k+".debounce", in.Debounce); ok {
				switch {
				case d < 0:
					l.problem(k+".debounce", fmt.Sprintf("%s is negative", in.Debounce),
						fmt.Sprintf("use \"0s\" for none, or a positive duration; the default is %q", DefaultDebounce))
				case d > maxDebounce:
					l.problem(k+".debounce", fmt.Sprintf("%s is longer than 10s", in.Debounce),
						fmt.Sprintf("use at most \"10s\"; the default is %q", DefaultDebounce))
				default:
					out.Debounce = d
				}
			}
		}
		if in.Toggles != "" {
			if _, ok := relays[in.Toggles]; !ok {
				l.problem(k+".toggles", fmt.Sprintf("no relay named %q", in.Toggles), "name one of the [[relay]] blocks, or add one")
			}
		}
		c.Inputs = append(c.Inputs, out)
	}

	feedbackOf := map[string]int{} // input name → relay index whose feedback it is
	for i, r := range l.doc.Relays {
		if r.Feedback == "" {
			continue
		}
		k := "relay[" + strconv.Itoa(i) + "].feedback"
		in, ok := names[r.Feedback]
		if !ok {
			l.problem(k, fmt.Sprintf("no input named %q", r.Feedback), "name one of the [[input]] blocks, or add one")
			continue
		}
		if first, dup := feedbackOf[r.Feedback]; dup {
			fk := "relay[" + strconv.Itoa(first) + "].feedback"
			l.problem(k, fmt.Sprintf("input %q is already the feedback of relay %q (%s, line %d)", r.Feedback, l.doc.Relays[first].Name, fk, l.keys.line(fk)),
				"give each relay its own feedback input")
			continue
		}
		feedbackOf[r.Feedback] = i
		// A feedback input follows its relay; one that also toggled a
		// relay would switch relays by itself on every command.
		if t := l.doc.Inputs[in].Toggles; t != "" {
			tk := "input[" + strconv.Itoa(in) + "].toggles"
			l.problem(tk, fmt.Sprintf("input %q is the feedback of relay %q (%s, line %d) and may not also toggle relay %q: that is a loop",
				r.Feedback, r.Name, k, l.keys.line(k), t),
				"remove toggles from this [[input]], or use another input as the relay's feedback")
		}
	}
}

// mustDuration parses one of the package's default durations.
func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("config: bad default duration " + s)
	}
	return d
}
