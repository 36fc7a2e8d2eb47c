package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/store"
)

// Store is what the sinks need of the store (store.DB has it).
type Store interface {
	Scan(after uint64, fn func(store.Record) error) error
	Stats() (store.Stats, error)
	SinkCursors() (map[string]uint64, error)
	SetSinkCursors(map[string]uint64) error
}

// Status is one sink's state, as the status document shows it.
type Status struct {
	Cursor    uint64 `json:"cursor"`     // the last seq dealt with (delivered, or matching no filter)
	Lag       uint64 `json:"lag"`        // records stored after the cursor, matching or not
	Delivered uint64 `json:"delivered"`  // records delivered since the agent started
	Failed    uint64 `json:"failed"`     // failed delivery attempts since the agent started
	Dropped   uint64 `json:"dropped"`    // records retention dropped before this sink had them
	LastError string `json:"last_error"` // the latest failure, "TIME: what"; kept after recovery
}

// Bounds. Commits: see the package doc. Batches: what one read hands a
// sink, at least one record.
const (
	commitEvery = time.Second
	// A sink with work waits, before it starts catching up, until the
	// writer has not committed a batch of burstBatch or more for
	// yieldQuiet, for at most yieldMax: see yield.
	burstBatch   = 2
	yieldQuiet   = 200 * time.Millisecond
	yieldMax     = 2 * time.Second
	commitMax    = 1000
	batchRecords = 256
	batchBytes   = 1 << 20
	retryMin     = time.Second
	retryMax     = 5 * time.Minute
)

// Manager runs the sinks. Its methods are safe for concurrent use.
type Manager struct {
	st    Store
	log   *slog.Logger
	sinks []*sink

	lastSeq    atomic.Uint64 // the newest stored seq known
	burstUntil atomic.Int64  // Unix ns: the writer is in a burst until then (see yield)

	// commitMu serialises cursor commits (the flusher, a sink at its
	// bound, Rewind, the last one of Run), so the store always ends with
	// the newest snapshot. mu guards every sink's counters and cursor; it
	// is never held across a store call.
	commitMu sync.Mutex
	mu       sync.Mutex
	dirty    chan struct{} // cap 1: a cursor moved; the flusher commits within commitEvery
	failing  bool          // the last commit failed (logged once until one passes); under commitMu

	// Fixed after New; tests shorten them.
	commitEvery        time.Duration
	commitMax          uint64
	retryMin, retryMax time.Duration
	yieldQuiet         time.Duration // see yield
	yieldMax           time.Duration
}

// sink is one configured sink. The fields below mu are guarded by
// Manager.mu; the rest are fixed after New or owned by the sink's goroutine.
type sink struct {
	cfg      Config
	filters  [][]string
	out      deliverer
	oneByOne bool          // deliver one record per call (exec, http)
	bell     chan struct{} // cap 1: Stored rang, or Rewind moved the cursor
	kick     chan struct{} // cap 1: Rewind: cut a retry wait short
	log      *slog.Logger

	cursor      uint64 // last seq dealt with, in memory
	committed   uint64 // cursor as last stored
	uncommitted uint64 // records delivered since the last commit
	gen         uint64 // bumped by Rewind: an advance from before it is void
	delivered   uint64
	failed      uint64
	dropped     uint64
	lastError   string
}

// deliverer hands records to one kind of program. It is used by one
// goroutine; it returns how many of recs, from the first, were delivered,
// and the error that stopped it.
type deliverer interface {
	deliver(ctx context.Context, recs []store.Record) (int, error)
	close()
}

// newDeliverer makes what delivers for c. agent/config has checked c,
// each problem at its line; what is checked here is what c cannot run
// without.
func newDeliverer(c Config) (d deliverer, oneByOne bool, err error) {
	switch c.Type {
	case TypeFile:
		if c.Path == "" {
			return nil, false, errors.New("a file sink needs a path")
		}
		d, err = newFileSink(c)
	case TypeExec:
		if len(c.Command) == 0 || c.Command[0] == "" {
			return nil, false, errors.New("an exec sink needs a command")
		}
		d, oneByOne = &execSink{argv: c.Command, timeout: c.Timeout}, true
	case TypeHTTP:
		if c.URL == "" {
			return nil, false, errors.New("an http sink needs a url")
		}
		d, oneByOne = newHTTPSink(c), true
	case TypeMQTT:
		if c.Broker == "" {
			return nil, false, errors.New("an mqtt sink needs a broker")
		}
		d, err = newMQTTSink(c)
	default:
		err = fmt.Errorf("unknown sink type %q (want file, exec, http or mqtt)", c.Type)
	}
	return d, oneByOne, err
}

// New checks cfgs, reads the stored cursors and makes the sinks; nothing
// runs before Run. A sink without a stored cursor starts at the oldest
// stored record.
func New(cfgs []Config, st Store, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{st: st, log: log, dirty: make(chan struct{}, 1),
		commitEvery: commitEvery, commitMax: commitMax, retryMin: retryMin, retryMax: retryMax,
		yieldQuiet: yieldQuiet, yieldMax: yieldMax}
	for _, c := range cfgs {
		c = c.withDefaults()
		if c.Name == "" {
			return nil, errors.New("sinks: a sink has no name")
		}
		if slices.ContainsFunc(m.sinks, func(s *sink) bool { return s.cfg.Name == c.Name }) {
			return nil, fmt.Errorf("sinks: two sinks are named %q", c.Name)
		}
		s := &sink{cfg: c, bell: make(chan struct{}, 1), kick: make(chan struct{}, 1),
			log: log.With("sink", c.Name)}
		for _, f := range c.Topics {
			if err := rules.CheckFilter(f); err != nil {
				return nil, fmt.Errorf("sink %q: %w", c.Name, err)
			}
			s.filters = append(s.filters, strings.Split(f, "/"))
		}
		var err error
		s.out, s.oneByOne, err = newDeliverer(c)
		if err != nil {
			return nil, fmt.Errorf("sink %q: %w", c.Name, err)
		}
		m.sinks = append(m.sinks, s)
	}
	if len(m.sinks) == 0 {
		return m, nil
	}
	cursors, err := st.SinkCursors()
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	stats, err := st.Stats()
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	m.lastSeq.Store(stats.LastSeq)
	for _, s := range m.sinks {
		c, ok := cursors[s.cfg.Name]
		if !ok {
			c = stats.LastSeq
			if stats.FirstSeq > 0 {
				c = stats.FirstSeq - 1
			}
		}
		s.cursor, s.committed = c, c
		if !ok {
			s.committed = ^c // not stored yet: the first commit stores it
		}
	}
	return m, nil
}

// Run runs every sink, each in a goroutine of its own, and the commits of
// their cursors, until ctx ends; then it commits the cursors once more and
// returns when every sink has stopped.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range m.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.runSink(ctx, s)
		}()
	}
	m.flusher(ctx)
	wg.Wait()
	if err := m.commit(); err != nil {
		m.log.Error("sinks: could not store the cursors on the way out; each sink repeats what it delivered since the last commit", "err", err)
	}
}

// flusher commits the cursors commitEvery after one moved, until ctx ends.
func (m *Manager) flusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.dirty:
		}
		t := time.NewTimer(m.commitEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := m.commit(); err != nil {
			m.ring(m.dirty) // try again in commitEvery
		}
	}
}

// commit stores every cursor that moved since its last commit, all in one
// transaction.
func (m *Manager) commit() error {
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	snap := map[string]uint64{}
	counted := make([]uint64, len(m.sinks))
	m.mu.Lock()
	for i, s := range m.sinks {
		if s.cursor == s.committed {
			s.uncommitted = 0 // all of it is behind the stored cursor
			continue
		}
		snap[s.cfg.Name] = s.cursor
		counted[i] = s.uncommitted
	}
	m.mu.Unlock()
	if len(snap) == 0 {
		return nil
	}
	if err := m.st.SetSinkCursors(snap); err != nil {
		if !m.failing {
			m.log.Error("sinks: cannot store the cursors; retrying (a sink stops after 1000 deliveries not stored)", "err", err)
		}
		m.failing = true
		return err
	}
	if m.failing {
		m.log.Info("sinks: cursors stored again")
		m.failing = false
	}
	m.mu.Lock()
	for i, s := range m.sinks {
		if c, ok := snap[s.cfg.Name]; ok {
			s.committed = c
			s.uncommitted -= counted[i]
		}
	}
	m.mu.Unlock()
	return nil
}

// Stored tells the sinks that records up to lastSeq are stored. It never
// blocks: it rings each sink's doorbell, which holds one ring.
func (m *Manager) Stored(lastSeq uint64) {
	// A commit of many messages means a burst (a backlog draining, a
	// flood): sinks let it go first. A trickle commits one at a time.
	if prev := m.lastSeq.Load(); lastSeq >= prev+burstBatch {
		m.burstUntil.Store(time.Now().Add(m.yieldQuiet).UnixNano())
	}
	m.seen(lastSeq)
	for _, s := range m.sinks {
		m.ring(s.bell)
	}
}

// seen raises the newest stored seq known to seq.
func (m *Manager) seen(seq uint64) {
	for {
		old := m.lastSeq.Load()
		if seq <= old || m.lastSeq.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (m *Manager) ring(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Status returns every sink's state by name.
func (m *Manager) Status() map[string]Status {
	last := m.lastSeq.Load()
	out := make(map[string]Status, len(m.sinks))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sinks {
		st := Status{Cursor: s.cursor, Delivered: s.delivered, Failed: s.failed, Dropped: s.dropped, LastError: s.lastError}
		if last > s.cursor {
			st.Lag = last - s.cursor
		}
		out[s.cfg.Name] = st
	}
	return out
}

// Rewind makes sink name deliver again from record seq on: its cursor
// becomes seq-1, stored before Rewind returns. A delivery in flight is
// finished, but does not move the cursor. seq may also lie ahead of the
// cursor (skipping records), up to the newest stored seq + 1; records
// before the oldest stored one are gone, so the replay starts there.
func (m *Manager) Rewind(name string, seq uint64) error {
	i := slices.IndexFunc(m.sinks, func(s *sink) bool { return s.cfg.Name == name })
	if i < 0 {
		if len(m.sinks) == 0 {
			return fmt.Errorf("no sink named %q: no sinks are configured", name)
		}
		var names []string
		for _, s := range m.sinks {
			names = append(names, s.cfg.Name)
		}
		slices.Sort(names)
		return fmt.Errorf("no sink named %q; the sinks are %s", name, strings.Join(names, ", "))
	}
	s := m.sinks[i]
	if seq == 0 {
		return errors.New("seq starts at 1")
	}
	stats, err := m.st.Stats()
	if err != nil {
		return err
	}
	last := max(stats.LastSeq, m.lastSeq.Load())
	if seq > last+1 {
		return fmt.Errorf("no record %d yet: the newest is %d", seq, last)
	}
	cursor := max(seq, stats.FirstSeq) - 1 // records before the oldest stored one are gone
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	if err := m.st.SetSinkCursors(map[string]uint64{name: cursor}); err != nil {
		return err
	}
	m.mu.Lock()
	s.cursor, s.committed, s.uncommitted = cursor, cursor, 0
	s.gen++
	m.mu.Unlock()
	s.log.Info("sink rewound", "asked", seq, "from", cursor+1)
	m.ring(s.bell)
	m.ring(s.kick)
	return nil
}
