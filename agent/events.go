package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// Causes of a relay event: why the agent switched a relay by itself.
const (
	causeOffline  = "offline"  // the offline policy
	causeMaxOn    = "max_on"   // its max_on ran out
	causeFor      = "for"      // a command's `for` ran out
	causeFeedback = "feedback" // it was switched on and its feedback never followed
	causeInput    = "input"    // an input's press toggled it (toggles)
)

// inputEvent and relayEvent are the payloads on event_topic
// (docs/design.md#events). Seq counts every event the agent has made, across
// restarts, so a receiver sees order and gaps.
type inputEvent struct {
	_      noEq   // never compared: no equality function in the binary
	Input  string `json:"input"`
	Active bool   `json:"active"`
	At     string `json:"at"`
	Seq    uint64 `json:"seq"`
}

type relayEvent struct {
	_     noEq   // never compared: no equality function in the binary
	Relay string `json:"relay"`
	On    bool   `json:"on"`
	At    string `json:"at"`
	Cause string `json:"cause"`
	Input string `json:"input,omitempty"` // cause input: which one
	Seq   uint64 `json:"seq"`
}

func eventTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// addEvent numbers an event and queues it in c's outbox, when events are
// on (event_topic not ""). The number is the dispatcher's once c is
// applied (apply takes c.EventSeq).
func (d *dispatcher) addEvent(c *store.Change, build func(seq uint64) any) {
	if d.eventTopic == "" {
		return
	}
	seq := max(d.eventSeq, c.EventSeq) + 1
	b, err := json.Marshal(build(seq))
	if err != nil {
		d.log.Error("event not encoded", "err", err)
		return
	}
	c.Outbox = append(c.Outbox, store.OutMsg{Topic: d.eventTopic, Payload: b})
	c.EventSeq = seq
}

// relaySwitched records the event of a relay the agent switched by itself
// (nothing when events are off). It runs once the line moved, so no event
// claims a switch that did not happen.
func (d *dispatcher) relaySwitched(ctx context.Context, name string, on bool, at time.Time, cause, input string) {
	var c store.Change
	d.addEvent(&c, func(seq uint64) any {
		return relayEvent{Relay: name, On: on, At: eventTime(at), Cause: cause, Input: input, Seq: seq}
	})
	if len(c.Outbox) > 0 {
		d.apply(ctx, c)
	}
}
