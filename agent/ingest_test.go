package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/store"
)

// recordingInbox wraps a real store: it records each commit's size and the
// acks seen before each commit returned, and can fail the first commits.
type recordingInbox struct {
	db *store.DB

	mu        sync.Mutex
	failFirst int
	attempts  int
	commits   []int
	ackedAt   []int // number of acks seen when each commit started
	acks      *[]int
	calls     []string // "settle" and "append", in order
}

func (r *recordingInbox) SettleJournal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "settle")
	return r.db.SettleJournal()
}

func (r *recordingInbox) Append(msgs []store.Message) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	r.calls = append(r.calls, "append")
	r.ackedAt = append(r.ackedAt, len(*r.acks))
	if r.attempts <= r.failFirst {
		return nil, fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	seqs, err := r.db.Append(msgs)
	if err == nil {
		r.commits = append(r.commits, len(msgs))
	}
	return seqs, err
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTestStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestWriterAcksInReceiveOrderAfterCommit: every ack comes after the commit
// that holds its message, and acks leave in the order messages arrived.
func TestWriterAcksInReceiveOrderAfterCommit(t *testing.T) {
	db := openTestStore(t)
	var (
		mu   sync.Mutex
		acks []int
	)
	inbox := &recordingInbox{db: db, acks: &acks}
	w := newWriter(writerConfig{Inbox: inbox, Health: newHealth(time.Now()), Log: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()

	const n = 5000
	for i := 0; i < n; i++ {
		i := i
		w.enqueue(inbound{
			msg: store.Message{ReceivedAt: time.Now(), Topic: "t", Payload: []byte(fmt.Sprint(i))},
			ack: func() {
				inbox.mu.Lock() // acks happen outside Append: this must not deadlock
				inbox.mu.Unlock()
				mu.Lock()
				acks = append(acks, i)
				mu.Unlock()
			},
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(acks)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(acks) != n {
		t.Fatalf("%d acks, want %d", len(acks), n)
	}
	for i, a := range acks {
		if a != i {
			t.Fatalf("ack %d is for message %d: acks out of receive order", i, a)
		}
	}
	// Before commit k started, exactly the messages of commits 0..k-1 were acked.
	committed := 0
	for k, c := range inbox.commits {
		if inbox.ackedAt[k] != committed {
			t.Fatalf("commit %d started with %d acks sent, want %d (acks only after their commit)", k, inbox.ackedAt[k], committed)
		}
		committed += c
	}
	if len(inbox.commits) >= n {
		t.Fatalf("%d commits for %d messages: no group commit", len(inbox.commits), n)
	}
	t.Logf("%d messages in %d commits", n, len(inbox.commits))
	st, _ := db.Stats()
	if st.Total != n {
		t.Fatalf("store has %d records, want %d", st.Total, n)
	}
}

// stepClock hands each retry timer to the test, which fires it: the test
// knows the writer is waiting in a retry, with no sleeping to guess when.
type stepClock struct{ timers chan chan time.Time }

func (c *stepClock) NewTimer(time.Duration) (<-chan time.Time, func()) {
	ch := make(chan time.Time, 1)
	c.timers <- ch
	return ch, func() {}
}

// TestWriterHoldsAcksWhileStoreFails: while commits fail (disk full) nothing
// is acknowledged and the state is storage; once the store takes the batch
// it is acknowledged and the state clears.
func TestWriterHoldsAcksWhileStoreFails(t *testing.T) {
	db := openTestStore(t)
	var acks []int
	inbox := &recordingInbox{db: db, acks: &acks, failFirst: 3}
	h := newHealth(time.Now())
	w := newWriter(writerConfig{Inbox: inbox, Health: h, Log: quietLogger()})
	clk := &stepClock{timers: make(chan chan time.Time)}
	w.retry.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)

	acked := make(chan struct{})
	w.enqueue(inbound{msg: store.Message{Topic: "t", Payload: []byte("x")}, ack: func() {
		acks = append(acks, 1) // written by the writer alone; read after acked closes
		close(acked)
	}})
	for i := range 3 {
		fire := <-clk.timers // the writer waits after failed attempt i+1
		select {
		case <-acked:
			t.Fatal("acknowledged while the store was failing")
		default:
		}
		if got := h.snapshot().State; got != led.StateStorage {
			t.Fatalf("state %q after %d failed commits, want %q", got, i+1, led.StateStorage)
		}
		fire <- time.Time{}
	}
	select {
	case <-acked:
	case <-time.After(5 * time.Second):
		t.Fatal("not acknowledged after the store recovered")
	}
	if got := h.snapshot().State; got == led.StateStorage {
		t.Fatalf("state still %q after recovery", got)
	}
	if inbox.attempts != 4 {
		t.Fatalf("%d attempts, want 4 (3 failures, 1 success)", inbox.attempts)
	}
}

// TestWriterTakeLingersOnlyUnderAFlood: take waits for a fuller commit only
// while messages keep coming, never for a lone message, and for at most
// lingerSteps steps. sleep stands in for time passing: each call delivers
// the messages that would have arrived meanwhile.
func TestWriterTakeLingersOnlyUnderAFlood(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queued     int   // waiting when take starts (after the first)
		arrivals   []int // messages arriving during each sleep
		wantBatch  int
		wantSleeps int
	}{
		{name: "lone message: committed at once", queued: 0, arrivals: []int{50}, wantBatch: 1, wantSleeps: 0},
		{name: "flood: waits until lingerBatch", queued: 40, arrivals: []int{300, 300, 300, 300, 300}, wantBatch: lingerBatch, wantSleeps: 4},
		{name: "burst that stops: one empty step ends it", queued: 9, arrivals: []int{5, 0, 100}, wantBatch: 15, wantSleeps: 2},
		{name: "slow flood: at most lingerSteps steps", queued: 1, arrivals: slices.Repeat([]int{3}, lingerSteps+2), wantBatch: 2 + 3*lingerSteps, wantSleeps: lingerSteps},
		{name: "full queue: no wait", queued: lingerBatch, arrivals: []int{10}, wantBatch: maxBatch, wantSleeps: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWriter(writerConfig{Health: newHealth(time.Now()), Log: quietLogger()})
			w.in = make(chan inbound, 4096)
			for range tc.queued {
				w.in <- inbound{}
			}
			sleeps := 0
			w.sleep = func(d time.Duration) {
				if d != lingerStep {
					t.Fatalf("slept %v, want steps of %v", d, lingerStep)
				}
				if sleeps < len(tc.arrivals) {
					for range tc.arrivals[sleeps] {
						w.in <- inbound{}
					}
				}
				sleeps++
			}
			batch := w.take(context.Background(), []inbound{{}})
			if len(batch) != tc.wantBatch || sleeps != tc.wantSleeps {
				t.Fatalf("batch of %d after %d sleeps, want %d after %d", len(batch), sleeps, tc.wantBatch, tc.wantSleeps)
			}
		})
	}
}

// windowRig runs a writer with commit window win over a real store and
// records when each message was acknowledged.
type windowRig struct {
	w     *writer
	inbox *recordingInbox
	mu    sync.Mutex
	acks  []int
	at    []time.Time
}

func newWindowRig(t *testing.T, win time.Duration) *windowRig {
	r := &windowRig{}
	r.inbox = &recordingInbox{db: openTestStore(t), acks: &r.acks}
	r.w = newWriter(writerConfig{Inbox: r.inbox, Health: newHealth(time.Now()), Log: quietLogger(),
		NotifyTopic: "cmd", CommitWindow: win})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *windowRig) send(i int, topic, payload string) {
	r.w.enqueue(inbound{
		msg: store.Message{ReceivedAt: time.Now(), Topic: topic, Payload: []byte(payload)},
		ack: func() {
			r.inbox.mu.Lock() // the commit that holds it has returned
			r.inbox.mu.Unlock()
			r.mu.Lock()
			r.acks = append(r.acks, i)
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
		},
	})
}

// wait returns once n messages are acknowledged, or fails after d.
func (r *windowRig) wait(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		got := len(r.acks)
		r.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages acknowledged after %v", got, n, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkAcksAfterCommits: before commit k started, exactly the messages of
// the commits before it were acknowledged, in receive order.
func (r *windowRig) checkAcksAfterCommits(t *testing.T) {
	t.Helper()
	r.inbox.mu.Lock()
	defer r.inbox.mu.Unlock()
	committed := 0
	for k, c := range r.inbox.commits {
		if r.inbox.ackedAt[k] != committed {
			t.Fatalf("commit %d started with %d acks sent, want %d (acks only after their commit)", k, r.inbox.ackedAt[k], committed)
		}
		committed += c
	}
	for i, a := range r.acks {
		if a != i {
			t.Fatalf("ack %d is for message %d: out of receive order", i, a)
		}
	}
}

// TestCommitWindowBoundsTheWait: a lone message waits out the window (its
// ack comes no sooner) and no longer than the window and its commit.
func TestCommitWindowBoundsTheWait(t *testing.T) {
	const win = 150 * time.Millisecond
	r := newWindowRig(t, win)
	sent := time.Now()
	r.send(0, "t", "lone")
	r.wait(t, 1, 5*time.Second)
	took := r.at[0].Sub(sent)
	if took < win {
		t.Fatalf("acknowledged %v after receipt, inside a %v window: the window did not hold the commit", took, win)
	}
	// The bound is the window plus one commit; the slack is for a loaded
	// machine, not a speed target.
	if took > win+time.Second {
		t.Fatalf("acknowledged %v after receipt: the window (%v) did not bound the wait", took, win)
	}
	r.checkAcksAfterCommits(t)
}

// TestCommitWindowGathersAMessageStream: messages 5 ms apart inside one
// window go in fewer commits than messages, each acknowledged only after
// its commit, in receive order.
func TestCommitWindowGathersAMessageStream(t *testing.T) {
	r := newWindowRig(t, 300*time.Millisecond)
	const n = 10
	for i := range n {
		r.send(i, "t", fmt.Sprint(i))
		time.Sleep(5 * time.Millisecond)
	}
	r.wait(t, n, 5*time.Second)
	r.checkAcksAfterCommits(t)
	if c := len(r.inbox.commits); c >= n {
		t.Fatalf("%d commits for %d messages inside one window: nothing gathered", c, n)
	}
}

// TestCommitWindowEndsEarly: a possible command, or windowBatch messages,
// end a long window at once: a relay never waits for it, nor does a
// broker that has reached its in-flight window.
func TestCommitWindowEndsEarly(t *testing.T) {
	const win = 900 * time.Millisecond // < 1 s, the config's bound; the quiet rule must not end it first
	t.Run("a possible command", func(t *testing.T) {
		r := newWindowRig(t, win)
		start := time.Now()
		r.send(0, "t", "plain")
		r.send(1, "cmd", `{"id":"1","method":"relay.set"}`)
		r.wait(t, 2, 5*time.Second)
		if took := time.Since(start); took >= win {
			t.Fatalf("a possible command waited %v, the whole window", took)
		}
		r.checkAcksAfterCommits(t)
	})
	t.Run("windowBatch messages", func(t *testing.T) {
		r := newWindowRig(t, win)
		start := time.Now()
		for i := range windowBatch {
			r.send(i, "t", fmt.Sprint(i))
		}
		r.wait(t, windowBatch, 5*time.Second)
		if took := time.Since(start); took >= win {
			t.Fatalf("%d messages waited %v, the whole window", windowBatch, took)
		}
		r.checkAcksAfterCommits(t)
	})
	t.Run("quiet after a burst", func(t *testing.T) {
		r := newWindowRig(t, win)
		start := time.Now()
		r.send(0, "t", "a")
		r.send(1, "t", "b")
		r.wait(t, 2, 5*time.Second)
		if took := time.Since(start); took >= win {
			t.Fatalf("two messages then silence waited %v, the whole window (quiet after %v)", took, windowQuiet)
		}
	})
}

// TestWindowSettlesTheJournalFirst: the commit window is time the writer
// waits anyway, so the store's journal is settled at its start, not in the
// commit the PUBACKs wait for; without a window nothing waits for it.
func TestWindowSettlesTheJournalFirst(t *testing.T) {
	for _, tc := range []struct {
		win  time.Duration
		want []string
	}{
		{20 * time.Millisecond, []string{"settle", "append"}},
		{0, []string{"append"}},
	} {
		r := newWindowRig(t, tc.win)
		r.send(1, "n", `{"a":1}`)
		r.wait(t, 1, 5*time.Second)
		r.inbox.mu.Lock()
		got := slices.Clone(r.inbox.calls)
		r.inbox.mu.Unlock()
		if !slices.Equal(got, tc.want) {
			t.Errorf("window %v: calls %v, want %v", tc.win, got, tc.want)
		}
	}
}

// TestNoLingerAfterAWindowRanOut: a window that ran its time out saw the
// messages come slowly; lingering after it would only add sleeps to every
// commit of a trickle.
func TestNoLingerAfterAWindowRanOut(t *testing.T) {
	w := newWriter(writerConfig{Health: newHealth(time.Now()), Log: quietLogger(), CommitWindow: 20 * time.Millisecond})
	w.in = make(chan inbound, 16)
	for range 3 {
		w.in <- inbound{msg: store.Message{ReceivedAt: time.Now()}}
	}
	sleeps := 0
	w.sleep = func(time.Duration) { sleeps++ }
	batch := w.take(context.Background(), []inbound{{msg: store.Message{ReceivedAt: time.Now()}}})
	if len(batch) != 4 || sleeps != 0 {
		t.Fatalf("batch of %d after %d linger sleeps, want 4 after none", len(batch), sleeps)
	}
}
