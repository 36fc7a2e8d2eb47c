// Package store keeps the gateway's durable state in one bbolt file,
// <data_dir>/edge-agent.db (with a journal beside it for small commits): the inbox of received MQTT notifications and
// what must commit together with it (Apply): relay states, executed command
// ids and the replies waiting for the broker (the outbox); the cached
// account-service credentials; and each sink's cursor (SinkCursors), the
// last record that sink delivered.
//
// The promise: a message is on disk before Append returns. Append writes a
// whole batch either in one bbolt transaction, whose commit fsyncs the data
// pages and then the meta page, or, for a small batch of plain
// notifications, as one group in the journal beside it
// (<data_dir>/edge-agent.journal, journal.go), fdatasynced; the journaled
// records move into bbolt later, many in one commit, and every read merges
// them. So when Append returns nil every record of the batch survives a
// power cut, and when it returns an error none of them was stored and the
// caller must not acknowledge them. Nothing already stored is lost to
// make room: retention drops only handled records, and when only pending
// records are left Append fails with ErrFull instead.
//
// Records are numbered 1, 2, 3, … by Append; a number is never reused, not
// after pruning and not after a restart.
//
// Open checks the file before it is used (a truncated or scribbled-on file
// fails with ErrCorrupt instead of crashing the process) and holds bbolt's
// file lock until Close: a second process on the same data_dir fails with
// ErrLocked.
//
// A DB is safe for concurrent use: bbolt runs one write transaction at a
// time, so any goroutine may write. Append commits a whole batch at once, so
// a caller that appends from one goroutine can group many messages into one
// commit (the agent does). The package returns errors and never logs.
//
// The bbolt traps this package works around are described in
// docs/dependencies.md (section "bbolt v1.5.0"); comments cite each by its
// anchor, e.g. docs/dependencies.md#bbolt-commit-fsyncs.
package store
