package agent

import (
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/store"
)

// Status is the status document: `edge-agent status -json` prints it and the
// agent.status command returns it. The field names are fixed by DESIGN.md;
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

	StoredSinceStart uint64     `json:"stored_since_start"`
	LastMessageAt    *time.Time `json:"last_message_at,omitempty"`
	Uptime           string     `json:"uptime"`
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
	On    bool      `json:"on"`
	Since time.Time `json:"since"`
}

// statsReader is what the status needs of the store.
type statsReader interface {
	Stats() (store.Stats, error)
}

var processStart = time.Now()

func buildStatus(cfg *config.Config, version string, sc sessionConfig, h *health, db statsReader) Status {
	snap := h.snapshot()
	s := Status{
		Version:          version,
		DeviceID:         cfg.DeviceID,
		Connected:        snap.Connected,
		Broker:           sc.BrokerURL,
		ClientID:         sc.ClientID,
		Since:            snap.Since.UTC(),
		Relays:           map[string]RelayStatus{},
		LEDs:             map[string]string{},
		StoredSinceStart: snap.Stored,
		Uptime:           time.Since(processStart).Round(time.Second).String(),
	}
	if !snap.LastMsgAt.IsZero() {
		t := snap.LastMsgAt.UTC()
		s.LastMessageAt = &t
	}
	st, err := db.Stats()
	if err != nil {
		// The store's error outranks the connection's: it is why nothing
		// is being acknowledged.
		snap.StorageErr = "store: " + err.Error()
	}
	s.Inbox = InboxStatus{Total: st.Total, Pending: st.Pending, LastSeq: st.LastSeq, Bytes: st.Bytes}
	s.State = snap.state(st.Pending)
	s.LastError = snap.lastError()
	return s
}
