// Package control is the daemon's local control socket: a unix socket in
// data_dir through which the CLI verbs (status, inbox …) ask the running
// daemon, which alone owns the database (a second bbolt open would block on
// its lock; docs/dependencies.md#bbolt-timeout-0-waits-forever).
//
// The protocol is JSON lines: the client sends one Request line; the server
// answers with Reply lines and ends with one whose Done is true. A reply
// with Error set ends the answer too.
package control

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/store"
)

// SocketName is the control socket's file name inside data_dir.
const SocketName = "edge-agent.sock"

// Request verbs.
const (
	CmdStatus      = "status"
	CmdInboxList   = "inbox.list"   // the last N records (default 20)
	CmdInboxShow   = "inbox.show"   // one record by Seq
	CmdInboxExport = "inbox.export" // all records, or the last N, oldest first
	CmdRelaySet    = "relay.set"    // Relay, On, For
	CmdLEDIdentify = "led.identify" // For
	CmdLEDTest     = "led.test"     // plays every pattern; a Reply with State per pattern
	CmdInboxFollow = "inbox.follow" // records from Seq (0: only new ones) as they are stored, until the client goes
	CmdSinkRewind  = "sink.rewind"  // Name, Seq: the sink delivers again from Seq
	CmdSimInput    = "sim.input"    // Name, On: the sim board's input is driven active (On) or inactive
	CmdMetrics     = "metrics"      // the Prometheus text exposition, in Text
)

// MaxIdentify bounds how long led identify blinks: a longer blink hides the
// device's real state for longer than anyone stands in front of it.
const MaxIdentify = time.Hour

// Request is one line from a client.
type Request struct {
	_     noEq   // never compared: no equality function in the binary
	Cmd   string `json:"cmd"`
	Seq   uint64 `json:"seq,omitempty"`
	N     int    `json:"n,omitempty"`
	Relay string `json:"relay,omitempty"`
	On    bool   `json:"on,omitempty"`
	For   string `json:"for,omitempty"`  // a Go duration
	Each  string `json:"each,omitempty"` // led.test: how long each pattern plays
	Name  string `json:"name,omitempty"` // sink.rewind: the sink
}

// Reply is one line from the server.
type Reply struct {
	Status json.RawMessage `json:"status,omitempty"`
	Record *Record         `json:"record,omitempty"`
	State  string          `json:"state,omitempty"` // led.test: the pattern now playing
	Text   string          `json:"text,omitempty"`  // metrics: the exposition
	Relay  *RelayApplied   `json:"relay,omitempty"` // relay.set: what was applied
	// Heartbeat keeps an idle stream (inbox.follow) alive: the client's
	// read deadline is renewed, and a client that went away is noticed.
	Heartbeat bool   `json:"heartbeat,omitempty"`
	Error     string `json:"error,omitempty"`
	Done      bool   `json:"done,omitempty"`
}

// RelayApplied is the state a relay.set request put the relay in: max_on
// may have cut the deadline short of what was asked.
type RelayApplied struct {
	_     noEq       // never compared: no equality function in the binary
	On    bool       `json:"on"`
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until,omitempty"` // when it switches off by itself
}

// Record is an inbox record as `inbox export -json` writes it
// (docs/design.md#inbox-export):
// the payload is a string when its bytes are valid UTF-8, and standard
// base64 in payload_b64 otherwise, so every payload survives byte-exact.
type Record struct {
	_          noEq   // never compared: no equality function in the binary
	Seq        uint64 `json:"seq"`
	ReceivedAt string `json:"received_at"`
	Topic      string `json:"topic"`
	Dup        bool   `json:"dup"`
	Retained   bool   `json:"retained,omitempty"` // the MQTT RETAIN flag as received
	// Oversize marks a message over max_message_size: Size is its length,
	// and the payload holds only its first bytes.
	Oversize   bool    `json:"oversize,omitempty"`
	Size       int64   `json:"size,omitempty"`
	Payload    *string `json:"payload,omitempty"`
	PayloadB64 *string `json:"payload_b64,omitempty"`
}

// FromStore converts a stored record to its exported form.
func FromStore(r store.Record) Record {
	out := Record{
		Seq:        r.Seq,
		ReceivedAt: r.ReceivedAt.UTC().Format(time.RFC3339Nano),
		Topic:      r.Topic,
		Dup:        r.Dup,
		Retained:   r.Retained,
		Oversize:   r.Oversize > 0,
		Size:       r.Oversize,
	}
	if utf8.Valid(r.Payload) {
		s := string(r.Payload)
		out.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(r.Payload)
		out.PayloadB64 = &s
	}
	return out
}

// Bytes returns the payload's exact bytes.
func (r Record) Bytes() ([]byte, error) {
	if r.PayloadB64 != nil {
		return base64.StdEncoding.DecodeString(*r.PayloadB64)
	}
	if r.Payload != nil {
		return []byte(*r.Payload), nil
	}
	return nil, nil
}

// PayloadPrefix returns up to n bytes of p as a quoted Go string, with "…"
// after it when p is longer: control characters and invalid UTF-8 come out
// escaped, so a binary payload cannot garble a log line or a terminal.
func PayloadPrefix(p []byte, n int) string {
	if len(p) <= n {
		return strconv.Quote(string(p))
	}
	return strconv.Quote(string(p[:n])) + "…"
}

// Printable returns p for a terminal, keeping newlines and tabs: the C0
// controls (ESC, CR, BEL …), DEL and invalid UTF-8 bytes come out as \xNN,
// the C1 controls (U+0080–U+009F) as \u00NN. A hostile publisher's payload
// cannot then move the cursor, clear the screen or retitle the window.
// Backslashes are left as they are: the exact bytes are inbox export's.
func Printable(p []byte) string { return printable(p, true) }

// PrintableLine is Printable for one line: newlines and tabs are escaped
// too, so a topic cannot break a table's row.
func PrintableLine(s string) string { return printable([]byte(s), false) }

func printable(p []byte, multiline bool) string {
	var b strings.Builder
	b.Grow(len(p))
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, p[0])
		case multiline && (r == '\n' || r == '\t'):
			b.WriteByte(byte(r))
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(p[:n])
		}
		p = p[n:]
	}
	return b.String()
}

// noEq makes a struct not comparable, so the linker keeps no equality
// function for it (a few hundred bytes of ARM code each).
type noEq [0]func()
