package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The journal sits in front of bbolt for small commits of plain
// notifications. A bbolt commit rewrites a copy-on-write path of pages
// (the tail leaf, its branches, the root bucket page, the meta page: 16-21
// KiB) however little it adds, and on a gateway that commits once per
// message that is what wears an SD card out (docs/flash.md). A journal
// commit writes its records into the next 4 KiB blocks of a preallocated,
// zero-filled file and fdatasyncs it: an overwrite of allocated blocks,
// which reaches the device as those blocks and nothing else. The records
// then move into bbolt together, in one commit, when the journal or the
// memory holding them fills, or with the next commit that must go to bbolt
// anyway (a command, a large batch, Close).
//
// Layout: the file is journalSize bytes. Each commit is a group starting
// at a multiple of journalBlock, so a torn write can only touch the group
// being written, never one already acknowledged:
//
//	magic    4 bytes  "EAJ1"
//	crc      4 bytes  CRC-32C of everything after it, header and body
//	store    8 bytes  the store's journal id (meta key journal.id)
//	first    8 bytes  the Seq of the group's first record
//	count    4 bytes  records in the group
//	bodyLen  4 bytes
//	body     count × (uvarint length, encodeRecord bytes)
//
// Integers are little-endian. Groups are written from offset 0 after
// every move into bbolt; recovery (Open) reads groups from offset 0 while
// each is intact, belongs to this store and starts at the Seq after the
// last one bbolt or the previous group holds. A group left from an earlier
// pass holds Seqs bbolt already has, so it ends the walk; so does a torn
// group, which was never acknowledged.
const (
	// JournalName is the journal's file name inside the data directory,
	// beside FileName. Copy both to copy a store.
	JournalName = "edge-agent.journal"

	journalSize   = 1 << 20
	journalBlock  = 4096
	journalHeader = 32
	journalMagic  = "EAJ1"

	// journalDirect: a commit whose records take this many bytes or more
	// goes to bbolt directly. Its pages are then mostly the records
	// themselves, and journaling them would write them twice.
	journalDirect = 12 << 10
	// tailMax bounds the journaled records held in memory (and what the
	// move into bbolt writes at once, which a command waits for).
	tailMax = 64 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// tailRec is a journaled record not yet in bbolt.
type tailRec struct {
	seq  uint64
	val  []byte // encodeRecord's bytes
	size int64  // topic+payload, as counted against RetainBytes
}

// journal is the file and where the next group goes. Only Append (under
// DB.wmu) and Open touch it.
type journal struct {
	f   *os.File
	id  uint64 // the store's journal id, in every group's header
	off int64
}

// openJournal opens (creating, zero-filled, if missing or short) the
// journal beside the store and returns it with the records it holds after
// Seq last, oldest first. It writes only when the file is missing or
// short; an error leaves the store without a journal, not unusable.
func openJournal(dir string, id, last uint64) (*journal, []tailRec, error) {
	path := filepath.Join(dir, JournalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	// Like the database: private, whatever a copy or a restore left it as.
	if st, err := f.Stat(); err == nil {
		if err := makePrivate(path, st.Mode()); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	j := &journal{f: f, id: id}
	buf := make([]byte, journalSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, err
	}
	tail, end := readGroups(buf[:n], id, last)
	j.off = end
	if n < journalSize {
		// New, or cut short: fill with zeros, so that every later write is
		// an overwrite of allocated blocks (no journal commit of ext4's own).
		if _, err := f.WriteAt(make([]byte, journalSize-n), int64(n)); err != nil {
			f.Close()
			return nil, nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			f.Close()
			return nil, nil, err
		}
		if n == 0 {
			if err := syncDir(dir); err != nil {
				f.Close()
				return nil, nil, err
			}
		}
	}
	return j, tail, nil
}

// readGroups walks the groups in b (see the layout above) and returns the
// records that follow Seq last, and the offset after the last group taken.
func readGroups(b []byte, id, last uint64) ([]tailRec, int64) {
	var tail []tailRec
	off := 0
	for off+journalHeader <= len(b) {
		h := b[off : off+journalHeader]
		bodyLen := int(binary.LittleEndian.Uint32(h[28:]))
		if string(h[:4]) != journalMagic || bodyLen > len(b)-off-journalHeader {
			break
		}
		g := b[off+8 : off+journalHeader+bodyLen]
		if crc32.Checksum(g, crcTable) != binary.LittleEndian.Uint32(h[4:]) ||
			binary.LittleEndian.Uint64(h[8:]) != id || binary.LittleEndian.Uint64(h[16:]) != last+1 {
			break
		}
		count := int(binary.LittleEndian.Uint32(h[24:]))
		if count > bodyLen {
			break
		}
		recs, ok := parseGroup(b[off+journalHeader:off+journalHeader+bodyLen], last+1, count)
		if !ok {
			break
		}
		tail = append(tail, recs...)
		last += uint64(len(recs))
		off = alignBlock(off + journalHeader + bodyLen)
	}
	if len(tail) == 0 {
		return nil, 0
	}
	return tail, int64(off)
}

// parseGroup decodes a group's body of count records numbered from first.
// The CRC has passed, so a failure here is a bug's group, not a torn one;
// it is treated the same: the walk ends before it.
func parseGroup(body []byte, first uint64, count int) ([]tailRec, bool) {
	recs := make([]tailRec, 0, count)
	for i := range count {
		n, k := binary.Uvarint(body)
		if k <= 0 || n > uint64(len(body)-k) {
			return nil, false
		}
		val := bytes.Clone(body[k : k+int(n)])
		p, err := parseRecord(val)
		if err != nil {
			return nil, false
		}
		recs = append(recs, tailRec{seq: first + uint64(i), val: val, size: p.size()})
		body = body[k+int(n):]
	}
	return recs, len(body) == 0
}

func alignBlock(n int) int { return (n + journalBlock - 1) &^ (journalBlock - 1) }

// encodeGroup returns the group for vals numbered from first.
func (j *journal) encodeGroup(first uint64, vals [][]byte) []byte {
	size := journalHeader
	for _, v := range vals {
		size += binary.MaxVarintLen32 + len(v)
	}
	g := make([]byte, journalHeader, size)
	for _, v := range vals {
		g = binary.AppendUvarint(g, uint64(len(v)))
		g = append(g, v...)
	}
	copy(g, journalMagic)
	binary.LittleEndian.PutUint64(g[8:], j.id)
	binary.LittleEndian.PutUint64(g[16:], first)
	binary.LittleEndian.PutUint32(g[24:], uint32(len(vals)))
	binary.LittleEndian.PutUint32(g[28:], uint32(len(g)-journalHeader))
	binary.LittleEndian.PutUint32(g[4:], crc32.Checksum(g[8:], crcTable))
	return g
}

// fits reports whether a group of n bytes fits after the last one.
func (j *journal) fits(n int) bool { return j.off+int64(n) <= journalSize }

// write writes group g at the next block and fdatasyncs it. When it returns
// nil the group is durable; on an error the next write goes to the same
// place (the group was never acknowledged).
func (j *journal) write(g []byte) error {
	if _, err := j.f.WriteAt(g, j.off); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return err
	}
	j.off = int64(alignBlock(int(j.off) + len(g)))
	return nil
}

func (j *journal) close() error {
	if j == nil {
		return nil
	}
	return j.f.Close()
}

// checkpoint moves the journaled records into bbolt.
func (db *DB) checkpoint() error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if len(db.tail) == 0 {
		return nil
	}
	_, err := db.commitDirect(nil, nil, 0)
	return err
}

// SettleJournal moves the journal into bbolt now if the next small commit
// would have to (its records or the file are nearly full), and does
// nothing otherwise. A caller with time on its hands calls it, so that
// the move does not fall on a commit someone waits for: the agent's
// writer does at the start of its commit window. An error leaves the
// records in the journal, as they were.
func (db *DB) SettleJournal() error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if len(db.tail) == 0 || (db.tailBytes+journalDirect <= tailMax && db.jr.fits(journalHeader+journalDirect+journalBlock)) {
		return nil
	}
	_, err := db.commitDirect(nil, nil, 0)
	return err
}

// tailSnapshot returns the journaled records not yet in bbolt. The slice is
// the reader's: Append only appends to db.tail or replaces it, never changes
// an element. Readers take it before they look in bbolt, so a move into
// bbolt in between shows a record twice (skip Seqs bbolt has), never not at
// all.
func (db *DB) tailSnapshot() []tailRec {
	db.tmu.RLock()
	defer db.tmu.RUnlock()
	return db.tail
}

// tailAfter returns the records of tail with Seq > seq.
func tailAfter(tail []tailRec, seq uint64) []tailRec {
	for i, r := range tail {
		if r.seq > seq {
			return tail[i:]
		}
	}
	return nil
}

func (r tailRec) record() (Record, error) {
	rec, err := decodeRecord(r.val)
	if err != nil {
		return Record{}, fmt.Errorf("%w: journaled record %d: %w", ErrCorrupt, r.seq, err)
	}
	rec.Seq = r.seq
	return rec, nil
}

// journalID returns the store's journal id, drawing and storing one the
// first time. A store that cannot store one (a full disk) runs without a
// journal until it can.
func (db *DB) journalID(draw func() uint64) (uint64, error) {
	var id uint64
	if err := db.view(func(t *txn) error { id = getU64(t.meta, keyJournalID); return nil }); err != nil || id != 0 {
		return id, err
	}
	id = draw()
	return id, db.update(func(t *txn) error { return putU64(t.meta, keyJournalID, id) })
}
