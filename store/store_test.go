package store

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func TestOpenCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "edge-agent")
	db := openAt(t, dir, nil)

	if got, want := db.Path(), filepath.Join(dir, FileName); got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got&^0o750 != 0 {
		t.Errorf("dir mode = %v, want at most 0750", got)
	}
	st, err = os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode = %v, want 0600", got)
	}
}

// The file's mode is put back to 0600 on every open, not only on create.
func TestOpenTightensFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	for _, mode := range []os.FileMode{0o644, 0o660, 0o604, 0o640, 0o700} {
		for _, empty := range []bool{false, true} {
			os.Remove(path)
			if empty {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				db, err := Open(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, nil)
			if err != nil {
				t.Fatalf("mode %04o: %v", mode, err)
			}
			db.Close()
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != 0o600 {
				t.Errorf("opened at %04o (empty %v): mode %04o, want 0600", mode, empty, got)
			}
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	want := Options{RetainRecords: 100_000, RetainBytes: 64 << 20, MaxSize: 256 << 20, LockTimeout: time.Second, MaxCommands: 10_000}
	for _, o := range []*Options{nil, {}, {RetainRecords: -1, RetainBytes: -1, MaxSize: -1, LockTimeout: -1}} {
		if got := o.withDefaults(); got != want {
			t.Errorf("(%+v).withDefaults() = %+v, want %+v", o, got, want)
		}
	}
	set := Options{RetainRecords: 5, RetainBytes: 6, MaxSize: 7, LockTimeout: 8, MaxCommands: 9, SkipCheck: true}
	if got := set.withDefaults(); got != set {
		t.Errorf("withDefaults changed set options: %+v", got)
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func bigPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	msgs := []Message{
		{ReceivedAt: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC), Topic: "edge/gw1/notify", Payload: []byte(`{"id":"a1"}`)},
		{ReceivedAt: time.Date(2025, 3, 1, 13, 0, 0, 1, berlin), Topic: "edge/gw1/cmd", Payload: allBytes(), Dup: true, Pending: true},
		{ReceivedAt: time.Unix(0, 0), Topic: "t/empty", Payload: []byte{}},
		{ReceivedAt: time.Unix(1, 0), Topic: "t/nil", Payload: nil},
		{ReceivedAt: time.Now(), Topic: "t/big", Payload: bigPayload(256 << 10)},
		{Topic: "t/no-time", Payload: []byte{0}},
		{ReceivedAt: time.Unix(-1, 5), Topic: "", Payload: []byte("empty topic, before 1970")},
		{ReceivedAt: time.Unix(2, 0), Topic: "ünïcödé/+/#/\x00", Payload: []byte("\xff\xfe")},
	}
	db := openTest(t, nil)
	seqs := mustAppend(t, db, msgs...)
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs = %v, want %v", seqs, want)
	}

	check := func(t *testing.T, r Record, m Message, seq uint64) {
		t.Helper()
		if r.Seq != seq {
			t.Errorf("Seq = %d, want %d", r.Seq, seq)
		}
		if !r.ReceivedAt.Equal(m.ReceivedAt) {
			t.Errorf("ReceivedAt = %v, want %v", r.ReceivedAt, m.ReceivedAt)
		}
		if !m.ReceivedAt.IsZero() && r.ReceivedAt.Location() != time.UTC {
			t.Errorf("ReceivedAt location = %v, want UTC", r.ReceivedAt.Location())
		}
		if r.Topic != m.Topic {
			t.Errorf("Topic = %q, want %q", r.Topic, m.Topic)
		}
		if !bytes.Equal(r.Payload, m.Payload) {
			t.Errorf("Payload differs: %d bytes, want %d", len(r.Payload), len(m.Payload))
		}
		if r.Dup != m.Dup || r.Pending != m.Pending {
			t.Errorf("Dup, Pending = %v, %v, want %v, %v", r.Dup, r.Pending, m.Dup, m.Pending)
		}
	}

	t.Run("Get", func(t *testing.T) {
		for i, m := range msgs {
			r, err := db.Get(seqs[i])
			if err != nil {
				t.Fatalf("Get(%d): %v", seqs[i], err)
			}
			check(t, r, m, seqs[i])
		}
	})
	t.Run("Scan", func(t *testing.T) {
		recs := scanAll(t, db)
		if len(recs) != len(msgs) {
			t.Fatalf("Scan gave %d records, want %d", len(recs), len(msgs))
		}
		for i, m := range msgs {
			check(t, recs[i], m, seqs[i])
		}
	})
	t.Run("ScanAfter", func(t *testing.T) {
		for _, after := range []uint64{0, 3, 7, 8, 100, math.MaxUint64} {
			var got []uint64
			err := db.Scan(after, func(r Record) error { got = append(got, r.Seq); return nil })
			if err != nil {
				t.Fatal(err)
			}
			var want []uint64
			for _, s := range seqs {
				if s > after {
					want = append(want, s)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Scan(%d) = %v, want %v", after, got, want)
			}
		}
	})
	t.Run("Tail", func(t *testing.T) {
		for _, n := range []int{-1, 0, 1, 3, 8, 20} {
			var got []Record
			if err := db.Tail(n, func(r Record) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			start := max(0, len(msgs)-max(n, 0))
			if len(got) != len(msgs)-start {
				t.Fatalf("Tail(%d) gave %v", n, seqsOf(got))
			}
			for i, r := range got {
				check(t, r, msgs[start+i], seqs[start+i])
			}
		}
	})
	t.Run("PayloadIsACopy", func(t *testing.T) {
		r1, _ := db.Get(2)
		r1.Payload[0] ^= 0xff
		r2, _ := db.Get(2)
		if !bytes.Equal(r2.Payload, allBytes()) {
			t.Error("changing a returned payload changed the stored one")
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, s := range []uint64{0, 9, math.MaxUint64} {
			if _, err := db.Get(s); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%d) error = %v, want ErrNotFound", s, err)
			}
		}
	})
}

func TestAppendEmptyIsNoop(t *testing.T) {
	db := openTest(t, nil)
	before := db.txid(t)
	seqs, err := db.Append(nil)
	if err != nil || seqs != nil {
		t.Fatalf("Append(nil) = %v, %v", seqs, err)
	}
	if got := db.txid(t); got != before {
		t.Errorf("Append(nil) committed (txid %d -> %d)", before, got)
	}
}

func TestAppendRejectsUnstorableTime(t *testing.T) {
	db := openTest(t, nil)
	_, err := db.Append([]Message{msg("a", 1, false), {ReceivedAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Topic: "b"}})
	if err == nil || !strings.Contains(err.Error(), "message 1") {
		t.Fatalf("Append with a year-3000 time: err = %v, want one naming message 1", err)
	}
	if s := mustStats(t, db); s.Total != 0 {
		t.Errorf("after the failed Append, Total = %d, want 0", s.Total)
	}
}

func TestGroupCommit(t *testing.T) {
	for _, n := range []int{1, 10, 1000} {
		db := openTest(t, nil)
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = msg("edge/gw1/notify", 150, i%10 == 0)
		}
		before := db.txid(t)
		mustAppend(t, db, msgs...)
		if got := db.txid(t) - before; got != 1 {
			t.Errorf("Append of %d messages took %d commits, want 1", n, got)
		}
	}
}

func TestSeqsContinueAfterReopenAndPrune(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{RetainRecords: 3}

	db, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustAppend(t, db, msg("a", 1, false), msg("a", 1, false)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("first seqs = %v", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, dir, opts)
	if got := mustAppend(t, db, msg("a", 1, false), msg("a", 1, false), msg("a", 1, false)); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("after reopen seqs = %v, want [3 4 5]", got)
	}
	if got := seqsOf(scanAll(t, db)); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("stored after prune = %v, want [3 4 5]", got)
	}
	// Prune everything older, close and reopen: the next seq still follows
	// the last one ever assigned, not the last one stored.
	mustAppend(t, db, msg("a", 1, false), msg("a", 1, false), msg("a", 1, false))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir, opts)
	if got := mustAppend(t, db, msg("a", 1, false)); !slices.Equal(got, []uint64{9}) {
		t.Fatalf("after prune and reopen seq = %v, want [9]", got)
	}
}

func TestRetention(t *testing.T) {
	// Each message is topic "t" + payload: size 1+n bytes.
	tests := []struct {
		name    string
		opts    Options
		batches [][]Message
		want    []uint64 // stored seqs afterwards
	}{{
		name:    "by count drops the oldest",
		opts:    Options{RetainRecords: 3},
		batches: [][]Message{{msg("t", 9, false), msg("t", 9, false), msg("t", 9, false)}, {msg("t", 9, false), msg("t", 9, false)}},
		want:    []uint64{3, 4, 5},
	}, {
		name:    "by count keeps pending",
		opts:    Options{RetainRecords: 3},
		batches: [][]Message{{msg("t", 9, true), msg("t", 9, false), msg("t", 9, true)}, {msg("t", 9, false), msg("t", 9, false)}},
		want:    []uint64{1, 3, 5},
	}, {
		name:    "by bytes drops the oldest",
		opts:    Options{RetainBytes: 30},
		batches: [][]Message{{msg("t", 9, false), msg("t", 9, false), msg("t", 9, false)}, {msg("t", 19, false)}},
		want:    []uint64{3, 4},
	}, {
		name:    "by bytes keeps pending",
		opts:    Options{RetainBytes: 30},
		batches: [][]Message{{msg("t", 9, true), msg("t", 9, false), msg("t", 9, false)}, {msg("t", 9, false)}},
		want:    []uint64{1, 3, 4},
	}, {
		name:    "a handled message larger than the bound is dropped at once",
		opts:    Options{RetainBytes: 30},
		batches: [][]Message{{msg("t", 9, true)}, {msg("t", 99, false)}},
		want:    []uint64{1},
	}, {
		name:    "both bounds",
		opts:    Options{RetainRecords: 4, RetainBytes: 39},
		batches: [][]Message{{msg("t", 9, false), msg("t", 9, true), msg("t", 9, false)}, {msg("t", 4, false), msg("t", 4, false), msg("t", 19, false)}},
		want:    []uint64{2, 5, 6},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, &tt.opts)
			for _, b := range tt.batches {
				mustAppend(t, db, b...)
			}
			if got := seqsOf(scanAll(t, db)); !slices.Equal(got, tt.want) {
				t.Errorf("stored = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrFull(t *testing.T) {
	db := openTest(t, &Options{RetainRecords: 3})
	mustAppend(t, db, msg("cmd", 5, true), msg("cmd", 5, true), msg("cmd", 5, true))
	before := mustStats(t, db)
	txid := db.txid(t)

	_, err := db.Append([]Message{msg("note", 5, false), msg("cmd", 5, true)})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append into a store full of pending records: err = %v, want ErrFull", err)
	}
	if got := mustStats(t, db); got != before {
		t.Errorf("Stats after ErrFull = %+v, want unchanged %+v", got, before)
	}
	if got := db.txid(t); got != txid {
		t.Errorf("ErrFull committed something (txid %d -> %d)", txid, got)
	}
	for _, s := range []uint64{4, 5} {
		if _, err := db.Get(s); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%d) after ErrFull: err = %v, want ErrNotFound", s, err)
		}
	}

	markHandled(t, db, 1)
	seqs := mustAppend(t, db, msg("cmd", 5, true))
	if got := seqsOf(scanAll(t, db)); !slices.Equal(got, []uint64{2, 3, seqs[0]}) {
		t.Errorf("stored after marking 1 handled and Append = %v, want [2 3 %d]", got, seqs[0])
	}
}

// A pending message larger than the byte bound could never be stored: Append
// says so at once, naming it, instead of ErrFull (which the writer would
// wait out forever), and writes nothing.
func TestAppendTooLargePending(t *testing.T) {
	db := openTest(t, &Options{RetainBytes: 100})
	before := mustStats(t, db)
	_, err := db.Append([]Message{msg("note", 5, false), msg("cmd", 200, true)})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Index != 1 || tl.Bound != 100 {
		t.Fatalf("Append of a pending message over RetainBytes: err = %v, want a TooLargeError for index 1", err)
	}
	if got := mustStats(t, db); got != before {
		t.Errorf("Stats after TooLargeError = %+v, want unchanged %+v", got, before)
	}
	// Handled, the same message is stored (and then pruned by retention).
	mustAppend(t, db, msg("note", 5, false), msg("cmd", 200, false))
}

// A reply attached to a message is queued in the outbox in the same commit.
func TestAppendQueuesReply(t *testing.T) {
	db := openTest(t, nil)
	m := msg("cmd", 5, false)
	m.Retained = true
	m.Reply = &OutMsg{Topic: "reply", Payload: []byte("refused")}
	seqs := mustAppend(t, db, msg("note", 1, false), m)
	out, err := db.Outbox(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Topic != "reply" || string(out[0].Payload) != "refused" {
		t.Fatalf("outbox = %+v, want the one reply", out)
	}
	r, err := db.Get(seqs[1])
	if err != nil {
		t.Fatal(err)
	}
	if !r.Retained || r.Pending {
		t.Errorf("stored record = %+v, want retained and not pending", r)
	}
}

func TestApplyHandled(t *testing.T) {
	db := openTest(t, nil)
	mustAppend(t, db, msg("a", 1, true), msg("a", 1, false), msg("a", 1, true), msg("a", 1, true))
	if got := mustStats(t, db).Pending; got != 3 {
		t.Fatalf("Pending = %d, want 3", got)
	}
	// 2 was never pending, 99 does not exist: both ignored.
	markHandled(t, db, 1, 2, 99, 3)
	markHandled(t, db, 1)
	markHandled(t, db)
	if got := mustStats(t, db).Pending; got != 1 {
		t.Errorf("Pending = %d, want 1", got)
	}
	for seq, want := range map[uint64]bool{1: false, 2: false, 3: false, 4: true} {
		r, err := db.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		if r.Pending != want {
			t.Errorf("record %d Pending = %v, want %v", seq, r.Pending, want)
		}
	}
}

func TestStatsAcrossPruneAndReopen(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{RetainRecords: 5, RetainBytes: 1000}
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustStats(t, db); got != (Stats{}) {
		t.Errorf("new store Stats = %+v, want zero", got)
	}
	mustAppend(t, db, msg("ab", 8, true), msg("ab", 8, false), msg("ab", 8, false))
	mustAppend(t, db, msg("ab", 8, false), msg("ab", 8, false), msg("ab", 8, true), msg("ab", 8, false))
	want := Stats{Total: 5, Pending: 2, Bytes: 50, FirstSeq: 1, LastSeq: 7}
	if got := mustStats(t, db); got != want {
		t.Errorf("Stats after prune = %+v, want %+v", got, want)
	}
	if err := db.verify(); err != nil {
		t.Error(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, dir, opts)
	if got := mustStats(t, db); got != want {
		t.Errorf("Stats after reopen = %+v, want %+v", got, want)
	}
	markHandled(t, db, 1)
	mustAppend(t, db, msg("ab", 980, false))
	want = Stats{Total: 2, Pending: 1, Bytes: 10 + 982, FirstSeq: 6, LastSeq: 8}
	if got := mustStats(t, db); got != want {
		t.Errorf("Stats after byte prune = %+v, want %+v", got, want)
	}
}

func TestScanInChunks(t *testing.T) {
	db := openTest(t, nil)
	// More records than one chunk holds, then records bigger than a chunk's
	// byte budget.
	for range 3 {
		msgs := make([]Message, chunkRecords)
		for i := range msgs {
			msgs[i] = msg("a", 10, false)
		}
		mustAppend(t, db, msgs...)
	}
	big := make([]Message, 5)
	for i := range big {
		big[i] = Message{Topic: "big", Payload: bigPayload(chunkBytes / 2)}
	}
	mustAppend(t, db, big...)
	n := 3*chunkRecords + len(big)

	got := seqsOf(scanAll(t, db))
	if len(got) != n || got[0] != 1 || !slices.IsSorted(got) || got[n-1] != uint64(n) {
		t.Fatalf("Scan gave %d records %v…, want 1..%d", len(got), got[:min(len(got), 5)], n)
	}
	var tail []uint64
	if err := db.Tail(chunkRecords+3, func(r Record) error { tail = append(tail, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := got[n-chunkRecords-3:]; !slices.Equal(tail, want) {
		t.Errorf("Tail gave %d records, want %d", len(tail), len(want))
	}
}

func TestScanStopsAtCallerError(t *testing.T) {
	db := openTest(t, nil)
	mustAppend(t, db, msg("a", 1, false), msg("a", 1, false), msg("a", 1, false))
	stop := errors.New("enough")
	for name, run := range map[string]func(func(Record) error) error{
		"Scan": func(fn func(Record) error) error { return db.Scan(0, fn) },
		"Tail": func(fn func(Record) error) error { return db.Tail(3, fn) },
	} {
		calls := 0
		err := run(func(r Record) error {
			if calls++; r.Seq == 2 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 2 {
			t.Errorf("%s: err = %v after %d calls, want %v after 2", name, err, calls, stop)
		}
	}
}

func TestClientSuffix(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	draws := 0
	draw := func() int { draws++; return -4711 }
	for range 2 {
		got, err := db.ClientSuffix(draw)
		if err != nil || got != -4711 {
			t.Fatalf("ClientSuffix = %d, %v, want -4711", got, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir, nil)
	got, err := db.ClientSuffix(func() int { draws++; return 1 })
	if err != nil || got != -4711 {
		t.Errorf("ClientSuffix after reopen = %d, %v, want -4711", got, err)
	}
	if draws != 1 {
		t.Errorf("draw called %d times, want 1", draws)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	db, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Append([]Message{msg("a", 1, false)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := db.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close: err = %v, want ErrClosed", err)
	}
}

func TestErrLocked(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "checked open", true: "SkipCheck"}[skip], func(t *testing.T) {
			dir := t.TempDir()
			first := openAt(t, dir, nil)
			mustAppend(t, first, msg("a", 1, false))

			const timeout = 100 * time.Millisecond
			start := time.Now()
			second, err := Open(dir, &Options{LockTimeout: timeout, SkipCheck: skip})
			took := time.Since(start)
			if err == nil {
				second.Close()
				t.Fatal("second Open of a locked store succeeded")
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("err = %v, want ErrLocked", err)
			}
			for _, want := range []string{first.Path(), "another edge-agent process", "data_dir"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if took > 10*timeout {
				t.Errorf("second Open took %v with LockTimeout %v", took, timeout)
			}
		})
	}
}

func TestOpenRefusesNewerLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.update(func(t *txn) error { return putU64(t.meta, keySchema, schemaVersion+1) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "newer edge-agent") {
		if err == nil {
			db.Close()
		}
		t.Errorf("Open of a newer layout: err = %v, want one asking for a newer edge-agent", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	db := openTest(t, &Options{RetainRecords: 50})
	done := make(chan error, 3)
	go func() {
		for range 50 {
			if _, err := db.Append([]Message{msg("a", 10, false), msg("b", 10, true)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for range 50 {
			if _, err := db.Apply(Change{Handled: []uint64{1, 3, 5, 7, 9, 11}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for range 50 {
			if err := db.Tail(10, func(Record) error { return nil }); err != nil {
				done <- err
				return
			}
			if _, err := db.Stats(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 3 {
		if err := <-done; err != nil && !errors.Is(err, ErrFull) {
			t.Error(err)
		}
	}
	if mustStats(t, db).Total == 0 {
		t.Error("nothing stored")
	}
}

func TestMaxSizeReached(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{MaxSize: 1 << 20}
	db := openAt(t, dir, opts)
	var full error
	n := 0
	for range 100 {
		seqs, err := db.Append([]Message{{Topic: "t", Payload: bigPayload(64 << 10)}})
		if err != nil {
			full = err
			break
		}
		n += len(seqs)
	}
	if !errors.Is(full, berrors.ErrMaxSizeReached) {
		t.Fatalf("filling a 1 MiB store: err = %v, want ErrMaxSizeReached", full)
	}
	if s := mustStats(t, db); s.Total != n {
		t.Errorf("Total = %d after the failed Append, want %d", s.Total, n)
	}
	// Small messages may still fit in the pages the file already has; and
	// once handled records are dropped, big ones fit again.
	if _, err := db.Append([]Message{{Topic: "t", Payload: []byte("small")}}); err != nil && !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Errorf("small Append at MaxSize: %v", err)
	}
	db.opts.RetainRecords = 2
	if _, err := db.Append([]Message{{Topic: "t", Payload: bigPayload(64 << 10)}}); err != nil {
		t.Errorf("Append after retention made room: %v", err)
	}
}

// TestAppendFillsInboxPages: the inbox's keys only grow, so its leaf pages
// are filled before they split. At bbolt's default 50% fill every split left
// a half-empty page behind: twice the bytes per message (477 instead of 220
// at 150-byte payloads) and twice the pages to check at Open.
func TestAppendFillsInboxPages(t *testing.T) {
	db := openTest(t, &Options{RetainRecords: 1_000_000, RetainBytes: 1 << 30})
	payload := bytes.Repeat([]byte("x"), 150)
	batch := make([]Message, 500)
	for i := range batch {
		batch[i] = Message{ReceivedAt: time.Now(), Topic: "/sys/dev-1/thing/push/notify", Payload: payload, Pending: i%50 == 0}
	}
	for range 40 {
		if _, err := db.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	var s bolt.BucketStats
	if err := db.view(func(t2 *txn) error { s = t2.inbox.Stats(); return nil }); err != nil {
		t.Fatal(err)
	}
	fill := float64(s.LeafInuse) / float64(s.LeafAlloc)
	t.Logf("inbox: %d leaf pages, %.0f%% in use", s.LeafPageN, 100*fill)
	if fill < 0.85 {
		t.Errorf("inbox leaf pages %.0f%% in use after appends, want ≥ 85%%", 100*fill)
	}
}

// TestPruneDropsASlackBelowTheBound: once over a bound of 64 or more,
// retention drops 1/64 of it at once (so the oldest leaf is not rewritten
// at every commit), never a pending record.
func TestPruneDropsASlackBelowTheBound(t *testing.T) {
	db := openTest(t, &Options{RetainRecords: 128})
	for range 128 {
		mustAppend(t, db, msg("t", 10, false))
	}
	if got := mustStats(t, db).Total; got != 128 {
		t.Fatalf("at the bound: %d records, want 128", got)
	}
	mustAppend(t, db, msg("t", 10, false))
	if s := mustStats(t, db); s.Total != 126 || s.FirstSeq != 4 || s.LastSeq != 129 {
		t.Fatalf("over the bound by one: %+v, want 126 records, 4..129", s)
	}
	mustAppend(t, db, msg("t", 10, false), msg("t", 10, false))
	if s := mustStats(t, db); s.Total != 128 || s.FirstSeq != 4 {
		t.Fatalf("back at the bound: %+v, want 128 records from 4 (nothing pruned)", s)
	}
}

// TestPruneOfALargeBatchStopsAtTheBound: a batch that overflows a bound by
// the slack or more is pruned to the bound exactly (it already drops many
// records at once).
func TestPruneOfALargeBatchStopsAtTheBound(t *testing.T) {
	db := openTest(t, &Options{RetainRecords: 128})
	batch := make([]Message, 130)
	for i := range batch {
		batch[i] = msg("t", 10, false)
	}
	mustAppend(t, db, batch...)
	if s := mustStats(t, db); s.Total != 128 || s.FirstSeq != 3 {
		t.Fatalf("after a batch 2 over: %+v, want 128 records from 3", s)
	}
}
