package agent

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

func batchOf(n int, firstSeq uint64) ([]uint64, []inbound) {
	seqs := make([]uint64, n)
	b := make([]inbound, n)
	for i := range n {
		seqs[i] = firstSeq + uint64(i)
		b[i] = inbound{msg: store.Message{Topic: "t", Payload: []byte("0123456789")}}
	}
	return seqs, b
}

// TestStoredLogOneLineEachWhenLight: at a trickle every message gets its own
// line, as before; nothing is summarised.
func TestStoredLogOneLineEachWhenLight(t *testing.T) {
	var buf bytes.Buffer
	l := newStoredLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	for i := range 100 { // 10 per second for 10 s
		seqs, b := batchOf(1, uint64(i+1))
		l.stored(now, seqs, b)
		l.due(now)
		now = now.Add(100 * time.Millisecond)
	}
	l.flush(now)
	if got := strings.Count(buf.String(), "notification stored"); got != 100 {
		t.Fatalf("%d per-message lines for 100 messages at 10/s, want 100", got)
	}
	if strings.Contains(buf.String(), "without a line each") {
		t.Fatalf("summary written at a trickle:\n%s", buf.String())
	}
}

// TestStoredLogSummarisesAFlood: 100,000 messages in one second give the
// burst's lines and summaries that account for every other message, by
// count and seq range.
func TestStoredLogSummarisesAFlood(t *testing.T) {
	var buf bytes.Buffer
	l := newStoredLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	seq := uint64(1)
	for range 100 { // 100 commits of 1000 in 1 s
		seqs, b := batchOf(1000, seq)
		seq += 1000
		l.stored(now, seqs, b)
		l.due(now)
		now = now.Add(10 * time.Millisecond)
	}
	lines := strings.Count(buf.String(), "notification stored")
	if lines > logBurst+logLinesPerSecond {
		t.Fatalf("%d per-message lines during a 1 s flood, want at most %d", lines, logBurst+logLinesPerSecond)
	}
	if strings.Contains(buf.String(), "without a line each") {
		t.Fatal("summary written before logSummaryEvery passed")
	}
	// The flood ends; the heartbeat tick writes the summary in time.
	now = now.Add(logSummaryEvery)
	l.due(now)
	out := buf.String()
	if !strings.Contains(out, "without a line each") {
		t.Fatalf("no summary %v after the flood:\n%s", logSummaryEvery, out)
	}
	want := 100_000 - lines
	if !strings.Contains(out, `"count":`+strconv.Itoa(want)) || !strings.Contains(out, `"last_seq":100000`) {
		t.Fatalf("summary does not account for the %d unlogged messages up to seq 100000:\n%s", want, out[len(out)-400:])
	}
}

// TestStoredLogFlushOnStop: messages summarised but not yet reported are
// reported when the writer stops.
func TestStoredLogFlushOnStop(t *testing.T) {
	var buf bytes.Buffer
	l := newStoredLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	seqs, b := batchOf(500, 1)
	l.stored(now, seqs, b)
	l.flush(now.Add(time.Second))
	if !strings.Contains(buf.String(), "count="+strconv.Itoa(500-logBurst)) {
		t.Fatalf("stop did not report the unlogged messages:\n%s", buf.String())
	}
}

// TestIngestStatsPerCommitAndLatency: messages per commit, the newest
// message's time and the receive→stored percentiles over the latest
// latencyWindow messages.
func TestIngestStatsPerCommitAndLatency(t *testing.T) {
	var s ingestStats
	if st, last := s.status(); st.Commits != 0 || st.StoredLatency != nil || !last.IsZero() {
		t.Fatalf("fresh stats: %+v, last %v", st, last)
	}
	done := time.Unix(1000, 0)
	received := func(n int, at func(j int) time.Time) []inbound {
		b := make([]inbound, n)
		for j := range b {
			b[j].msg.ReceivedAt = at(j)
		}
		return b
	}
	// 2000 old messages at 50 ms, then 1000 at 1000..1 µs: only the latest count.
	s.noteCommit(done, received(2000, func(int) time.Time { return done.Add(-50 * time.Millisecond) }))
	for i := range 10 {
		s.noteCommit(done, received(100, func(j int) time.Time {
			return done.Add(-time.Duration(1000-i*100-j) * time.Microsecond)
		}))
	}
	st, last := s.status()
	if st.Commits != 11 || st.Messages != 3000 {
		t.Fatalf("commits %d messages %d, want 11 and 3000", st.Commits, st.Messages)
	}
	if want := done.Add(-time.Microsecond); !last.Equal(want) {
		t.Fatalf("last message at %v, want the newest's receive time %v", last, want)
	}
	if want := 3000.0 / 11; st.PerCommit != want {
		t.Fatalf("per commit %v, want %v", st.PerCommit, want)
	}
	l := st.StoredLatency
	if l == nil || l.N != latencyWindow || l.P50 != 0.5 || l.P99 != 0.99 || l.Max != 1 {
		t.Fatalf("latency %+v, want n=%d p50=0.5 p99=0.99 max=1 (ms)", l, latencyWindow)
	}
}
