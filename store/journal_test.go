package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// boltSeq is the last Seq bbolt itself holds: what a commit to bbolt (not
// the journal) has written.
func (db *DB) boltSeq(t testing.TB) uint64 {
	t.Helper()
	var seq uint64
	if err := db.view(func(tx *txn) error {
		c, err := tx.inboxCounters()
		seq = c.seq
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// crashCopy copies the store's files while it is open: what the kernel
// holds of them, which is what a SIGKILL leaves (Append fdatasyncs before
// it returns, so a power cut leaves at least as much; make faults tears
// the unsynced rest). The copy opens as a store of its own.
func crashCopy(t *testing.T, db *DB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{FileName, JournalName} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(db.Path()), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func numbered(i int) Message {
	m := msg("t", 0, false)
	m.Payload = []byte(fmt.Sprintf(`{"n":%d}`, i))
	return m
}

func TestSmallCommitsGoToTheJournalAndReadBack(t *testing.T) {
	db := openTest(t, nil)
	txid := db.txid(t)
	for i := 1; i <= 10; i++ {
		if got := mustAppend(t, db, numbered(i)); got[0] != uint64(i) {
			t.Fatalf("seq %d, want %d", got[0], i)
		}
	}
	if db.txid(t) != txid || db.boltSeq(t) != 0 {
		t.Fatalf("ten one-message appends committed to bbolt (txid %d → %d); they belong in the journal", txid, db.txid(t))
	}
	if s := mustStats(t, db); s.Total != 10 || s.FirstSeq != 1 || s.LastSeq != 10 || s.Bytes != int64(10*len("t")+len(`{"n":1}`)*9+len(`{"n":10}`)) {
		t.Errorf("Stats = %+v", s)
	}
	r, err := db.Get(7)
	if err != nil || string(r.Payload) != `{"n":7}` || r.Seq != 7 || r.Topic != "t" {
		t.Errorf("Get(7) = %+v, %v", r, err)
	}
	var got []uint64
	if err := db.Scan(4, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil || !slices.Equal(got, []uint64{5, 6, 7, 8, 9, 10}) {
		t.Errorf("Scan(4) = %v, %v", got, err)
	}
	got = nil
	if err := db.Tail(3, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil || !slices.Equal(got, []uint64{8, 9, 10}) {
		t.Errorf("Tail(3) = %v, %v", got, err)
	}

	// A pending record (a command) goes to bbolt, and takes the journaled
	// ones with it, in order, in one commit.
	if got := mustAppend(t, db, msg("cmd", 3, true)); got[0] != 11 {
		t.Fatalf("command seq %d, want 11", got[0])
	}
	if db.txid(t) != txid+1 || db.boltSeq(t) != 11 {
		t.Errorf("after a command: txid %d (want %d), bbolt's last seq %d (want 11)", db.txid(t), txid+1, db.boltSeq(t))
	}
	if got := seqsOf(scanAll(t, db)); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Errorf("records = %v", got)
	}
	// Mixed reads across bbolt and the journal.
	mustAppend(t, db, numbered(12))
	got = nil
	if err := db.Tail(3, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil || !slices.Equal(got, []uint64{10, 11, 12}) {
		t.Errorf("Tail(3) across bbolt and the journal = %v, %v", got, err)
	}
}

func TestJournaledRecordsSurviveACrash(t *testing.T) {
	db := openTest(t, nil)
	var want []string
	for i := 1; i <= 50; i++ {
		mustAppend(t, db, numbered(i))
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	if db.boltSeq(t) != 0 {
		t.Fatalf("bbolt holds records; this test is about the journal")
	}
	crashed := openAt(t, crashCopy(t, db), nil)
	var got []string
	for _, r := range scanAll(t, crashed) {
		got = append(got, string(r.Payload))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the crash: %d records %v…, want the 50 acknowledged", len(got), got[:min(3, len(got))])
	}
	if seq := mustAppend(t, crashed, numbered(51)); seq[0] != 51 {
		t.Errorf("next seq after recovery = %d, want 51", seq[0])
	}
	// A clean close moves the journal into bbolt: the file alone has them.
	dir := filepath.Dir(crashed.Path())
	if err := crashed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, JournalName)); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, openAt(t, dir, nil)); s.Total != 51 || s.LastSeq != 51 {
		t.Errorf("after Close, bbolt alone holds %+v, want 51 records", s)
	}
}

func TestTornJournalGroupCostsOnlyItself(t *testing.T) {
	db := openTest(t, nil)
	for i := 1; i <= 5; i++ {
		mustAppend(t, db, numbered(i))
	}
	dir := crashCopy(t, db)
	// The fifth group (at block 4) was in flight when the power went: its
	// block holds garbage. It was never acknowledged.
	writeAt(t, filepath.Join(dir, JournalName), 4*journalBlock, garbage(600, 7))
	crashed := openAt(t, dir, nil)
	if got := seqsOf(scanAll(t, crashed)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("after a torn fifth group: %v, want 1-4", got)
	}
	if seq := mustAppend(t, crashed, numbered(5)); seq[0] != 5 {
		t.Errorf("next seq = %d, want 5 (the torn group's was never acknowledged)", seq[0])
	}
}

func TestJournalStartsOverAfterAMoveIntoBbolt(t *testing.T) {
	db := openTest(t, nil)
	for i := 1; i <= 30; i++ {
		mustAppend(t, db, numbered(i))
	}
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Groups 31 and 32 overwrite the first two blocks; blocks 2-29 still
	// hold groups 3-30 from the pass before, which bbolt has.
	mustAppend(t, db, numbered(31))
	mustAppend(t, db, numbered(32))
	if db.boltSeq(t) != 30 {
		t.Fatalf("bbolt's last seq = %d, want 30", db.boltSeq(t))
	}
	crashed := openAt(t, crashCopy(t, db), nil)
	want := make([]uint64, 32)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := seqsOf(scanAll(t, crashed)); !slices.Equal(got, want) {
		t.Fatalf("after the crash: %v, want 1-32 once each", got)
	}
}

func TestJournalOfAnotherStoreIsNotReplayed(t *testing.T) {
	old := openTest(t, nil)
	for i := 1; i <= 3; i++ {
		mustAppend(t, old, numbered(i))
	}
	dir := crashCopy(t, old)
	// The database is moved aside (a corrupt file, say) and the agent
	// starts with an empty store beside the old journal.
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, dir, nil)
	if s := mustStats(t, db); s.Total != 0 {
		t.Fatalf("a new store took in %d records of another store's journal", s.Total)
	}
	if seq := mustAppend(t, db, numbered(1)); seq[0] != 1 {
		t.Errorf("first seq = %d, want 1", seq[0])
	}
}

func TestFullStoreStaysWithinItsBoundsAndStillJournals(t *testing.T) {
	const bound = 640 // prune's slack: 10 records
	db := openTest(t, &Options{RetainRecords: bound})
	commits := db.txid(t)
	for i := 1; i <= 3*bound; i++ {
		mustAppend(t, db, numbered(i))
		if s := mustStats(t, db); s.Total > bound || s.LastSeq != uint64(i) {
			t.Fatalf("after %d appends: %+v, bound %d", i, s, bound)
		}
	}
	// Past the bound, one commit to bbolt per slack's worth of messages
	// (plus one per full journal), not one per message.
	if n := db.txid(t) - commits; n > 3*bound/10 {
		t.Errorf("%d commits to bbolt for %d messages", n, 3*bound)
	}
}

func TestReadersSeeEveryRecordWhileTheJournalMoves(t *testing.T) {
	db := openTest(t, nil)
	const n = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			m := numbered(i)
			m.Pending = i%97 == 0 // now and then a commit to bbolt
			mustAppend(t, db, m)
		}
	}()
	var after uint64
	for after < n {
		err := db.Scan(after, func(r Record) error {
			if r.Seq != after+1 {
				return fmt.Errorf("Scan after %d gave %d", after, r.Seq)
			}
			after = r.Seq
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestSettleJournalMovesOnlyWhenTheNextCommitWould(t *testing.T) {
	db := openTest(t, nil)
	m := numbered(0)
	m.Payload = make([]byte, 1000)
	mustAppend(t, db, m)
	txid := db.txid(t)
	if err := db.SettleJournal(); err != nil || db.txid(t) != txid {
		t.Fatalf("a nearly empty journal was moved (err %v)", err)
	}
	// Fill the records in memory to within one direct commit's worth of
	// tailMax: the next small commit would have to move them.
	for db.tailBytes+journalDirect <= tailMax {
		mustAppend(t, db, m)
	}
	n := db.lastSeq
	if db.boltSeq(t) != 0 {
		t.Fatalf("bbolt got records before the journal filled")
	}
	if err := db.SettleJournal(); err != nil {
		t.Fatal(err)
	}
	if db.boltSeq(t) != n || len(db.tail) != 0 {
		t.Errorf("after SettleJournal: bbolt's last seq %d, want %d; %d records still journaled", db.boltSeq(t), n, len(db.tail))
	}
	// The next small commit is a journal commit again.
	txid = db.txid(t)
	mustAppend(t, db, m)
	if db.txid(t) != txid {
		t.Errorf("the commit after settling went to bbolt")
	}
}

func TestJournalIsMadePrivate(t *testing.T) {
	dir := t.TempDir()
	db := openAt(t, dir, nil)
	mustAppend(t, db, numbered(1))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, JournalName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, dir, nil)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode after Open = %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

// FuzzReadGroups: whatever a damaged card gives back, recovery returns
// only records that decode, numbered on from last, and never panics.
func FuzzReadGroups(f *testing.F) {
	j := &journal{id: 7}
	var vals [][]byte
	for i := range 3 {
		v, _ := encodeRecord(Record{Topic: "t", Payload: []byte(fmt.Sprint(i))})
		vals = append(vals, v)
	}
	g := j.encodeGroup(11, vals)
	f.Add(g, uint64(10))
	f.Add(append(g, make([]byte, journalBlock)...), uint64(10))
	f.Fuzz(func(t *testing.T, b []byte, last uint64) {
		tail, end := readGroups(b, 7, last)
		if end < 0 || end > int64(alignBlock(len(b))) {
			t.Fatalf("end %d beyond %d bytes", end, len(b))
		}
		for i, r := range tail {
			if r.seq != last+1+uint64(i) {
				t.Fatalf("record %d numbered %d after %d", i, r.seq, last)
			}
			if _, err := r.record(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
