package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/metrics"
	"github.com/edge-agent/edge-agent/hw/led"
	"github.com/edge-agent/edge-agent/store"
)

// Why a relay switched, for edge_agent_relay_switches_total, besides the
// causes of events (events.go).
const (
	causeCommand = "command" // a relay.set or relay.toggle command
	causeRule    = "rule"    // a [[rule]]'s action
	causeLocal   = "local"   // `edge-agent relay set`
)

// Kinds of count: labelledFamilies' order.
const (
	countCommand = iota // method, result
	countSwitch         // relay, cause
	countInput          // input
)

// counters are the counts no part keeps for itself: commands, relay
// switches, input changes (the dispatcher's) and watchdog pings. Label
// values come from the configuration (relay and input names) or short
// fixed lists (methods, codes), so the set stays small. nil counts nothing.
type counters struct {
	mu    sync.Mutex
	n     [3]map[string]uint64 // by kind; key: label values joined by "\x00"
	pings atomic.Uint64
}

func (c *counters) add(kind int, a, b string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.n[kind] == nil {
		c.n[kind] = map[string]uint64{}
	}
	c.n[kind][a+"\x00"+b]++
	c.mu.Unlock()
}

// switched counts a relay switch by cause, when its state changed.
func (d *dispatcher) switched(name, cause string, from, to bool) {
	if from != to {
		d.counts.add(countSwitch, name, cause)
	}
}

// commandDone counts a command's outcome: d.method (set by handle) and the
// reply's error code, or "ok". The reply is errorReply's or okReply's JSON,
// where this key sequence appears only as errorReply writes it (inside a
// string its quotes would be escaped).
func (d *dispatcher) commandDone(reply []byte) {
	res := "ok"
	if _, after, ok := bytes.Cut(reply, []byte(`"error":{"code":"`)); ok {
		res, _, _ = strings.Cut(string(after), `"`)
	}
	d.counts.add(countCommand, d.method, res)
}

// methodLabel bounds a command's method to the known ones.
func methodLabel(m string) string {
	switch m {
	case methodRelaySet, methodRelayToggle, methodLEDIdentify, methodStatus, methodPing:
		return m
	}
	return "unknown"
}

// latencyBounds are the stored-latency histogram's buckets: from a commit
// of a card at its best to a stalled one.
var latencyBounds = [...]time.Duration{time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second}

// metricsSource writes the exposition from the parts; it owns nothing.
type metricsSource struct {
	_      noEq
	src    *statusSource
	counts *counters
	dbPath string
	boot   *bootstrapCreds // nil without [bootstrap]
}

const (
	mc = metrics.Counter
	mg = metrics.Gauge
)

// scalars are the families of one unlabelled sample, in text's order; their
// values come in the same order.
var scalars = [...][3]string{
	{"edge_agent_start_time_seconds", mg, "Start time, Unix seconds."},
	{"edge_agent_resident_memory_bytes", mg, "Resident set size."},
	{"edge_agent_connected", mg, "1 while connected to the broker."},
	{"edge_agent_reconnects_total", mc, "Connections after the first."},
	{"edge_agent_messages_stored_total", mc, "Messages stored (fsynced)."},
	{"edge_agent_stored_bytes_total", mc, "Payload bytes stored."},
	{"edge_agent_commits_total", mc, "Store commits of messages."},
	{"edge_agent_messages_per_commit", mg, "Messages per commit."},
	{"edge_agent_oversize_total", mc, "Messages over max_message_size."},
	{"edge_agent_refused_on_arrival_total", mc, "Commands refused on arrival."},
	{"edge_agent_inbox_records", mg, "Records in the inbox."},
	{"edge_agent_inbox_pending", mg, "Commands not handled yet."},
	{"edge_agent_inbox_bytes", mg, "Bytes in the inbox."},
	{"edge_agent_outbox_pending", mg, "Entries waiting for the broker."},
	{"edge_agent_store_file_bytes", mg, "Database file size."},
	{"edge_agent_rule_matches_total", mc, "Messages a rule acted on."},
	{"edge_agent_rule_unmatched_total", mc, "Messages on a rule topic no rule matched."},
	{"edge_agent_watchdog_pings_total", mc, "Watchdog pings sent."},
}

// labelledFamilies are the counters' kinds: name, help, labels.
var labelledFamilies = [...][4]string{
	{"edge_agent_commands_total", "Commands by method and result.", "method", "result"},
	{"edge_agent_relay_switches_total", "Relay switches by cause.", "relay", "cause"},
	{"edge_agent_input_events_total", "Input changes.", "input"},
}

// sinkFamilies are each sink's numbers, in the order text reads them.
var sinkFamilies = [...][3]string{
	{"edge_agent_sink_lag", mg, "Records after the sink cursor."},
	{"edge_agent_sink_delivered_total", mc, "Records delivered."},
	{"edge_agent_sink_failed_total", mc, "Failed delivery attempts."},
	{"edge_agent_sink_dropped_total", mc, "Records dropped by retention."},
}

// text is the Prometheus exposition (docs/design.md#metrics).
func (m *metricsSource) text() []byte {
	st := m.src.build()
	in, h := st.Ingest, m.src.ingest.histogram()
	var size int64
	if fi, err := os.Stat(m.dbPath); err == nil {
		size = fi.Size()
	}
	vals := [len(scalars)]float64{float64(processStart.Unix()), float64(metrics.RSS()), b2f(st.Connected),
		float64(m.src.health.reconnects()), float64(in.Messages), float64(h.bytes), float64(in.Commits),
		in.PerCommit, float64(in.Oversize), float64(in.Refused), float64(st.Inbox.Total), float64(st.Inbox.Pending),
		float64(st.Inbox.Bytes), float64(st.Outbox.Pending), float64(size), float64(m.src.rules.matched.Load()),
		float64(m.src.rules.unmatched.Load()), float64(m.counts.pings.Load())}
	var t metrics.Text
	t.Head("edge_agent_build_info", mg, "Version.")
	t.Sample("edge_agent_build_info", 1, "version", st.Version)
	for i, f := range scalars {
		t.Head(f[0], f[1], f[2])
		t.Sample(f[0], vals[i])
	}
	t.Head("edge_agent_state", mg, "1 for the state shown.")
	for _, s := range led.States() {
		t.Sample("edge_agent_state", b2f(s == st.State), "state", s)
	}
	if m.boot != nil {
		t.Head("edge_agent_bootstrap_fetches_total", mc, "Account service fetches.")
		t.Sample("edge_agent_bootstrap_fetches_total", float64(m.boot.fetched.Load()), "result", "ok")
		t.Sample("edge_agent_bootstrap_fetches_total", float64(m.boot.failed.Load()), "result", "error")
	}
	const lat = "edge_agent_stored_latency_seconds"
	t.Head(lat, metrics.Histogram, "Receive to stored.")
	var cum uint64
	for i, b := range latencyBounds {
		cum += h.buckets[i]
		t.Sample(lat+"_bucket", float64(cum), "le", strconv.FormatFloat(b.Seconds(), 'g', -1, 64))
	}
	t.Sample(lat+"_bucket", float64(h.n), "le", "+Inf")
	t.Sample(lat+"_sum", h.sum.Seconds())
	t.Sample(lat+"_count", float64(h.n))

	t.Head("edge_agent_relay_on", mg, "1 while the relay is on.")
	for _, r := range m.src.cfg.Relays {
		t.Sample("edge_agent_relay_on", b2f(st.Relays[r.Name].On), "relay", r.Name)
	}
	c := m.counts
	c.mu.Lock()
	for kind, f := range labelledFamilies {
		t.Head(f[0], mc, f[1])
		// In map order: the text format does not order samples.
		for k, n := range c.n[kind] {
			a, b, _ := strings.Cut(k, "\x00")
			// The third label name is "" for one label: Sample stops at
			// the pair it lacks.
			t.Sample(f[0], float64(n), f[2], a, f[3], b)
		}
	}
	c.mu.Unlock()
	for i, f := range sinkFamilies {
		t.Head(f[0], f[1], f[2])
		for _, k := range m.src.cfg.Sinks {
			s := st.Sinks[k.Name]
			t.Sample(f[0], float64([...]uint64{s.Lag, s.Delivered, s.Failed, s.Dropped}[i]), "sink", k.Name)
		}
	}
	return t.Bytes()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// telemetry is the summary published on telemetry_topic
// (docs/design.md#metrics).
type telemetry struct {
	At         string                 `json:"at"`
	Version    string                 `json:"version"`
	State      string                 `json:"state"`
	Inbox      int                    `json:"inbox"`   // records held
	Pending    int                    `json:"pending"` // commands not handled yet
	Outbox     int                    `json:"outbox"`
	Stored     uint64                 `json:"stored"` // since the previous summary
	Reconnects int                    `json:"reconnects"`
	Relays     map[string]RelayStatus `json:"relays,omitempty"`
	SinkLag    map[string]uint64      `json:"sink_lag,omitempty"`
}

// reporter is the [metrics] loop: every interval it rewrites the textfile
// and queues a telemetry summary. It runs only when one of them is on.
type reporter struct {
	m       *metricsSource
	cfg     config.Metrics
	db      *store.DB
	replies wake   // the session's publisher: a summary is queued
	backlog func() // health: the outbox changed
	log     *slog.Logger
}

func (r *reporter) run(ctx context.Context) {
	t := time.NewTicker(max(r.cfg.Interval, time.Second))
	var lastErr string // the textfile's, logged once
	var lastStored uint64
	for ctx.Err() == nil {
		if r.cfg.Textfile != "" {
			err := metrics.WriteFile(r.cfg.Textfile, r.m.text())
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if msg != lastErr {
				r.log.Warn("metrics.textfile", "path", r.cfg.Textfile, "err", err)
			}
			lastErr = msg
		}
		if r.cfg.TelemetryTopic != "" {
			st := r.m.src.build()
			sum := telemetry{At: eventTime(time.Now()), Version: st.Version, State: st.State, Inbox: st.Inbox.Total,
				Pending: st.Inbox.Pending, Outbox: st.Outbox.Pending, Stored: st.StoredSinceStart - lastStored,
				Reconnects: r.m.src.health.reconnects(), Relays: st.Relays, SinkLag: map[string]uint64{}}
			lastStored = st.StoredSinceStart
			for n, s := range st.Sinks {
				sum.SinkLag[n] = s.Lag
			}
			b, _ := json.Marshal(sum)
			if err := r.db.ReplaceTelemetry(store.OutMsg{Topic: r.cfg.TelemetryTopic, Payload: b}); err != nil {
				r.log.Warn("telemetry summary not queued; the next interval tries again", "err", err)
			} else {
				r.replies.poke()
				r.backlog()
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	t.Stop()
}

// noEq makes a struct not comparable, so the linker keeps no equality
// function for it (a few hundred bytes of ARM code each).
type noEq [0]func()
