package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Stored form of an inbox record (the value; the key is the 8-byte
// big-endian Seq):
//
//	version  1 byte  recordVersion
//	flags    1 byte  flagDup | flagNoTime | flagRetained | flagOversize; other bits must be 0
//	received varint  Unix nanoseconds (0 when flagNoTime)
//	size     uvarint the message's size in bytes (only with flagOversize)
//	topicLen uvarint
//	topic    topicLen bytes
//	payload  the rest
//
// Pending is not stored here: the pending bucket is the one source of truth,
// so marking a record handled does not rewrite it.
const recordVersion = 1

const (
	flagDup    = 1 << 0
	flagNoTime = 1 << 1 // ReceivedAt was the zero time.Time, which has no Unix nanos
	// flagRetained: the MQTT RETAIN flag as received.
	flagRetained = 1 << 2
	// flagOversize: a marker for a message larger than the agent takes in;
	// payload holds its first bytes and size its whole length.
	flagOversize = 1 << 3
	flagsKnown   = flagDup | flagNoTime | flagRetained | flagOversize
)

// The instants that Unix nanoseconds in an int64 can hold (years 1677-2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

var errRecord = errors.New("malformed record")

// encodeRecord returns the stored form of r. Seq and Pending are not part of
// it (see above). It fails only for a ReceivedAt outside 1677-2262.
func encodeRecord(r Record) ([]byte, error) {
	var flags byte
	var nanos int64
	switch {
	case r.ReceivedAt.IsZero():
		flags |= flagNoTime
	case r.ReceivedAt.Before(minTime) || r.ReceivedAt.After(maxTime):
		return nil, fmt.Errorf("received time %v is outside what Unix nanoseconds can hold", r.ReceivedAt)
	default:
		nanos = r.ReceivedAt.UnixNano()
	}
	if r.Dup {
		flags |= flagDup
	}
	if r.Retained {
		flags |= flagRetained
	}
	if r.Oversize > 0 {
		flags |= flagOversize
	}
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(r.Topic)+len(r.Payload))
	b = append(b, recordVersion, flags)
	b = binary.AppendVarint(b, nanos)
	if r.Oversize > 0 {
		b = binary.AppendUvarint(b, uint64(r.Oversize))
	}
	b = binary.AppendUvarint(b, uint64(len(r.Topic)))
	b = append(b, r.Topic...)
	b = append(b, r.Payload...)
	return b, nil
}

// decodeRecord parses a stored record. It copies everything out of b (bbolt's
// slices are valid only inside their transaction;
// docs/dependencies.md#bbolt-slices-valid-only-in-tx), returns
// Seq 0 and Pending false, and returns an error, never panics, on malformed
// input. It accepts only the one encoding encodeRecord produces, so
// encodeRecord(decodeRecord(b)) == b.
func decodeRecord(b []byte) (Record, error) {
	p, err := parseRecord(b)
	if err != nil {
		return Record{}, err
	}
	r := Record{
		Topic:    string(p.topic),
		Payload:  append([]byte{}, p.payload...),
		Dup:      p.flags&flagDup != 0,
		Retained: p.flags&flagRetained != 0,
		Oversize: p.oversize,
	}
	if p.flags&flagNoTime == 0 {
		r.ReceivedAt = time.Unix(0, p.nanos).UTC()
	}
	return r, nil
}

// parsedRecord points into the buffer it was parsed from.
type parsedRecord struct {
	flags          byte
	nanos          int64
	oversize       int64
	topic, payload []byte
}

// size is what the record counts against Options.RetainBytes.
func (p parsedRecord) size() int64 { return int64(len(p.topic)) + int64(len(p.payload)) }

func parseRecord(b []byte) (parsedRecord, error) {
	var p parsedRecord
	if len(b) < 2 {
		return p, fmt.Errorf("%w: %d bytes", errRecord, len(b))
	}
	if b[0] != recordVersion {
		return p, fmt.Errorf("%w: version %d, want %d", errRecord, b[0], recordVersion)
	}
	p.flags = b[1]
	if p.flags&^flagsKnown != 0 {
		return p, fmt.Errorf("%w: unknown flags %#x", errRecord, p.flags)
	}
	rest := b[2:]

	nanos, n := binary.Varint(rest)
	if n <= 0 || n != varintLen(nanos) {
		return p, fmt.Errorf("%w: bad time", errRecord)
	}
	if p.flags&flagNoTime != 0 && nanos != 0 {
		return p, fmt.Errorf("%w: time set on a record without one", errRecord)
	}
	p.nanos = nanos
	rest = rest[n:]

	if p.flags&flagOversize != 0 {
		size, n := binary.Uvarint(rest)
		if n <= 0 || n != uvarintLen(size) || size == 0 || size > math.MaxInt64 {
			return p, fmt.Errorf("%w: bad oversize length", errRecord)
		}
		p.oversize = int64(size)
		rest = rest[n:]
	}

	tlen, n := binary.Uvarint(rest)
	if n <= 0 || n != uvarintLen(tlen) {
		return p, fmt.Errorf("%w: bad topic length", errRecord)
	}
	rest = rest[n:]
	if tlen > uint64(len(rest)) {
		return p, fmt.Errorf("%w: topic length %d beyond the %d bytes left", errRecord, tlen, len(rest))
	}
	p.topic = rest[:tlen]
	p.payload = rest[tlen:]
	return p, nil
}

// varintLen and uvarintLen give the canonical (shortest) encoding's length;
// binary.Varint also accepts padded forms, which we reject.
func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}
