package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/backoff"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/store"
)

// runSink delivers for one sink until ctx ends.
func (m *Manager) runSink(ctx context.Context, s *sink) {
	defer s.out.close()
	bo := backoff.Backoff{Min: m.retryMin, Max: m.retryMax, Jitter: true}
	var behind time.Time // when the sink last found work after being caught up
	for ctx.Err() == nil {
		if behind.IsZero() {
			behind = time.Now()
			if !m.yield(ctx, behind) {
				return
			}
		}
		progress, err := m.step(ctx, s)
		if progress {
			bo.Reset()
		} else if err == nil {
			behind = time.Time{} // caught up: the next work yields again
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait := bo.Next()
			m.fail(s, err)
			s.log.Warn("sink delivery failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
			if !bo.SleepFor(ctx, wait, s.kick) {
				return
			}
		case !progress:
			select {
			case <-ctx.Done():
				return
			case <-s.bell:
			}
		}
	}
}

// yield lets a burst of ingest go first: with two cores a sink catching up
// beside a backlog drain took its CPU (a file sink cost the drain 13%, an
// exec sink 25%). A burst is a commit of burstBatch messages or more (a
// trickle commits one at a time). A sink that finds work waits until there
// has been no burst for yieldQuiet, but no longer than yieldMax after it
// found the work, then delivers until it is caught up. At a trickle a
// record is delivered at once (within yieldQuiet when two arrive in one
// commit); a backlog drain (100,000 messages take about a second) finishes
// first; a flood longer than yieldMax shares the CPU. false when ctx ended.
func (m *Manager) yield(ctx context.Context, since time.Time) bool {
	for {
		until := time.Unix(0, m.burstUntil.Load())
		now := time.Now()
		if !now.Before(until) || now.Sub(since) >= m.yieldMax {
			return true
		}
		t := time.NewTimer(min(until.Sub(now), since.Add(m.yieldMax).Sub(now)))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// errBatchFull stops a Scan once the batch is full.
var errBatchFull = errors.New("batch full")

// step reads the next batch after the cursor and delivers it, moving the
// cursor as it goes. progress says whether the cursor moved.
func (m *Manager) step(ctx context.Context, s *sink) (progress bool, err error) {
	m.mu.Lock()
	cursor, gen, uncommitted := s.cursor, s.gen, s.uncommitted
	m.mu.Unlock()
	if uncommitted >= m.commitMax {
		// The bound: no more deliveries until these are stored.
		if err := m.commit(); err != nil {
			return false, fmt.Errorf("store the cursor: %w", err)
		}
		return true, nil
	}
	room := m.commitMax - uncommitted

	// Read: records after the cursor, up to a gap (records retention
	// dropped), batchRecords, batchBytes, or room matching records. Only
	// the matching ones are kept.
	var match []store.Record
	var first, end uint64
	n, size := 0, 0
	err = m.st.Scan(cursor, func(r store.Record) error {
		if n > 0 && r.Seq != end+1 {
			return errBatchFull
		}
		if n == 0 {
			first = r.Seq
		}
		end = r.Seq
		n++
		size += len(r.Payload)
		if s.matches(r.Topic) {
			match = append(match, r)
		}
		if n >= batchRecords || size >= batchBytes || uint64(len(match)) >= room {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return false, fmt.Errorf("read the store: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	m.seen(end) // lag stays right when Stored is not called

	if first > cursor+1 {
		n := first - cursor - 1
		if !m.advance(s, gen, first-1, 0, n) {
			return true, nil
		}
		s.log.Warn("records dropped by retention before this sink had them", "from", cursor+1, "to", first-1, "count", n)
		progress = true
	}

	step := len(match)
	if s.oneByOne {
		step = 1
	}
	for i := 0; i < len(match); i += step {
		part := match[i:min(i+step, len(match))]
		n, err := s.out.deliver(ctx, part)
		done := i + n
		to := end
		if done < len(match) {
			to = match[done].Seq - 1
		}
		if !m.advance(s, gen, to, uint64(n), 0) {
			return true, nil
		}
		if err != nil || n < len(part) {
			if err == nil {
				err = errors.New("not delivered")
			}
			return progress || to > cursor, err
		}
		progress = true
	}
	if len(match) == 0 {
		m.advance(s, gen, end, 0, 0)
	}
	return true, nil
}

// matches reports whether topic matches one of the sink's filters.
func (s *sink) matches(topic string) bool {
	for _, f := range s.filters {
		if rules.MatchFilter(f, topic) {
			return true
		}
	}
	return false
}

// advance moves s's cursor to seq unless Rewind moved it since gen, counting
// delivered and dropped records. It reports false when it did not.
func (m *Manager) advance(s *sink, gen, seq, delivered, dropped uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.gen != gen {
		return false
	}
	if seq > s.cursor {
		s.cursor = seq
		m.ring(m.dirty)
	}
	s.delivered += delivered
	s.uncommitted += delivered
	s.dropped += dropped
	return true
}

// fail counts a failed attempt.
func (m *Manager) fail(s *sink, err error) {
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	m.mu.Lock()
	defer m.mu.Unlock()
	s.failed++
	s.lastError = time.Now().UTC().Format(time.RFC3339) + ": " + msg
}
