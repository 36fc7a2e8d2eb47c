package agent

import (
	"slices"
	"sync"
	"time"
)

// latencyWindow is how many of the latest messages stored_latency_ms covers:
// enough for a p99 to mean something, small enough to follow a change in
// the card's speed within seconds.
const latencyWindow = 1000

// ingestStats counts the writer's commits and keeps the latest messages'
// receive→stored latencies, for the status document: messages per commit
// tells whether group commit is working (one commit per message under load
// would cap ingest at the card's sync rate), and the latency how long a
// sender waits for its acknowledgement. The writer writes, status reads; a
// mutex, as in health, because reads come at arbitrary times.
type ingestStats struct {
	_         noEq // never compared: no equality function in the binary
	mu        sync.Mutex
	commits   uint64
	messages  uint64    // stored by this process: stored_since_start
	lastMsgAt time.Time // receive time of the newest stored message
	oversize  uint64    // stored as markers: larger than max_message_size
	refused   uint64    // possible commands refused on arrival (retained, too large)
	ring      [latencyWindow]time.Duration
	hist      latencyHistogram
	next      int // where the next latency goes
	filled    int // how many of ring hold a latency
}

// noteCommit records one commit of batch, durable since done.
func (s *ingestStats) noteCommit(done time.Time, batch []inbound) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	s.messages += uint64(len(batch))
	s.lastMsgAt = batch[len(batch)-1].msg.ReceivedAt
	for _, in := range batch {
		if in.msg.Oversize > 0 {
			s.oversize++
		}
		if in.refused {
			s.refused++
		}
		s.ring[s.next] = done.Sub(in.msg.ReceivedAt)
		s.hist.note(s.ring[s.next], len(in.msg.Payload))
		s.next = (s.next + 1) % latencyWindow
		s.filled = min(s.filled+1, latencyWindow)
	}
}

// IngestStatus is the status document's "ingest" object.
type IngestStatus struct {
	_        noEq   // never compared: no equality function in the binary
	Commits  uint64 `json:"commits"`  // store commits since start
	Messages uint64 `json:"messages"` // messages those commits stored
	// PerCommit is Messages/Commits: about 1 at a trickle, hundreds while
	// draining a backlog.
	PerCommit float64 `json:"per_commit"`
	// Oversize counts messages over max_message_size, stored as markers
	// (topic, size, first bytes) instead of their payload.
	Oversize uint64 `json:"oversize"`
	// Refused counts possible commands refused as they arrived, never
	// executed: retained ones, ones too large to be a command.
	Refused uint64 `json:"refused"`
	// StoredLatency is receive→durable over the latest messages (at most
	// 1000), in milliseconds; absent before the first message.
	StoredLatency *LatencyMS `json:"stored_latency_ms,omitempty"`
}

// LatencyMS summarises latencies in milliseconds.
type LatencyMS struct {
	_   noEq    // never compared: no equality function in the binary
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// status is the ingest object and the newest message's receive time (zero
// before the first).
func (s *ingestStats) status() (IngestStatus, time.Time) {
	s.mu.Lock()
	out := IngestStatus{Commits: s.commits, Messages: s.messages, Oversize: s.oversize, Refused: s.refused}
	last := s.lastMsgAt
	lat := slices.Clone(s.ring[:s.filled])
	s.mu.Unlock()
	if out.Commits > 0 {
		out.PerCommit = float64(out.Messages) / float64(out.Commits)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		out.StoredLatency = &LatencyMS{
			P50: ms(percentile(lat, 50)), P99: ms(percentile(lat, 99)),
			Max: ms(lat[len(lat)-1]), N: len(lat),
		}
	}
	return out, last
}

// percentile is the nearest-rank percentile of sorted, which is not empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Round(time.Microsecond)) / 1e6 }

// latencyHistogram is every stored message's latency since the start, in
// latencyBounds' buckets (not cumulative), for edge_agent_stored_latency_seconds.
type latencyHistogram struct {
	buckets [len(latencyBounds)]uint64 // the last bucket's excess is n minus their sum
	n       uint64
	sum     time.Duration
	bytes   uint64 // payload bytes stored
}

func (h *latencyHistogram) note(d time.Duration, size int) {
	h.n++
	h.sum += d
	h.bytes += uint64(size)
	for i, b := range latencyBounds {
		if d <= b {
			h.buckets[i]++
			return
		}
	}
}

// histogram is a copy of the latency histogram.
func (s *ingestStats) histogram() latencyHistogram {
	s.mu.Lock()
	h := s.hist
	s.mu.Unlock()
	return h
}
