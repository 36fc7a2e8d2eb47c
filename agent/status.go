package agent

import (
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/sinks"
	"github.com/edge-agent/edge-agent/hw/relay"
	"github.com/edge-agent/edge-agent/store"
)

// Status is the status document: `edge-agent status -json` prints it and the
// agent.status command returns it. The field names are fixed by docs/design.md#status-document;
// nothing in it is secret.
type Status struct {
	Version   string                 `json:"version"`
	DeviceID  string                 `json:"device_id"`
	State     string                 `json:"state"`
	Connected bool                   `json:"connected"`
	Broker    string                 `json:"broker"`
	ClientID  string                 `json:"client_id"`
	Since     time.Time              `json:"since"` // when connected last changed
	Inbox     InboxStatus            `json:"inbox"`
	Outbox    OutboxStatus           `json:"outbox"`
	Relays    map[string]RelayStatus `json:"relays"`
	LEDs      map[string]string      `json:"leds"`
	LastError string                 `json:"last_error"`

	StoredSinceStart uint64        `json:"stored_since_start"`
	Ingest           *IngestStatus `json:"ingest,omitempty"`
	LastMessageAt    *time.Time    `json:"last_message_at,omitempty"`
	Uptime           string        `json:"uptime"`
	Rules            *RulesStatus  `json:"rules,omitempty"` // when rules are configured
	// Sinks: each [[sink]]'s cursor, lag, delivered, failed, dropped and
	// last_error; absent without sinks.
	Sinks map[string]sinks.Status `json:"sinks,omitempty"`
	// Inputs: each [[input]]'s debounced state; absent without inputs.
	Inputs map[string]InputStatus `json:"inputs,omitempty"`
}

// InboxStatus counts stored notifications; pending ones are not handled yet.
type InboxStatus struct {
	Total   int    `json:"total"`
	Pending int    `json:"pending"`
	LastSeq uint64 `json:"last_seq"`
	Bytes   int64  `json:"bytes"`
}

// OutboxStatus counts replies not yet acknowledged by the broker.
type OutboxStatus struct {
	Pending int `json:"pending"`
}

// RelayStatus is one relay's state.
type RelayStatus struct {
	_     noEq       // never compared: no equality function in the binary
	On    bool       `json:"on"`
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until,omitempty"` // when it switches off by itself
	// Fault says why the relay is faulty: its feedback input did not
	// follow its last switch. Absent when it is not.
	Fault string `json:"fault,omitempty"`
}

// statsReader is what the status needs of the store.
type statsReader interface {
	Stats() (store.Stats, error)
	OutboxLen() (int, error)
}

// ledReporter shows the state on the LEDs and returns which pattern each
// LED shows with it.
type ledReporter interface {
	Show(state string) map[string]string
}

var processStart = time.Now()

// statusSource gathers the status document from the parts that own each
// piece; it owns nothing itself.
type statusSource struct {
	cfg     *config.Config
	version string
	sc      sessionConfig
	health  *health
	db      statsReader
	bank    *relay.Bank // nil before the relays are open
	leds    ledReporter // nil when there are none
	ingest  *ingestStats
	rules   *ruleStats // nil before the dispatcher exists
	sinks   *sinks.Manager
	inputs  *inputStates // nil without inputs
	faults  *relayFaults
}

func (s *statusSource) build() Status {
	snap := s.health.snapshot()
	doc := Status{
		Version:   s.version,
		DeviceID:  s.cfg.DeviceID,
		State:     snap.State,
		Connected: snap.Connected,
		Broker:    snap.Broker,
		ClientID:  s.sc.ClientID,
		Since:     snap.Since.UTC(),
		Relays:    map[string]RelayStatus{},
		LEDs:      map[string]string{},
		LastError: snap.LastError,
		Uptime:    time.Since(processStart).Round(time.Second).String(),
	}
	// The counts are read for the document; the state is health's alone.
	st, err := s.db.Stats()
	if err == nil {
		doc.Inbox = InboxStatus{Total: st.Total, Pending: st.Pending, LastSeq: st.LastSeq, Bytes: st.Bytes}
		doc.Outbox.Pending, err = s.db.OutboxLen()
	}
	if err != nil && doc.LastError == "" {
		doc.LastError = "store: " + err.Error()
	}
	if s.ingest != nil {
		in, last := s.ingest.status()
		doc.Ingest, doc.StoredSinceStart = &in, in.Messages
		if !last.IsZero() {
			t := last.UTC()
			doc.LastMessageAt = &t
		}
	}
	if s.sinks != nil && len(s.cfg.Sinks) > 0 {
		doc.Sinks = s.sinks.Status()
	}
	if s.rules != nil && len(s.cfg.Rules) > 0 {
		doc.Rules = &RulesStatus{Matched: s.rules.matched.Load(), Unmatched: s.rules.unmatched.Load()}
	}
	if s.bank != nil {
		for name, r := range s.bank.States() {
			rs := RelayStatus{On: r.On, Since: r.Since.UTC()}
			if r.On && !r.Deadline.IsZero() {
				u := r.Deadline.UTC()
				rs.Until = &u
			}
			if s.faults != nil {
				rs.Fault = s.faults.get(name)
			}
			doc.Relays[name] = rs
		}
	}
	if s.inputs != nil {
		doc.Inputs = s.inputs.all()
	}
	if s.faults != nil && doc.LastError == "" {
		doc.LastError = s.faults.summary()
	}
	if s.leds != nil {
		// The state just computed, on the LEDs before they are read: the
		// document never says "backlog" beside a status LED showing "ok".
		doc.LEDs = s.leds.Show(snap.State)
	}
	return doc
}
