// Package sinks hands every stored notification to the gateway's own
// programs, in seq order, at least once: each [[sink]] of the config reads
// the store's inbox after its own cursor and delivers each record whose topic
// matches one of its filters, by appending a line to a file, running a
// command, POSTing to a URL or publishing to a local MQTT broker.
//
// # Wiring
//
// New reads the stored cursors; Run runs one goroutine per sink until its
// context ends; the writer calls Stored after every commit, which only rings
// a doorbell (a buffered channel of one per sink, sent to without blocking),
// so ingest never waits for a sink. Status and Rewind may be called from any
// goroutine, before, during or after Run.
//
// # Cursors
//
// A sink's cursor is the last seq it has dealt with: delivered, or passed
// over because no filter matched (those count as dealt with too). A new sink
// (no stored cursor) starts at the oldest stored record. The cursor advances
// in memory only after delivery, and is committed to the store
// (store.DB.SetSinkCursors, all sinks in one transaction) at most every
// second and whenever a sink has delivered 1000 records since the last
// commit, and once more when Run stops. A sink delivers nothing more while
// it holds 1000 uncommitted deliveries, so:
//
// After a SIGKILL or a power cut a sink repeats at most what it delivered
// since its cursor's last commit: at most 1000 records, and only those
// delivered in the last second or so (while the store cannot write, the
// sink stops at the 1000 and waits for it). Programs fed by a sink must
// therefore take repeats, as every QoS 1 consumer must; the seq (EDGE_SEQ,
// X-Edge-Seq, {seq}) tells a repeat from a new record.
//
// Retention does not wait for sinks. When records after a sink's cursor were
// dropped before it delivered them, the sink counts them in Status.Dropped,
// logs the seq range and goes on with the next stored record.
//
// # Failures
//
// A delivery that fails is retried, with the agent's backoff from 1 s
// doubling to 5 min with jitter, from the first record not delivered: a
// sink never skips a record because it failed. Status.Failed counts failed
// attempts; Status.LastError is the latest failure, prefixed with its time
// (RFC 3339, UTC), and is kept after the sink recovers, so compare the time
// with the delivered count going up. A failing or slow sink holds back only
// itself: each sink has its own goroutine and cursor, and ingest only rings.
//
// # Types
//
// file: appends one line per record, format's placeholders {payload},
// {topic}, {seq} and {received_at} (RFC 3339 with nanoseconds, UTC; empty
// for a record without a time) replaced, and fsyncs once per batch. A
// payload or topic that is not valid UTF-8 or holds a character that is not
// printable (a newline, a tab, any control character) is written escaped,
// as Go's %q writes it without the surrounding quotes (\n, \t, \x00, \u2028,
// \" and \\ inside), so one record is always one line; anything else is
// written as it is. The file is created mode 0640 (its directory 0750 when
// missing) and rotated before a line would take it past max_size:
// path.keep-1 → path.keep, …, path → path.1; keep = 0 keeps no old file.
// A file moved away or removed by someone else is created again.
//
// exec: runs command once per record, without a shell (a program name
// without a slash is looked up in $PATH), with the payload
// byte-exact on its stdin and EDGE_SEQ, EDGE_TOPIC, EDGE_RECEIVED_AT (and,
// for an oversize marker, EDGE_OVERSIZE, the original size) added to the
// agent's environment. Exit status 0 is delivered. The command runs in a
// process group of its own, killed whole at timeout (and when the agent
// stops); the last 1 KiB of its stderr is kept for the error.
//
// http: POSTs the payload byte-exact with Content-Type
// application/octet-stream and the headers X-Edge-Seq, X-Edge-Topic,
// X-Edge-Received-At (X-Edge-Oversize for a marker). A 2xx answer is
// delivered; anything else, redirects included (they are not followed), is
// a failure. X-Edge-Topic carries the topic with %, control characters and
// DEL percent-encoded (%25, %0A, …), so it is always a valid header.
//
// mqtt: publishes each record QoS 1, not retained, to topic ({topic} and
// {seq} replaced) on broker with client id "edge-agent-sink-NAME" and a
// clean session; the broker's PUBACK is delivered. The connection is made
// when there is something to publish, and made again through the retry
// after any failure. tcp:// is only for a loopback broker (the config
// refuses anything else); tls:// verifies the broker against the system's
// roots.
package sinks
