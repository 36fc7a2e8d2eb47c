package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/rules"
)

const rulesUsage = "usage: edge-agent rules test [-config PATH] [-topic T] FILE|-\n"

// cmdRules is `rules test`: which rules a payload matches and what each
// would do, without acting and without a daemon. Exit 0 when one matches,
// 1 when none does.
func cmdRules(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprint(stderr, rulesUsage)
		return exitUsage
	}
	fs := newFlags("rules test", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	topic := fs.String("topic", "", "the topic the payload came on (default: the first rule's, if it has no wildcard)")
	if fs.Parse(args[1:]) != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, rulesUsage)
		return exitUsage
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	// Parse, not Load: the rules need no secret file, and whoever tests a
	// rule need not be able to read the broker's password.
	cfg, err := config.Parse(data, *path)
	if err != nil {
		var probs *config.Errors
		if errors.As(err, &probs) {
			fmt.Fprintln(stderr, err)
		} else {
			fmt.Fprintln(stderr, "edge-agent:", err)
		}
		return exitFailure
	}
	set, err := rules.Compile(cfg.Rules, cfg.DeviceID)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	if len(set.Rules()) == 0 {
		fmt.Fprintf(stderr, "edge-agent: %s has no [[rule]]; see the example config's rule block\n", *path)
		return exitFailure
	}
	var payload []byte
	if name := fs.Arg(0); name == "-" {
		payload, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		payload, err = os.ReadFile(name)
	}
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	t := *topic
	if t == "" {
		t = set.Rules()[0].Topic
		if strings.ContainsAny(t, "+#") {
			fmt.Fprintf(stderr, "edge-agent: rule %q's topic %q has a wildcard: say which topic with -topic\n", set.Rules()[0].Name, t)
			return exitUsage
		}
	}
	res := set.Match(t, payload)
	fmt.Fprintf(stdout, "topic %s\n", t)
	for _, o := range res.Matched {
		fmt.Fprintf(stdout, "rule %s: %s\n", o.Rule.Name, describeOutcome(o, t))
	}
	for _, n := range res.Near {
		fmt.Fprintf(stdout, "rule %s: its topic matches, but not its match or its on value: no action\n", n)
	}
	if len(res.Matched) == 0 {
		if len(res.Near) == 0 {
			fmt.Fprintln(stdout, "no rule's topic matches")
		}
		fmt.Fprintln(stdout, "no rule matches: the agent would store the message and count it unmatched")
		return exitFailure
	}
	return exitOK
}

func describeOutcome(o rules.Outcome, topic string) string {
	a := o.Action
	var b strings.Builder
	if o.Code != 0 {
		fmt.Fprintf(&b, "refused, code %d: %s", o.Code, o.Message)
	} else {
		switch a.Method {
		case rules.ActionRelaySet:
			state := "off"
			if a.On {
				state = "on"
			}
			fmt.Fprintf(&b, "relay.set %s %s", a.Relay, state)
		case rules.ActionRelayToggle:
			fmt.Fprintf(&b, "relay.toggle %s", a.Relay)
		case rules.ActionLEDIdentify:
			b.WriteString("led.identify")
		}
		if a.For > 0 {
			fmt.Fprintf(&b, " for %v", a.For)
		}
		fmt.Fprintf(&b, ", id %q (once per rule and id)", a.ID)
	}
	switch o.Rule.Reply {
	case rules.ReplyAlink:
		fmt.Fprintf(&b, "; reply on %s_reply", topic)
	case rules.ReplyAgent:
		b.WriteString("; reply on reply_topic")
	}
	return b.String()
}
