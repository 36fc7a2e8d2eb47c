package store

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

func sameRecord(a, b Record) bool {
	return a.Seq == b.Seq && a.ReceivedAt.Equal(b.ReceivedAt) && a.ReceivedAt.IsZero() == b.ReceivedAt.IsZero() &&
		a.Topic == b.Topic && bytes.Equal(a.Payload, b.Payload) && a.Dup == b.Dup && a.Pending == b.Pending &&
		a.Retained == b.Retained && a.Oversize == b.Oversize
}

var recordExamples = []struct {
	name string
	rec  Record
	enc  []byte // nil: not pinned
}{
	{"minimal", Record{ReceivedAt: time.Unix(0, 1).UTC(), Topic: "a", Payload: []byte{2}, Dup: true}, []byte{1, flagDup, 2, 1, 'a', 2}},
	{"no time", Record{Topic: "t", Payload: []byte{}}, []byte{1, flagNoTime, 0, 1, 't'}},
	{"empty topic", Record{ReceivedAt: time.Unix(0, -1).UTC(), Payload: []byte("x")}, []byte{1, 0, 1, 0, 'x'}},
	{"all bytes", Record{ReceivedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Topic: "edge/gw1/notify", Payload: allBytes()}, nil},
	{"earliest", Record{ReceivedAt: minTime.UTC(), Topic: "x", Payload: []byte{}}, nil},
	{"latest", Record{ReceivedAt: maxTime.UTC(), Topic: "x", Payload: []byte{}, Dup: true}, nil},
	{"retained", Record{ReceivedAt: time.Unix(0, 1).UTC(), Topic: "a", Payload: []byte{2}, Retained: true}, []byte{1, flagRetained, 2, 1, 'a', 2}},
	{"oversize marker", Record{ReceivedAt: time.Unix(0, 1).UTC(), Topic: "a", Payload: []byte{2}, Oversize: 300}, []byte{1, flagOversize, 2, 0xac, 0x02, 1, 'a', 2}},
	{"long topic", Record{ReceivedAt: time.Unix(1, 0).UTC(), Topic: string(bigPayload(300)), Payload: bigPayload(1000)}, nil},
}

func TestRecordEncoding(t *testing.T) {
	for _, tt := range recordExamples {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := encodeRecord(tt.rec)
			if err != nil {
				t.Fatalf("encodeRecord: %v", err)
			}
			if tt.enc != nil && !bytes.Equal(enc, tt.enc) {
				t.Errorf("encodeRecord = %v, want %v", enc, tt.enc)
			}
			got, err := decodeRecord(enc)
			if err != nil {
				t.Fatalf("decodeRecord: %v", err)
			}
			if !sameRecord(got, tt.rec) {
				t.Errorf("decodeRecord(encodeRecord(x)) = %+v, want %+v", got, tt.rec)
			}
		})
	}
}

func TestEncodeRecordIgnoresSeqAndPending(t *testing.T) {
	a, _ := encodeRecord(Record{Seq: 7, Topic: "t", Pending: true})
	b, _ := encodeRecord(Record{Topic: "t"})
	if !bytes.Equal(a, b) {
		t.Errorf("Seq/Pending changed the encoding: %v vs %v", a, b)
	}
}

func TestEncodeRecordRejectsUnstorableTime(t *testing.T) {
	for _, at := range []time.Time{minTime.Add(-1), maxTime.Add(1), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)} {
		if _, err := encodeRecord(Record{ReceivedAt: at}); err == nil {
			t.Errorf("encodeRecord(ReceivedAt %v) succeeded", at)
		}
	}
}

var malformedRecords = []struct {
	name string
	b    []byte
}{
	{"nil", nil},
	{"version only", []byte{1}},
	{"version 0", []byte{0, 0, 0, 0}},
	{"version 2", []byte{2, 0, 0, 0}},
	{"unknown flag", []byte{1, 0x10, 0, 0}},
	{"oversize of 0", []byte{1, flagOversize, 0, 0, 0}},
	{"oversize length missing", []byte{1, flagOversize, 0}},
	{"no time field", []byte{1, 0}},
	{"truncated time", []byte{1, 0, 0x80}},
	{"padded time", []byte{1, 0, 0x80, 0x00, 0}},
	{"time overflows int64", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0}},
	{"time on a no-time record", []byte{1, flagNoTime, 2, 0}},
	{"no topic length", []byte{1, 0, 0}},
	{"padded topic length", []byte{1, 0, 0, 0x81, 0x00, 'a'}},
	{"topic beyond the end", []byte{1, 0, 0, 5, 'a', 'b'}},
	{"huge topic length", []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
}

func TestDecodeRecordMalformed(t *testing.T) {
	for _, tt := range malformedRecords {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeRecord(tt.b)
			if !errors.Is(err, errRecord) {
				t.Errorf("decodeRecord(%v) = %+v, %v; want an errRecord", tt.b, r, err)
			}
		})
	}
}

// FuzzDecodeRecord: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to the very same bytes (one encoding per record).
func FuzzDecodeRecord(f *testing.F) {
	for _, tt := range recordExamples {
		enc, err := encodeRecord(tt.rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, tt := range malformedRecords {
		f.Add(tt.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		enc, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", r, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("encodeRecord(decodeRecord(%x)) = %x", b, enc)
		}
	})
}

// FuzzRecordRoundTrip: decodeRecord(encodeRecord(x)) == x for every record
// encodeRecord accepts.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add(int64(0), false, "edge/gw1/notify", []byte(`{"id":1}`), true)
	f.Add(int64(math.MinInt64), false, "", []byte{}, false)
	f.Add(int64(math.MaxInt64), true, "\xff", allBytes(), true)
	f.Fuzz(func(t *testing.T, nanos int64, zero bool, topic string, payload []byte, dup bool) {
		r := Record{ReceivedAt: time.Unix(0, nanos).UTC(), Topic: topic, Payload: payload, Dup: dup,
			Retained: nanos%3 == 0, Oversize: max(0, nanos%5)}
		if zero {
			r.ReceivedAt = time.Time{}
		}
		enc, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("decodeRecord(encodeRecord(%+v)): %v", r, err)
		}
		if payload == nil {
			r.Payload = []byte{}
		}
		if !sameRecord(got, r) {
			t.Fatalf("round trip gave %+v, want %+v", got, r)
		}
	})
}
