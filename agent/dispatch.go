package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// dispatchStore is what the dispatcher needs of the store.
type dispatchStore interface {
	Get(seq uint64) (store.Record, error)
	PendingSeqs(after uint64, max int) ([]uint64, error)
	LookupCommand(id string) (store.Command, bool, error)
	Apply(c store.Change) ([]uint64, error)
}

// indicator is what the dispatcher needs of the status LEDs.
type indicator interface {
	Identify(d time.Duration)
}

// localRelayReq is a relay change asked for on the control socket.
type localRelayReq struct {
	_ noEq // never compared: no equality function in the binary
	relayRequest
	reply chan localRelayResult
}

type localRelayResult struct {
	state relay.State // what was applied
	err   error
}

// dispatcher executes commands. It is the one goroutine that owns the relay
// bank, so commands, the CLI and deadlines change relays one at a time: an
// interlock check and the switch it allows cannot interleave with another.
//
// At most once: before a relay moves, one transaction records the command
// id as started together with the relay's new state; after, a second
// records the reply, the outbox entry and the handled mark. A crash between
// the two leaves a started id, which a restart finishes with its recorded
// reply and never executes again; the relay comes up from the recorded
// state through its power_on policy.
type dispatcher struct {
	db          dispatchStore
	bank        *relay.Bank
	leds        indicator
	log         *slog.Logger
	notifyTopic string
	replyTopic  string
	status      func() Status
	now         func() time.Time

	pending   wake // poked by the writer: it stored pending records
	local     chan localRelayReq
	replies   wake          // poked for the session: there are replies to publish
	freed     wake          // poked for the writer: records were handled (room after ErrFull)
	onBacklog func()        // tells health what is pending changed
	done      chan struct{} // closed when run returns; nil in tests that drive drain
	retry     backoff.Backoff

	// rules turn platform payloads into actions; nil = none.
	rules        *rules.Set
	ruleStats    *ruleStats // counts for status; nil in tests that do not read them
	unmatchedLog logLimiter

	beat heartbeat // see writer.beat

	counts *counters // relay switches, commands, input changes; nil = none
	method string    // the command being handled, bounded (methodLabel); "" = none

	// Inputs, events, feedback and the offline policy.
	relayCfg   map[string]config.Relay // by name
	relayNames []string                // sorted
	inputs     []config.Input          // inputChange.input indexes it
	inputCh    <-chan inputChange      // debounced changes, from the inputs' goroutines
	inputState *inputStates            // what status shows; the dispatcher writes it
	later      []inputChange           // presses that came during a feedback wait
	faults     *relayFaults
	faultLED   func(on bool) // lights the fault LED while a relay is faulty; nil = none
	eventTopic string        // "" = no events
	eventSeq   uint64        // the last event number applied
	link       wake          // poked when the connection comes or goes
	offline    offlinePolicy

	// failpoint, when set, is called between a relay's move and the
	// transaction that records the reply (the fault tests kill the process
	// there).
	failpoint func()
}

const identifyDefault = 30 * time.Second

func (d *dispatcher) run(ctx context.Context) {
	if d.done != nil {
		defer close(d.done)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if d.offline.connected != nil {
		d.linkChanged(ctx)
		defer d.recordStop()
	}
	for {
		d.drain(ctx)
		d.expireDeadlines(ctx)
		offlineDue := d.applyOffline(ctx)
		d.runLater(ctx)
		if ctx.Err() != nil {
			return
		}
		d.beat.stamp()
		wait := heartbeatEvery
		// A deadline still due here is one expireDeadlines could not drive
		// (a hardware error): retry it at the heartbeat pace, not in a
		// busy loop.
		if _, at, ok := d.bank.NextDeadline(); ok {
			if due := at.Sub(d.now()); due > 0 {
				wait = min(due, wait)
			}
		}
		if !offlineDue.IsZero() {
			wait = max(min(offlineDue.Sub(d.now()), wait), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.pending:
		case <-timer.C:
		case req := <-d.local:
			st, err := d.setLocal(ctx, req.relayRequest)
			req.reply <- localRelayResult{st, err}
		case c := <-d.inputCh:
			d.onInput(ctx, c, false)
		case <-d.link:
			d.linkChanged(ctx)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// drain handles every pending record, oldest first.
func (d *dispatcher) drain(ctx context.Context) {
	var after uint64
	for ctx.Err() == nil {
		seqs, err := d.db.PendingSeqs(after, 64)
		if err != nil {
			d.log.Error("read pending commands", "err", err)
			return
		}
		if len(seqs) == 0 {
			return
		}
		for _, seq := range seqs {
			if ctx.Err() != nil {
				return
			}
			d.handle(ctx, seq)
			after = seq
		}
	}
}

// apply commits a change, retrying while the store refuses (a full disk):
// what it records has happened or must happen, so it cannot be dropped.
func (d *dispatcher) apply(ctx context.Context, c store.Change) bool {
	defer d.retry.Reset()
	for {
		d.beat.stamp()
		_, err := d.db.Apply(c)
		if err == nil {
			d.eventSeq = max(d.eventSeq, c.EventSeq)
			if len(c.Outbox) > 0 {
				d.replies.poke()
			}
			if len(c.Handled) > 0 {
				d.freed.poke()
			}
			if (len(c.Outbox) > 0 || len(c.Handled) > 0) && d.onBacklog != nil {
				d.onBacklog()
			}
			return true
		}
		d.log.Error("store cannot record a command's progress; retrying", "err", err)
		if !d.retry.Sleep(ctx, nil) {
			return false
		}
	}
}

func (d *dispatcher) outbox(payload []byte) []store.OutMsg {
	if d.replyTopic == "" {
		return nil
	}
	return []store.OutMsg{{Topic: d.replyTopic, Payload: payload}}
}

// finish records a command's final reply and queues it.
func (d *dispatcher) finish(ctx context.Context, seq uint64, id string, payload []byte) {
	d.commandDone(payload)
	c := store.Change{Handled: []uint64{seq}, Outbox: d.outbox(payload)}
	if id != "" {
		c.Command = &store.CommandChange{ID: id, Command: store.Command{Seq: seq, Done: true, Reply: payload}}
	}
	d.apply(ctx, c)
}

func (d *dispatcher) handle(ctx context.Context, seq uint64) {
	d.method = "invalid"
	rec, err := d.db.Get(seq)
	if err != nil {
		d.log.Error("read pending record", "seq", seq, "err", err)
		d.apply(ctx, store.Change{Handled: []uint64{seq}})
		return
	}
	// Rules first: a platform's payload that a rule takes is the rule's,
	// even on the notify topic, where it would be an unknown method.
	onRules := d.rules.OnTopic(rec.Topic)
	if onRules && d.handleRules(ctx, seq, rec) {
		return
	}
	// Commands are accepted only from the notify topic (docs/design.md#security).
	if rec.Topic != d.notifyTopic {
		if onRules {
			d.unmatched(seq, rec)
		}
		d.apply(ctx, store.Change{Handled: []uint64{seq}})
		return
	}
	cmd, err := parseCommand(rec.Payload)
	if errors.Is(err, errNotCommand) {
		if onRules {
			d.unmatched(seq, rec)
		}
		d.apply(ctx, store.Change{Handled: []uint64{seq}})
		return
	}
	var ce *cmdError
	if errors.As(err, &ce) {
		d.log.Warn("command refused", "seq", seq, "id", clip(ce.ID), "code", ce.Code, "reason", clip(ce.Message))
		id := ""
		if ce.HasID {
			id = ce.ID
		}
		prev, seen, ok := d.lookup(ctx, id)
		if !ok {
			return
		}
		if seen {
			d.resend(ctx, seq, id, prev)
			return
		}
		d.finish(ctx, seq, id, errorReply(ce))
		return
	}
	prev, seen, ok := d.lookup(ctx, cmd.ID)
	if !ok {
		return
	}
	if seen {
		d.resend(ctx, seq, cmd.ID, prev)
		return
	}
	d.method = methodLabel(cmd.Method)
	if !cmd.ExpiresAt.IsZero() && !d.now().Before(cmd.ExpiresAt) {
		d.log.Warn("command expired", "seq", seq, "id", cmd.ID, "expires_at", cmd.ExpiresAt)
		d.finish(ctx, seq, cmd.ID, errorReply(&cmdError{ID: cmd.ID, HasID: true, Code: codeExpired,
			Message: "expired at " + cmd.ExpiresAt.UTC().Format(time.RFC3339)}))
		return
	}
	d.log.Info("command", "seq", seq, "id", cmd.ID, "method", clip(cmd.Method))
	switch cmd.Method {
	case methodRelaySet, methodRelayToggle:
		d.relayCommand(ctx, seq, cmd)
	case methodLEDIdentify:
		d.identify(ctx, seq, cmd)
	case methodStatus:
		if err := decodeParams(cmd, &struct{}{}); err != nil {
			d.finish(ctx, seq, cmd.ID, errorReply(err.(*cmdError)))
			return
		}
		d.finish(ctx, seq, cmd.ID, okReply(cmd.ID, d.status()))
	case methodPing:
		if err := decodeParams(cmd, &struct{}{}); err != nil {
			d.finish(ctx, seq, cmd.ID, errorReply(err.(*cmdError)))
			return
		}
		d.finish(ctx, seq, cmd.ID, okReply(cmd.ID, map[string]bool{"pong": true}))
	default:
		d.finish(ctx, seq, cmd.ID, errorReply(&cmdError{ID: cmd.ID, HasID: true, Code: codeUnknownMethod,
			Message: fmt.Sprintf("unknown method %q (known: relay.set, relay.toggle, led.identify, agent.status, agent.ping)", clip(cmd.Method))}))
	}
}

// lookup says whether command id was seen before. It fails closed: while
// the store cannot answer, the command waits (retried with backoff), since
// "not seen" would execute it a second time. ok is false only when ctx
// ended first; the record stays pending and is handled after a restart.
func (d *dispatcher) lookup(ctx context.Context, id string) (prev store.Command, seen, ok bool) {
	if id == "" {
		return store.Command{}, false, true
	}
	defer d.retry.Reset()
	for {
		d.beat.stamp()
		prev, seen, err := d.db.LookupCommand(id)
		if err == nil {
			return prev, seen, true
		}
		d.log.Error("cannot read whether a command ran before; it waits rather than risk running twice", "id", clip(id), "err", err)
		if !d.retry.Sleep(ctx, nil) {
			return store.Command{}, false, false
		}
	}
}

// resend answers a command id seen before with its first reply. A started
// but unfinished one (a crash mid-command) is finished now, not executed
// again.
func (d *dispatcher) resend(ctx context.Context, seq uint64, id string, prev store.Command) {
	if prev.Done {
		d.log.Info("command id already executed; sending its first reply again", "seq", seq, "id", id, "first_seq", prev.Seq)
	} else {
		d.log.Warn("command was interrupted by a restart after it acted; finishing it without acting again", "seq", seq, "id", id)
	}
	d.counts.add(countCommand, d.method, "duplicate")
	handled := []uint64{seq}
	if prev.Seq != seq {
		handled = append(handled, prev.Seq)
	}
	d.apply(ctx, store.Change{
		Handled: handled,
		Outbox:  d.outbox(prev.Reply),
		Command: &store.CommandChange{ID: id, Command: store.Command{Seq: prev.Seq, Done: true, Reply: prev.Reply}},
	})
}

// identify blinks the LEDs, at most once per id like every command: the
// id is recorded as started before the LEDs change, so a restart finishes
// it without blinking again.
func (d *dispatcher) identify(ctx context.Context, seq uint64, cmd command) {
	var p struct {
		For duration `json:"for"`
	}
	if err := decodeParams(cmd, &p); err != nil {
		d.finish(ctx, seq, cmd.ID, errorReply(err.(*cmdError)))
		return
	}
	dur := p.For.Duration
	if dur == 0 {
		dur = identifyDefault
	}
	if dur > maxIdentify {
		d.finish(ctx, seq, cmd.ID, errorReply(&cmdError{ID: cmd.ID, HasID: true, Code: codeBadParams,
			Message: fmt.Sprintf("params.for is %s; led.identify lasts at most %s", dur, maxIdentify)}))
		return
	}
	ok := okReply(cmd.ID, map[string]string{"identify": dur.String()})
	if !d.apply(ctx, store.Change{Command: &store.CommandChange{ID: cmd.ID, Command: store.Command{Seq: seq, Reply: ok}}}) {
		return
	}
	if d.leds != nil {
		d.leds.Identify(dur)
	}
	d.finish(ctx, seq, cmd.ID, ok)
}

type relayParams struct {
	_     noEq     // never compared: no equality function in the binary
	Relay string   `json:"relay"`
	On    *bool    `json:"on"`
	For   duration `json:"for"`
}

func (d *dispatcher) relayCommand(ctx context.Context, seq uint64, cmd command) {
	var p relayParams
	fail := func(ce *cmdError) {
		d.log.Warn("command refused", "seq", seq, "id", cmd.ID, "code", ce.Code, "reason", clip(ce.Message))
		d.finish(ctx, seq, cmd.ID, errorReply(ce))
	}
	if err := decodeParams(cmd, &p); err != nil {
		fail(err.(*cmdError))
		return
	}
	if p.Relay == "" {
		fail(&cmdError{ID: cmd.ID, HasID: true, Code: codeBadParams, Message: "params.relay (the relay's name) is required"})
		return
	}
	req := relayRequest{name: p.Relay, dur: p.For.Duration}
	switch cmd.Method {
	case methodRelaySet:
		if p.On == nil {
			fail(&cmdError{ID: cmd.ID, HasID: true, Code: codeBadParams, Message: "params.on (true or false) is required"})
			return
		}
		req.on = *p.On
	case methodRelayToggle:
		if p.On != nil || p.For.Duration > 0 {
			fail(&cmdError{ID: cmd.ID, HasID: true, Code: codeBadParams, Message: "relay.toggle takes only params.relay"})
			return
		}
		req.toggle = true
	}
	cur, st, ce := d.planRelay(req)
	if ce != nil {
		ce.ID, ce.HasID = cmd.ID, true
		fail(ce)
		return
	}
	result := map[string]any{"relay": p.Relay, "on": st.On}
	if !st.Deadline.IsZero() {
		result["until"] = st.Deadline.UTC().Format(time.RFC3339Nano)
	}
	ok := okReply(cmd.ID, result)
	// Phase 1 records the intent beside the new state; a hardware failure
	// is answered and recorded done in the same transaction that puts the
	// old state back.
	started := &store.CommandChange{ID: cmd.ID, Command: store.Command{Seq: seq, Reply: ok}}
	failed := func(ce *cmdError) store.Change {
		ce.ID, ce.HasID = cmd.ID, true
		return store.Change{
			Handled: []uint64{seq},
			Outbox:  d.outbox(errorReply(ce)),
			Command: &store.CommandChange{ID: cmd.ID, Command: store.Command{Seq: seq, Done: true, Reply: errorReply(ce)}},
		}
	}
	if done, ce := d.driveRelay(ctx, req.name, causeCommand, cur, st, started, failed); !done || ce != nil {
		return
	}
	d.log.Info("relay switched", "relay", p.Relay, "on", st.On, "until", st.Deadline, "id", cmd.ID)
	if d.failpoint != nil {
		d.failpoint()
	}
	if ce := d.confirm(ctx, req.name, st); ce != nil {
		ce.ID, ce.HasID = cmd.ID, true
		ok = errorReply(ce)
	}
	// Phase 2: the reply.
	d.finish(ctx, seq, cmd.ID, ok)
}

// relayRequest is a relay change asked for by a command or on the control
// socket.
type relayRequest struct {
	_      noEq // never compared: no equality function in the binary
	name   string
	on     bool
	toggle bool          // flip it; on is ignored
	dur    time.Duration // > 0: switch off again after this long (with on)
}

// planRelay checks req and returns the relay's state now and the one req
// gives (max_on caps its deadline), or the refusal.
func (d *dispatcher) planRelay(req relayRequest) (cur, next relay.State, ce *cmdError) {
	cur, err := d.bank.State(req.name)
	if err != nil {
		return cur, next, &cmdError{Code: codeUnknownRelay, Message: fmt.Sprintf("no relay named %q", clip(req.name))}
	}
	on := req.on
	if req.toggle {
		on = !cur.On
	}
	switch {
	case req.dur < 0:
		return cur, next, &cmdError{Code: codeBadParams, Message: fmt.Sprintf("for is %s; it must be positive", req.dur)}
	case !on && req.dur > 0:
		return cur, next, &cmdError{Code: codeBadParams, Message: "for goes with on"}
	}
	next, err = d.bank.Plan(req.name, on, req.dur, d.now())
	if errors.Is(err, relay.ErrInterlocked) {
		return cur, next, &cmdError{Code: codeInterlocked, Message: err.Error()}
	}
	if err != nil {
		return cur, next, &cmdError{Code: codeBadParams, Message: err.Error()}
	}
	return cur, next, nil
}

// driveRelay is the one way a requested relay change happens: the new
// state is recorded (with started, a command's intent, if any) before the
// relay moves; if the line cannot be driven, the old state is recorded
// back, together with what failed(ce) adds, and ce says why. done is false
// only when ctx ended before the first record was on disk (nothing moved).
func (d *dispatcher) driveRelay(ctx context.Context, name, cause string, cur, next relay.State,
	started *store.CommandChange, failed func(*cmdError) store.Change) (done bool, ce *cmdError) {
	if !d.apply(ctx, store.Change{Relays: map[string]store.RelayState{name: store.RelayState(next)}, Command: started}) {
		return false, nil
	}
	err := d.bank.Drive(name, next)
	if err == nil {
		d.switched(name, cause, cur.On, next.On)
		return true, nil
	}
	d.log.Error("relay did not switch", "relay", name, "err", err)
	ce = &cmdError{Code: codeHardware, Message: err.Error()}
	c := store.Change{}
	if failed != nil {
		c = failed(ce)
	}
	c.Relays = map[string]store.RelayState{name: store.RelayState(cur)}
	d.apply(ctx, c)
	return true, ce
}

// setLocal is `edge-agent relay set` through the control socket: the same
// checks and the same recording as a command's, without an id.
func (d *dispatcher) setLocal(ctx context.Context, req relayRequest) (relay.State, error) {
	cur, st, ce := d.planRelay(req)
	if ce != nil {
		return st, errors.New(ce.Message)
	}
	done, ce := d.driveRelay(ctx, req.name, causeLocal, cur, st, nil, nil)
	if ce != nil {
		return st, errors.New(ce.Message)
	}
	if !done {
		return st, errors.New("the agent is stopping; the relay was not switched")
	}
	d.log.Info("relay switched", "relay", req.name, "on", st.On, "until", st.Deadline, "by", "control socket")
	if ce := d.confirm(ctx, req.name, st); ce != nil {
		return st, errors.New(ce.Message)
	}
	return st, nil
}

// expireDeadlines switches off every relay whose `for` or max_on ran out:
// the off state is recorded first, so a crash in between still ends off;
// an event with the cause follows once it moved.
func (d *dispatcher) expireDeadlines(ctx context.Context) {
	now := d.now()
	for {
		name, at, ok := d.bank.NextDeadline()
		if !ok || at.After(now) {
			return
		}
		cur, _ := d.bank.State(name)
		st := relay.State{On: false, Since: now}
		if _, err := d.db.Apply(store.Change{Relays: map[string]store.RelayState{name: store.RelayState(st)}}); err != nil {
			d.log.Error("record relay off at its deadline; switching off anyway", "relay", name, "err", err)
		}
		if err := d.bank.Drive(name, st); err != nil {
			d.log.Error("relay did not switch off at its deadline", "relay", name, "err", err)
			return
		}
		cause := causeFor
		if rc := d.relayCfg[name]; rc.MaxOn > 0 && at.Equal(cur.Since.Add(rc.MaxOn)) {
			cause = causeMaxOn
		}
		d.switched(name, cause, cur.On, false)
		d.log.Info("relay switched off at its deadline", "relay", name, "deadline", at, "cause", cause)
		d.relaySwitched(ctx, name, false, now, cause, "")
		d.confirm(ctx, name, st)
	}
}

// onInput takes a debounced input change: the status shows it, an event
// records it, and a press (a change to active) of an input that toggles a
// relay toggles it, through the same checks as a command. During a
// feedback wait (deferToggle) the press waits until the wait is over.
func (d *dispatcher) onInput(ctx context.Context, c inputChange, deferToggle bool) {
	in := d.inputs[c.input]
	d.inputState.set(in.Name, InputStatus{Active: c.active, Since: c.at.UTC()})
	d.counts.add(countInput, in.Name, "")
	d.log.Info("input", "input", in.Name, "active", c.active, "at", c.at)
	var ch store.Change
	d.addEvent(&ch, func(seq uint64) any {
		return inputEvent{Input: in.Name, Active: c.active, At: eventTime(c.at), Seq: seq}
	})
	if len(ch.Outbox) > 0 {
		d.apply(ctx, ch)
	}
	if in.Toggles == "" || !c.active {
		return
	}
	if deferToggle {
		d.later = append(d.later, c)
		return
	}
	d.toggleByInput(ctx, in)
}

// runLater toggles for the presses that came during a feedback wait.
func (d *dispatcher) runLater(ctx context.Context) {
	for len(d.later) > 0 && ctx.Err() == nil {
		c := d.later[0]
		d.later = d.later[1:]
		d.toggleByInput(ctx, d.inputs[c.input])
	}
}

// toggleByInput is a press of an input with toggles: the relay flips, with
// the interlock and max_on of any other switch, broker or not.
func (d *dispatcher) toggleByInput(ctx context.Context, in config.Input) {
	cur, st, ce := d.planRelay(relayRequest{name: in.Toggles, toggle: true})
	if ce != nil {
		d.log.Warn("input press did not toggle its relay", "input", in.Name, "relay", in.Toggles, "code", ce.Code, "reason", ce.Message)
		return
	}
	done, ce := d.driveRelay(ctx, in.Toggles, causeInput, cur, st, nil, nil)
	if !done || ce != nil {
		return
	}
	d.log.Info("relay switched", "relay", in.Toggles, "on", st.On, "until", st.Deadline, "by", "input "+in.Name)
	d.relaySwitched(ctx, in.Toggles, st.On, st.Since, causeInput, in.Name)
	d.confirm(ctx, in.Toggles, st)
}

// recordStop notes, as the daemon stops, that the link ends here: a
// restart counts an offline spell from now, not from its own start.
func (d *dispatcher) recordStop() {
	if d.offline.since.IsZero() {
		now := d.now().Round(0)
		if _, err := d.db.Apply(store.Change{Offline: &now}); err != nil {
			d.log.Warn("record the stop for the offline policy", "err", err)
		}
	}
}
