package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/store"
)

// Inbox is what the writer needs of the store: one durable group commit.
type Inbox interface {
	Append(msgs []store.Message) ([]uint64, error)
}

// journalSettler is the store's SettleJournal: an Inbox with a journal
// that can be emptied while the writer waits anyway (see await).
type journalSettler interface {
	SettleJournal() error
}

// inbound is a received message waiting for the writer, with the function
// that sends its PUBACK.
type inbound struct {
	msg store.Message
	ack func()
	// refused: a possible command that is stored with its refusal and never
	// executed (see refuseOnArrival).
	refused bool
}

// size is what the message holds in memory while queued.
func (in *inbound) size() int { return len(in.msg.Topic) + len(in.msg.Payload) }

// Writer bounds. maxBatch caps one commit (and so the memory a backlog drain
// holds at once); queueLen bounds what the MQTT handler may hand over before
// it has to wait. mosquitto's in-flight window is 20 by default, but on
// reconnect it pushes the whole offline queue at once, so the queue, not the
// broker, is what bounds memory.
const (
	maxBatch = 1000
	queueLen = 1000
	// queueBytes bounds the payload bytes queued and in the batch being
	// committed together: a thousand 1 MiB messages would be a gigabyte on a
	// gateway with 512 MB. One message is always let in, whatever its size
	// (max_message_size bounds it).
	queueBytes = 4 << 20

	// Lingering for a fuller commit under a flood (see take). Up to a
	// whole maxBatch: the store journals small commits, which made them
	// fast, and a flood's commits small; a large commit is what writes
	// least flash per message (256 per commit: 376 B per 150-byte
	// message into a growing store, 500: 302 B, 1000: 267 B).
	lingerBatch = maxBatch
	lingerStep  = 200 * time.Microsecond
	lingerSteps = 25

	// The commit window (see await) ends early once windowBatch messages
	// are in: mosquitto's default in-flight window is 20, and a broker
	// sends no more until we acknowledge, so waiting longer would only
	// wait. Once two or more are in, it also ends after windowQuiet
	// without a new one (the end of a burst, or a broker with a smaller
	// in-flight window waiting for our acks).
	windowBatch = 20
	windowQuiet = 50 * time.Millisecond
)

// writer owns the write path: it takes whatever the handler has queued,
// commits it in one transaction, then acknowledges those messages in
// receive order (MQTT 3.1.1 §4.6; paho does not enforce it: docs/dependencies.md#paho-manual-ack-order).
type writer struct {
	in     chan inbound
	queued *byteGate // bytes in w.in and in the batch being committed
	inbox  Inbox
	health *health
	log    *slog.Logger
	now    func() time.Time
	sleep  func(time.Duration) // time.Sleep; tests replace it

	writerConfig
	// refusals rate-limits the log lines of messages refused on arrival.
	refusals logLimiter
	// stats counts commits and latencies for the status document; logs
	// writes the per-message line, summarised under load.
	stats ingestStats
	logs  *storedLog

	// beat is stamped by the loop at least every heartbeatEvery, also while
	// it waits and while it retries a failing store: the watchdog's proof
	// that the loop is not stuck.
	beat heartbeat

	// retry paces commit attempts after a failure (disk full, store at its
	// bound); while it fails nothing is acknowledged, so the broker keeps
	// the messages.
	retry backoff.Backoff

	// done is closed when run returns: the MQTT handler stops waiting on
	// a writer that is gone (what it held is redelivered by the broker).
	done chan struct{}
}

// writerConfig is what the writer is built with.
type writerConfig struct {
	Inbox  Inbox
	Health *health
	Log    *slog.Logger

	// NotifyTopic: only a message on it can be a command, so only those
	// are stored pending for the dispatcher.
	NotifyTopic string
	// CommitWindow ([store] commit_window) is how long, from the first
	// message's receipt, the writer waits for more before a commit, so
	// that one commit (and one write of the same flash pages) carries
	// many messages at a moderate rate. 0 = commit at once. The PUBACKs
	// still wait for the commit.
	CommitWindow time.Duration
	// ReplyTopic is where a refusal on arrival is answered ("" = nowhere).
	ReplyTopic string
	// Rules: a message on one of their topics is pending for the
	// dispatcher too; nil = none.
	Rules *rules.Set

	// Pending is poked after a commit that stored pending records (the
	// dispatcher waits on it); Replies after one that queued a reply (the
	// session's outbox). Freed is poked by the dispatcher when it handled
	// records, which may make room for a batch that failed with ErrFull.
	Pending, Replies, Freed wake
	// Flash shows stored messages on the activity LED (once per commit:
	// the LED coalesces flashes to 10 Hz anyway); nil = none.
	Flash func()
	// Backlog is called after a commit that changed what is pending
	// (commands, replies), so health learns the backlog without polling.
	Backlog func()
	// Stored is called after every commit with the last seq it stored
	// (followers, sinks); it must not block. nil = none.
	Stored func(lastSeq uint64)
}

func newWriter(c writerConfig) *writer {
	return &writer{
		writerConfig: c,
		in:           make(chan inbound, queueLen),
		queued:       newByteGate(queueBytes),
		inbox:        c.Inbox,
		health:       c.Health,
		log:          c.Log,
		logs:         newStoredLog(c.Log),
		now:          time.Now,
		sleep:        time.Sleep,
		retry:        backoff.Backoff{Min: storeRetryMin, Max: storeRetryMax},
		done:         make(chan struct{}),
	}
}

// enqueue hands a message to the writer. It blocks while the queue is full,
// in count or in bytes (back-pressure on the broker through paho), and
// gives up once the writer has stopped: an unacknowledged message is
// redelivered by the broker, so dropping it here loses nothing.
func (w *writer) enqueue(in inbound) bool {
	if !w.queued.acquire(in.size(), w.done) {
		return false
	}
	select {
	case w.in <- in:
		return true
	case <-w.done:
		w.queued.release(in.size())
		return false
	}
}

// run commits batches until ctx is done. A batch already taken is always
// finished (committed and acknowledged) or, if the store keeps failing when
// ctx ends, abandoned unacknowledged; never acknowledged without a commit.
func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	batch := make([]inbound, 0, maxBatch)
	msgs := make([]store.Message, maxBatch)
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		batch = batch[:0]
		w.beat.stamp()
		select {
		case <-ctx.Done():
			w.logs.flush(w.now())
			return
		case <-tick.C:
			w.logs.due(w.now())
			continue
		case first := <-w.in:
			batch = append(batch, first)
		}
		batch = w.take(ctx, batch)
		ok := w.store(ctx, batch, msgs)
		n := 0
		for i := range batch {
			n += batch[i].size()
		}
		w.queued.release(n)
		if !ok {
			w.logs.flush(w.now())
			return
		}
	}
}

// store commits batch and acknowledges it, in receive order. A batch that
// the store's bounds refuse (ErrFull: too many pending records at once) is
// split in halves, each stored and acknowledged in turn, so one large batch
// never wedges ingest. It reports false only when ctx ended first; nothing
// is ever acknowledged without its commit.
//
// msgs is scratch space of at least len(batch).
func (w *writer) store(ctx context.Context, batch []inbound, msgs []store.Message) bool {
	msgs = msgs[:len(batch)]
	pending := false
	for i := range batch {
		w.classify(&batch[i])
		msgs[i] = batch[i].msg
		pending = pending || msgs[i].Pending
	}
	var seqs []uint64
	for {
		var err error
		seqs, err = w.commit(ctx, msgs, len(batch) > 1)
		var tl *store.TooLargeError
		if errors.As(err, &tl) {
			// A command the store could never keep pending: refused in
			// place, the rest of the batch goes on.
			in := &batch[tl.Index]
			id := commandID(in.msg.Payload)
			w.refuse(in, &cmdError{ID: id, HasID: id != "", Code: codeBadCommand,
				Message: fmt.Sprintf("command of %d bytes is larger than the store's retain_bytes (%d); not executed", tl.Size, tl.Bound)})
			msgs[tl.Index] = in.msg
			continue
		}
		if errors.Is(err, store.ErrFull) {
			h := len(batch) / 2
			return w.store(ctx, batch[:h], msgs) && w.store(ctx, batch[h:], msgs)
		}
		if err != nil {
			return false
		}
		break
	}
	done := w.now()
	// Counted before the acks, so a sender that has its PUBACK finds its
	// message in the status.
	w.stats.noteCommit(done, batch)
	// Acknowledge only now, in receive order: every one of these is on disk.
	replies := false
	for _, in := range batch {
		in.ack()
		replies = replies || in.msg.Reply != nil
	}
	w.logs.stored(done, seqs, batch)
	w.logs.due(done)
	if w.Flash != nil {
		w.Flash()
	}
	if pending {
		w.Pending.poke()
	}
	if replies {
		w.Replies.poke()
	}
	if (pending || replies) && w.Backlog != nil {
		w.Backlog()
	}
	if w.Stored != nil && len(seqs) > 0 {
		w.Stored(seqs[len(seqs)-1])
	}
	return true
}

// classify decides how a message is stored: pending for the dispatcher (a
// possible command on the command topic), refused on arrival with a reply
// queued in the same commit (refuseOnArrival), or plain.
func (w *writer) classify(in *inbound) {
	m := &in.msg
	m.Pending, m.Reply = false, nil
	if m.Topic == w.NotifyTopic {
		if ce := refuseOnArrival(m.Payload, m.Retained, m.Oversize); ce != nil {
			w.refuse(in, ce)
			return
		}
		m.Pending = m.Oversize == 0 && mayBeCommand(m.Payload)
	}
	if m.Pending || !w.Rules.OnTopic(m.Topic) {
		return
	}
	// A message on a rule's topic waits for the dispatcher's rules, unless
	// it can never act: not a JSON object, only a marker, too large to be
	// a property set, or retained (it would act again on every new
	// subscription): stored and counted, never acted on.
	switch {
	case !startsLikeObject(m.Payload) || m.Oversize > 0:
	case m.Retained || len(m.Payload) > maxCommandBytes:
		in.refused = true
		if w.refusals.allow(w.now()) {
			w.log.Warn("message on a rule's topic refused on arrival (retained or over 64 KiB); stored, not acted on",
				"topic", clip(m.Topic), "retained", m.Retained, "size", len(m.Payload))
		}
	default:
		m.Pending = true
	}
}

// refuse stores in as handled, with ce's reply queued beside it.
func (w *writer) refuse(in *inbound, ce *cmdError) {
	in.refused, in.msg.Pending = true, false
	if w.ReplyTopic != "" {
		in.msg.Reply = &store.OutMsg{Topic: w.ReplyTopic, Payload: errorReply(ce)}
	}
	if w.refusals.allow(w.now()) {
		w.log.Warn("command refused on arrival; stored, not executed", "topic", clip(in.msg.Topic),
			"id", clip(ce.ID), "code", ce.Code, "reason", clip(ce.Message))
	}
}

// take adds what is queued to batch, up to maxBatch, waits out the commit
// window (await), and lingers while a flood is arriving: a batch of more
// than one but fewer than lingerBatch means messages come faster than one
// per commit yet not fast enough to fill a commit, so the writer waits
// lingerStep at a time, while each step brings more, for at most
// lingerSteps steps. On a fast disk (make bench) this made a live flood's
// ~70 messages per commit ~200: a third of the fsyncs (and of an SD card's
// wear) for at most 2 ms more latency; up to maxBatch for at most 5 ms, it
// took a flood's flash writes from 353 to 288 B per message
// (docs/flash.md). Without a window a lone message (a trickle, a command)
// is committed at once; a step that brings nothing ends the wait, as when
// the broker has reached its in-flight limit and waits for our acks. After
// a window that ran out, take does not linger (see await).
func (w *writer) take(ctx context.Context, batch []inbound) []inbound {
	batch = w.drain(batch)
	batch, waited := w.await(ctx, batch)
	if len(batch) < 2 || waited {
		return batch
	}
	for step := 0; step < lingerSteps && len(batch) < lingerBatch; step++ {
		w.sleep(lingerStep)
		n := len(batch)
		if batch = w.drain(batch); len(batch) == n {
			break
		}
	}
	return batch
}

// await is the commit window: it adds arriving messages to batch until
// CommitWindow has passed since the first one's receipt. It returns at
// once, or as soon as it holds one, for a message that may act (a
// possible command, a message on a rule's topic: a relay must not wait for
// flash wear); and early once windowBatch messages are in, or, with two or
// more in, after windowQuiet without a new one (see windowBatch), or when
// ctx ends.
// waited reports that the window ran out (its time, or the quiet): the
// messages came slowly, so take does not linger after it. Each linger
// step that brings nothing costs a sleep, which an idle Go runtime
// rounds up to about a millisecond, on every commit of a trickle.
func (w *writer) await(ctx context.Context, batch []inbound) (_ []inbound, waited bool) {
	if w.CommitWindow <= 0 || len(batch) >= windowBatch || w.urgent(batch, 0) {
		return batch, false
	}
	// The window is time the writer would spend waiting: the store's
	// journal, if nearly full, moves into bbolt now rather than in the
	// commit at the window's end, which the PUBACKs wait for.
	if s, ok := w.inbox.(journalSettler); ok {
		_ = s.SettleJournal() // on failure the records stay journaled; the commit meets the error
	}
	start := batch[0].msg.ReceivedAt
	if start.IsZero() {
		start = w.now()
	}
	left := start.Add(w.CommitWindow).Sub(w.now())
	if left <= 0 {
		return batch, false
	}
	end := time.NewTimer(left)
	defer end.Stop()
	// The quiet timer runs once two messages are in: a lone message waits
	// for company, a group followed by silence is a burst that ended or a
	// broker waiting for our acks. Never, when the window is shorter.
	quiet := time.NewTimer(windowQuiet)
	defer quiet.Stop()
	var quietC <-chan time.Time
	for {
		if len(batch) >= 2 && w.CommitWindow > windowQuiet {
			quiet.Reset(windowQuiet)
			quietC = quiet.C
		}
		n := len(batch)
		select {
		case next := <-w.in:
			batch = w.drain(append(batch, next))
		case <-end.C:
			return batch, true
		case <-quietC:
			return batch, true
		case <-ctx.Done():
			return batch, false
		}
		if len(batch) >= windowBatch || w.urgent(batch, n) {
			return batch, false
		}
	}
}

// urgent reports whether batch[from:] holds a message that may act: one
// the writer will store pending for the dispatcher (classify).
func (w *writer) urgent(batch []inbound, from int) bool {
	for i := from; i < len(batch); i++ {
		m := &batch[i].msg
		if (m.Topic == w.NotifyTopic && mayBeCommand(m.Payload)) || w.Rules.OnTopic(m.Topic) {
			return true
		}
	}
	return false
}

// drain adds what is queued now, without waiting, up to maxBatch.
func (w *writer) drain(batch []inbound) []inbound {
	for len(batch) < maxBatch {
		select {
		case next := <-w.in:
			batch = append(batch, next)
		default:
			return batch
		}
	}
	return batch
}

// commit appends msgs, retrying with backoff while the store refuses. It
// returns at once a TooLargeError, and ErrFull when split is allowed (the
// caller refuses that message or splits the batch); otherwise it returns an
// error only when ctx ended before a commit succeeded.
func (w *writer) commit(ctx context.Context, msgs []store.Message, split bool) ([]uint64, error) {
	failing := false
	defer w.retry.Reset()
	for {
		w.beat.stamp()
		seqs, err := w.inbox.Append(msgs)
		if err == nil {
			if failing {
				w.log.Info("store writable again; acknowledging resumes", "messages", len(msgs))
				w.health.setStorage(nil)
			}
			return seqs, nil
		}
		var tl *store.TooLargeError
		if errors.As(err, &tl) {
			return nil, err
		}
		if split && errors.Is(err, store.ErrFull) {
			return nil, err
		}
		if !failing {
			w.log.Error("store cannot write; not acknowledging until it can (the broker keeps the messages)",
				"err", err, "messages", len(msgs))
			failing = true
		}
		w.health.setStorage(fmt.Errorf("store: %w", err))
		// The dispatcher handling records (Freed) may let an ErrFull pass.
		if !w.retry.Sleep(ctx, w.Freed) {
			return nil, ctx.Err()
		}
	}
}
