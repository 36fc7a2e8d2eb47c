package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// The per-message log line is kept while traffic is light (a technician
// tailing the journal sees each notification) and summarised under load: at
// 100,000 messages/s one line each cost more than the commit, and filled
// the journal with what the inbox already holds record by record.
const (
	logLinesPerSecond = 20               // per-message lines allowed, on average
	logBurst          = 20               // and at once
	logSummaryEvery   = 10 * time.Second // a summary line at most this often
)

// storedLog writes "notification stored" lines through a token bucket and
// counts the ones it leaves out into a periodic summary. Only the writer's
// goroutine uses it.
type storedLog struct {
	log    *slog.Logger
	tokens float64
	last   time.Time // when tokens was last topped up

	// The messages stored but not logged one by one since the last summary.
	skipped           int
	skippedBytes      int
	firstSeq, lastSeq uint64
	skippedSince      time.Time
}

func newStoredLog(log *slog.Logger) *storedLog {
	return &storedLog{log: log, tokens: logBurst}
}

// stored logs one committed batch: a line per message while tokens last,
// the rest counted for the summary (see due).
func (l *storedLog) stored(now time.Time, seqs []uint64, batch []inbound) {
	if !l.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	if !l.last.IsZero() {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logLinesPerSecond)
	}
	l.last = now
	for i, in := range batch {
		if l.tokens >= 1 {
			l.tokens--
			l.line(seqs[i], in.msg)
			continue
		}
		if l.skipped == 0 {
			l.firstSeq, l.skippedSince = seqs[i], now
		}
		l.skipped++
		l.skippedBytes += len(in.msg.Payload)
		l.lastSeq = seqs[i]
	}
}

func (l *storedLog) line(seq uint64, m store.Message) {
	l.log.Info("notification stored", "seq", seq, "topic", clip(m.Topic), "size", len(m.Payload),
		"dup", m.Dup, "prefix", control.PayloadPrefix(m.Payload, 40))
}

// due writes the summary once the oldest message it counts is
// logSummaryEvery old; the writer calls it after each commit and on its
// heartbeat tick, so a burst that ends is summarised within that time.
func (l *storedLog) due(now time.Time) {
	if l.skipped > 0 && now.Sub(l.skippedSince) >= logSummaryEvery {
		l.flush(now)
	}
}

// flush writes the summary of the skipped lines, if any. The writer calls it
// on the way out too, so a burst just before a stop is still accounted for.
func (l *storedLog) flush(now time.Time) {
	if l.skipped == 0 {
		return
	}
	l.log.Info("notifications stored without a line each (busy; `edge-agent inbox list` shows every one)",
		"count", l.skipped, "first_seq", l.firstSeq, "last_seq", l.lastSeq,
		"payload_bytes", l.skippedBytes, "over", now.Sub(l.skippedSince).Round(time.Millisecond).String())
	l.skipped, l.skippedBytes = 0, 0
}
