package store

import "fmt"

// keyTelemetryID is the outbox id of the newest telemetry summary (0: none).
var keyTelemetryID = []byte("telemetry.id")

// ReplaceTelemetry queues m, a telemetry summary, in the outbox and, in the
// same transaction, drops the previous summary if the broker has not
// acknowledged it yet: a summary that could not be sent is replaced by the
// newer one, never queued behind it, so an outage leaves one summary waiting,
// not one per interval. The id is kept in meta, so this holds across
// restarts. A previous summary already published and awaiting its PUBACK
// may still arrive; its late DeleteOutbox is ignored.
func (db *DB) ReplaceTelemetry(m OutMsg) error {
	err := db.update(func(t *txn) error {
		if prev := getU64(t.meta, keyTelemetryID); prev != 0 && t.outbox.Get(seqKey(prev)) != nil {
			if err := t.outbox.Delete(seqKey(prev)); err != nil {
				return err
			}
			if err := putU64(t.meta, keyOutboxCount, getU64(t.meta, keyOutboxCount)-1); err != nil {
				return err
			}
		}
		ids, err := t.putOutbox([]OutMsg{m})
		if err != nil {
			return err
		}
		return putU64(t.meta, keyTelemetryID, ids[0])
	})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}
