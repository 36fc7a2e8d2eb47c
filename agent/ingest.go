package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// Inbox is what the writer needs of the store: one durable group commit.
type Inbox interface {
	Append(msgs []store.Message) ([]uint64, error)
}

// inbound is a received message waiting for the writer, with the function
// that sends its PUBACK.
type inbound struct {
	msg store.Message
	ack func()
}

// Writer bounds. maxBatch caps one commit (and so the memory a backlog drain
// holds at once); queueLen bounds what the MQTT handler may hand over before
// it has to wait. mosquitto's in-flight window is 20 by default, but on
// reconnect it pushes the whole offline queue at once, so the queue, not the
// broker, is what bounds memory.
const (
	maxBatch = 1000
	queueLen = 1000

	// Lingering for a fuller commit under a flood (see take).
	lingerBatch = 256
	lingerStep  = 200 * time.Microsecond
	lingerSteps = 10
)

// writer owns the write path: it takes whatever the handler has queued,
// commits it in one transaction, then acknowledges those messages in
// receive order (MQTT 3.1.1 §4.6; paho does not enforce it, PITFALLS.md).
type writer struct {
	in     chan inbound
	inbox  Inbox
	health *health
	log    *slog.Logger
	now    func() time.Time
	sleep  func(time.Duration) // time.Sleep; tests replace it

	// notifyTopic: only a message on it can be a command, so only those
	// are stored pending for the dispatcher.
	notifyTopic string
	// onPending is called after a commit that stored pending records.
	onPending func()
	// flash shows stored messages on the activity LED (once per commit:
	// the LED coalesces flashes to 10 Hz anyway).
	flash func()

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
	retryMin, retryMax time.Duration
}

func newWriter(inbox Inbox, h *health, log *slog.Logger) *writer {
	return &writer{
		in:       make(chan inbound, queueLen),
		inbox:    inbox,
		health:   h,
		log:      log,
		logs:     newStoredLog(log),
		now:      time.Now,
		sleep:    time.Sleep,
		retryMin: 250 * time.Millisecond,
		retryMax: 5 * time.Second,
	}
}

// enqueue hands a message to the writer. It blocks while the queue is full
// (back-pressure on the broker through paho) and gives up when stop closes:
// an unacknowledged message is redelivered by the broker, so dropping it
// here loses nothing.
func (w *writer) enqueue(stop <-chan struct{}, in inbound) bool {
	select {
	case w.in <- in:
		return true
	case <-stop:
		return false
	}
}

// run commits batches until ctx is done. A batch already taken is always
// finished (committed and acknowledged) or, if the store keeps failing when
// ctx ends, abandoned unacknowledged; never acknowledged without a commit.
func (w *writer) run(ctx context.Context) {
	batch := make([]inbound, 0, maxBatch)
	msgs := make([]store.Message, 0, maxBatch)
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
		batch = w.take(batch)
		msgs = msgs[:0]
		pending := false
		for _, in := range batch {
			m := in.msg
			m.Pending = m.Topic == w.notifyTopic && mayBeCommand(m.Payload)
			pending = pending || m.Pending
			msgs = append(msgs, m)
		}
		seqs, ok := w.commit(ctx, msgs)
		if !ok {
			w.logs.flush(w.now())
			return
		}
		done := w.now()
		// Acknowledge only now, in receive order: every one of these is on disk.
		for _, in := range batch {
			in.ack()
		}
		w.stats.noteCommit(done, batch)
		w.logs.stored(done, seqs, batch)
		w.logs.due(done)
		if w.flash != nil {
			w.flash()
		}
		if pending && w.onPending != nil {
			w.onPending()
		}
	}
}

// take adds what is queued to batch, up to maxBatch, and lingers while a
// flood is arriving: a batch of more than one but fewer than lingerBatch
// means messages come faster than one per commit yet not fast enough to fill
// a commit, so the writer waits lingerStep at a time, while each step brings
// more, for at most lingerSteps steps. On a fast disk (make bench) this made
// a live flood's ~70 messages per commit ~200: a third of the fsyncs (and of
// an SD card's wear) for at most 2 ms more latency. A lone message (a trickle,
// a command) is committed at once; a step that brings nothing ends the wait,
// as when the broker has reached its in-flight limit and waits for our acks.
func (w *writer) take(batch []inbound) []inbound {
	batch = w.drain(batch)
	if len(batch) < 2 {
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
// reports false only when ctx ended before a commit succeeded.
func (w *writer) commit(ctx context.Context, msgs []store.Message) ([]uint64, bool) {
	delay := w.retryMin
	failing := false
	for {
		w.beat.stamp()
		seqs, err := w.inbox.Append(msgs)
		if err == nil {
			if failing {
				w.log.Info("store writable again; acknowledging resumes", "messages", len(msgs))
				w.health.setStorage(nil)
			}
			return seqs, true
		}
		if !failing {
			w.log.Error("store cannot write; not acknowledging until it can (the broker keeps the messages)",
				"err", err, "messages", len(msgs))
			failing = true
		}
		w.health.setStorage(fmt.Errorf("store: %w", err))
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(delay):
		}
		delay = min(2*delay, w.retryMax)
	}
}
