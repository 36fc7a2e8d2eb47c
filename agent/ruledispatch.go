package agent

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/store"
)

// ruleStats counts, for the status document, the messages rules acted on
// and the ones on a rule's topic that no rule matched. The dispatcher
// writes, status reads.
type ruleStats struct {
	_                  noEq // never compared: no equality function in the binary
	matched, unmatched atomic.Uint64
}

// RulesStatus is the status document's "rules" object.
type RulesStatus struct {
	Matched   uint64 `json:"matched"`
	Unmatched uint64 `json:"unmatched"`
}

// ruleResult is what one rule's action came to: recorded under its
// at-most-once key, so a redelivered message is answered the same way
// without acting again.
type ruleResult struct {
	_       noEq   // never compared: no equality function in the binary
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
	Relay   string `json:"relay,omitempty"`
	On      *bool  `json:"on,omitempty"`
	Until   string `json:"until,omitempty"`
}

func (r ruleResult) encode() []byte { b, _ := json.Marshal(r); return b }

// ruleKey is a rule action's at-most-once key in the commands bucket:
// (rule, id), apart from the agent's own command ids.
func ruleKey(rule, id string) string { return "rule\x00" + rule + "\x00" + id }

// handleRules acts on the rules a stored message matched, each at most once
// by (rule, id), through the same relay path as commands (interlock,
// max_on, `for` deadlines that survive power loss), then records the
// message handled together with its replies. It returns false when no rule
// matched.
func (d *dispatcher) handleRules(ctx context.Context, seq uint64, rec store.Record) bool {
	res := d.rules.Match(rec.Topic, rec.Payload)
	if len(res.Matched) == 0 {
		return false
	}
	if d.ruleStats != nil {
		d.ruleStats.matched.Add(1)
	}
	results := make([]ruleResult, len(res.Matched))
	for i, o := range res.Matched {
		r, ok := d.ruleAction(ctx, seq, o)
		if !ok {
			return true // stopping: the record stays pending
		}
		results[i] = r
		if r.Code != rules.CodeOK {
			d.log.Warn("rule refused", "seq", seq, "rule", o.Rule.Name, "id", clip(o.Action.ID), "code", r.Code, "reason", clip(r.Message))
		}
	}
	d.apply(ctx, store.Change{Handled: []uint64{seq}, Outbox: d.ruleReplies(rec.Topic, res, results)})
	return true
}

// ruleAction carries out one matched rule, or answers it as before when its
// (rule, id) was seen. ok is false only when ctx ended first.
func (d *dispatcher) ruleAction(ctx context.Context, seq uint64, o rules.Outcome) (ruleResult, bool) {
	if o.Code != 0 {
		return ruleResult{Code: o.Code, Message: o.Message}, true
	}
	a := o.Action
	key := ruleKey(o.Rule.Name, a.ID)
	prev, seen, ok := d.lookup(ctx, key)
	if !ok {
		return ruleResult{}, false
	}
	if seen {
		var r ruleResult
		if json.Unmarshal(prev.Reply, &r) != nil || r.Code == 0 {
			r = ruleResult{Code: rules.CodeOK}
		}
		d.log.Info("rule action already done for this id; answering as before", "rule", o.Rule.Name, "id", clip(a.ID))
		return r, true
	}
	d.log.Info("rule", "seq", seq, "rule", o.Rule.Name, "id", clip(a.ID), "action", a.Method, "relay", a.Relay)

	if a.Method == rules.ActionLEDIdentify {
		dur := a.For
		if dur == 0 {
			dur = identifyDefault
		}
		if dur > maxIdentify {
			return ruleResult{Code: rules.CodeBadParams, Message: "identify lasts at most " + maxIdentify.String()}, true
		}
		r := ruleResult{Code: rules.CodeOK}
		if !d.apply(ctx, store.Change{Command: &store.CommandChange{ID: key, Command: store.Command{Seq: seq, Done: true, Reply: r.encode()}}}) {
			return ruleResult{}, false
		}
		if d.leds != nil {
			d.leds.Identify(dur)
		}
		return r, true
	}

	cur, st, ce := d.planRelay(relayRequest{name: a.Relay, on: a.On, toggle: a.Method == rules.ActionRelayToggle, dur: a.For})
	if ce != nil {
		code := rules.CodeBadParams
		if ce.Code == codeInterlocked {
			code = rules.CodeInterlocked
		}
		return ruleResult{Code: code, Message: ce.Message}, true
	}
	on := st.On
	r := ruleResult{Code: rules.CodeOK, Relay: a.Relay, On: &on}
	if !st.Deadline.IsZero() {
		r.Until = st.Deadline.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	// The (rule, id) is recorded with its answer in the transaction that
	// records the relay's new state, before the relay moves: a crash after
	// it never acts twice. A hardware failure records its own answer.
	started := &store.CommandChange{ID: key, Command: store.Command{Seq: seq, Done: true, Reply: r.encode()}}
	var failed ruleResult
	done, hw := d.driveRelay(ctx, a.Relay, causeRule, cur, st, started, func(ce *cmdError) store.Change {
		failed = ruleResult{Code: rules.CodeHardware, Message: ce.Message}
		return store.Change{Command: &store.CommandChange{ID: key, Command: store.Command{Seq: seq, Done: true, Reply: failed.encode()}}}
	})
	if !done {
		return ruleResult{}, false
	}
	if hw != nil {
		return failed, true
	}
	d.log.Info("relay switched", "relay", a.Relay, "on", st.On, "until", st.Deadline, "rule", o.Rule.Name, "id", clip(a.ID))
	if d.failpoint != nil {
		d.failpoint()
	}
	if ce := d.confirm(ctx, a.Relay, st); ce != nil {
		// The relay moved but its contacts did not follow: the answer
		// recorded before it moved is replaced by the failure.
		r = ruleResult{Code: rules.CodeHardware, Message: ce.Code + ": " + ce.Message}
		d.apply(ctx, store.Change{Command: &store.CommandChange{ID: key, Command: store.Command{Seq: seq, Done: true, Reply: r.encode()}}})
	}
	return r, true
}

// alinkReply is the thing-model answer: {"id","code","data"}, and a message
// when something failed.
type alinkReply struct {
	ID      string         `json:"id"`
	Code    int            `json:"code"`
	Data    map[string]any `json:"data"`
	Message string         `json:"message,omitempty"`
}

// ruleReplies are the message's answers: one alink reply on {topic}_reply
// if any matched rule asks for it (200 only if every action succeeded), and
// the agent's own reply on reply_topic for each rule that asks for that.
func (d *dispatcher) ruleReplies(topic string, res rules.Result, results []ruleResult) []store.OutMsg {
	var out []store.OutMsg
	alink := alinkReply{ID: res.ID, Code: rules.CodeOK, Data: map[string]any{}}
	wantAlink := false
	var msgs []string
	for i, o := range res.Matched {
		r := results[i]
		switch o.Rule.Reply {
		case rules.ReplyAlink:
			wantAlink = true
		case rules.ReplyAgent:
			if d.replyTopic == "" {
				continue
			}
			var p []byte
			if r.Code == rules.CodeOK {
				result := map[string]any{"rule": o.Rule.Name}
				if r.Relay != "" {
					result["relay"], result["on"] = r.Relay, r.On
				}
				if r.Until != "" {
					result["until"] = r.Until
				}
				p = okReply(o.Action.ID, result)
			} else {
				p = errorReply(&cmdError{ID: o.Action.ID, HasID: o.Action.ID != "", Code: agentCode(r.Code), Message: r.Message})
			}
			out = append(out, store.OutMsg{Topic: d.replyTopic, Payload: p})
		}
		if r.Code != rules.CodeOK {
			if alink.Code == rules.CodeOK {
				alink.Code = r.Code
			}
			msgs = append(msgs, o.Rule.Name+": "+r.Message)
		}
	}
	if wantAlink {
		alink.Message = strings.Join(msgs, "; ")
		if len(alink.Message) > maxReplyMessage {
			alink.Message = clip(alink.Message)
		}
		b, _ := json.Marshal(alink)
		out = append([]store.OutMsg{{Topic: topic + "_reply", Payload: b}}, out...)
	}
	return out
}

// agentCode is the agent's error code for a thing-model one.
func agentCode(code int) string {
	switch code {
	case rules.CodeInterlocked:
		return codeInterlocked
	case rules.CodeHardware:
		return codeHardware
	case rules.CodeBadRequest:
		return codeBadCommand
	}
	return codeBadParams
}

// unmatched notes a message on a rule's topic that no rule acted on: it is
// stored, counted, and logged (rate-limited) with the rules it nearly
// matched, never silently dropped.
func (d *dispatcher) unmatched(seq uint64, rec store.Record) {
	if d.ruleStats != nil {
		d.ruleStats.unmatched.Add(1)
	}
	if d.unmatchedLog.allow(d.now()) {
		near := d.rules.Match(rec.Topic, rec.Payload).Near
		d.log.Warn("message on a rule's topic matched no rule; stored, not acted on", "seq", seq, "topic", clip(rec.Topic),
			"near", clip(strings.Join(near, ",")))
	}
}
