package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
}

func (r *recordingInbox) Append(msgs []store.Message) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
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
		{name: "flood: waits until lingerBatch", queued: 40, arrivals: []int{60, 60, 60, 60, 60}, wantBatch: 41 + 4*60, wantSleeps: 4},
		{name: "burst that stops: one empty step ends it", queued: 9, arrivals: []int{5, 0, 100}, wantBatch: 15, wantSleeps: 2},
		{name: "slow flood: at most lingerSteps steps", queued: 1, arrivals: []int{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, wantBatch: 2 + 3*lingerSteps, wantSleeps: lingerSteps},
		{name: "full queue: no wait", queued: lingerBatch, arrivals: []int{10}, wantBatch: lingerBatch + 1, wantSleeps: 0},
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
			batch := w.take([]inbound{{}})
			if len(batch) != tc.wantBatch || sleeps != tc.wantSleeps {
				t.Fatalf("batch of %d after %d sleeps, want %d after %d", len(batch), sleeps, tc.wantBatch, tc.wantSleeps)
			}
		})
	}
}
