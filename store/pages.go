package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// bbolt v1.5.0's on-disk layout, as far as checkPages needs it
// (internal/common: page.go, meta.go, bucket.go). bbolt writes its structs
// in the machine's byte order; our targets (amd64, arm, arm64) are all
// little-endian, and NativeEndian keeps the check right elsewhere too.
const (
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elemSize         = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	metaSize         = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	noFreelist     = ^uint64(0)
	maxPageSize    = 1 << 24 // bbolt looks for the second meta page up to 16 MiB in
	minPageSize    = 1 << 10
	firstMetaBytes = 0x1000 // bbolt reads this much to find the first meta page
)

var ne = binary.NativeEndian

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// parseMeta reads a meta page's content (after the page header) and
// validates it as bbolt's Meta.Validate does.
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < metaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	if ne.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic")
	}
	if v := ne.Uint32(b[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d", v)
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if ne.Uint64(b[56:]) != h.Sum64() {
		return boltMeta{}, errors.New("meta checksum mismatch")
	}
	return boltMeta{
		pageSize: ne.Uint32(b[8:]),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
	}, nil
}

// metaSlot is one of the two meta pages as read from the file.
type metaSlot struct {
	raw    []byte // page header + meta
	meta   boltMeta
	err    error // content invalid (or unreadable)
	header bool  // header says: this page id, meta page
}

// readMetaAt reads the meta page of slot (0 or 1) at off.
func readMetaAt(r io.ReaderAt, off int64, slot uint64) metaSlot {
	s := metaSlot{raw: make([]byte, pageHeaderSize+metaSize)}
	if _, err := r.ReadAt(s.raw, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		s.err = err
		return s
	}
	s.meta, s.err = parseMeta(s.raw[pageHeaderSize:])
	s.header = ne.Uint64(s.raw) == slot && ne.Uint16(s.raw[8:]) == metaPageFlag
	return s
}

// readMetas finds the page size as bbolt's getPageSize does, reads both
// meta pages and picks the one bbolt will use: the valid one with the
// higher txid (bbolt's DB.meta).
func readMetas(r io.ReaderAt, size int64) (cur boltMeta, slots [2]metaSlot, err error) {
	slots[0] = readMetaAt(r, 0, 0)
	pageSize := int64(0)
	if slots[0].err == nil {
		pageSize = int64(slots[0].meta.pageSize)
	} else {
		// Without the first meta page, bbolt probes for the second one.
		for ps := int64(minPageSize); ps <= maxPageSize && ps < size; ps <<= 1 {
			if s := readMetaAt(r, ps, 1); s.err == nil && int64(s.meta.pageSize) == ps {
				pageSize = ps
				break
			}
		}
		if pageSize == 0 {
			return cur, slots, fmt.Errorf("no valid meta page (first: %v)", slots[0].err)
		}
	}
	if pageSize < minPageSize || pageSize > maxPageSize {
		return cur, slots, fmt.Errorf("page size %d", pageSize)
	}
	slots[1] = readMetaAt(r, pageSize, 1)
	if slots[1].err == nil && int64(slots[1].meta.pageSize) != pageSize {
		slots[1].err = fmt.Errorf("page size %d, first meta page says %d", slots[1].meta.pageSize, pageSize)
	}
	switch m0, m1 := slots[0], slots[1]; {
	case m0.err != nil && m1.err != nil:
		return cur, slots, fmt.Errorf("both meta pages invalid: %v; %v", m0.err, m1.err)
	case m0.err != nil:
		return m1.meta, slots, nil
	case m1.err != nil || m0.meta.txid >= m1.meta.txid:
		return m0.meta, slots, nil
	}
	return slots[1].meta, slots, nil
}

// currentMeta returns the meta page bbolt will use.
func currentMeta(r io.ReaderAt, size int64) (boltMeta, error) {
	m, _, err := readMetas(r, size)
	return m, err
}

// pageWrite is a repair for checkFile to write: b at offset off.
type pageWrite struct {
	off int64
	b   []byte
}

// checkPages checks that every page bbolt can reach from the current meta
// page lies inside the file, has the type and id it should, and keeps its
// elements inside itself, and that no page is reached twice (no cycles).
// bbolt trusts all of this and crashes the process on a violation (see
// checkFile); key order and the freelist are left to bbolt's Tx.Check.
//
// A meta page that is torn (a power cut while bbolt wrote it) while the
// other is good is no damage: bbolt uses the good one. But bbolt's Tx.Check
// asserts on it, so checkPages returns the repair: a copy of the good meta
// page into the torn one's place. The next commit overwrites that copy, as
// it would have overwritten the torn page.
func checkPages(r io.ReaderAt, size int64) ([]pageWrite, error) {
	m, slots, err := readMetas(r, size)
	if err != nil {
		return nil, err
	}
	ps := uint64(m.pageSize)
	switch {
	case m.pgid < 2:
		return nil, fmt.Errorf("high-water mark %d", m.pgid)
	case m.pgid > uint64(size)/ps:
		return nil, fmt.Errorf("file is truncated: %d bytes, its meta page needs %d", size, m.pgid*ps)
	case m.root < 2 || m.root >= m.pgid:
		return nil, fmt.Errorf("root page %d outside [2, %d)", m.root, m.pgid)
	}
	w := &pageWalker{r: r, pageSize: ps, hwm: m.pgid, seen: make([]uint64, (m.pgid+63)/64)}
	w.mark(0, 0)
	w.mark(1, 0)
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return nil, err
		}
	}
	if _, err := w.tree(m.root, 0, nil, nil); err != nil {
		return nil, err
	}

	var repairs []pageWrite
	for id, s := range slots {
		if s.err == nil && s.header {
			continue
		}
		b := make([]byte, pageHeaderSize+metaSize)
		if s.err == nil {
			copy(b, s.raw) // only the header is off
		} else {
			copy(b, slots[1-id].raw)
		}
		ne.PutUint64(b, uint64(id))
		ne.PutUint16(b[8:], metaPageFlag)
		ne.PutUint16(b[10:], 0)
		ne.PutUint32(b[12:], 0)
		repairs = append(repairs, pageWrite{off: int64(id) * int64(ps), b: b})
	}
	return repairs, nil
}

type pageWalker struct {
	r        io.ReaderAt
	pageSize uint64
	hwm      uint64
	seen     []uint64 // bitset of pages reached
}

// mark records pages id..id+overflow as reached; false if one already was.
func (w *pageWalker) mark(id uint64, overflow uint32) bool {
	ok := true
	for p := id; p <= id+uint64(overflow); p++ {
		if w.seen[p/64]&(1<<(p%64)) != 0 {
			ok = false
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	return ok
}

// read returns page id with its overflow pages, after checking its header.
func (w *pageWalker) read(id uint64) (page []byte, flags uint16, count int, err error) {
	if id < 2 || id >= w.hwm {
		return nil, 0, 0, fmt.Errorf("page %d: outside [2, %d)", id, w.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.r.ReadAt(hdr, int64(id*w.pageSize)); err != nil {
		return nil, 0, 0, fmt.Errorf("page %d: %w", id, err)
	}
	if got := ne.Uint64(hdr[0:]); got != id {
		return nil, 0, 0, fmt.Errorf("page %d: header says page %d", id, got)
	}
	flags, count = ne.Uint16(hdr[8:]), int(ne.Uint16(hdr[10:]))
	overflow := ne.Uint32(hdr[12:])
	if uint64(overflow) >= w.hwm-id {
		return nil, 0, 0, fmt.Errorf("page %d: %d overflow pages run past the high-water mark %d", id, overflow, w.hwm)
	}
	if !w.mark(id, overflow) {
		return nil, 0, 0, fmt.Errorf("page %d: reached twice", id)
	}
	page = make([]byte, (uint64(overflow)+1)*w.pageSize)
	if _, err := w.r.ReadAt(page, int64(id*w.pageSize)); err != nil {
		return nil, 0, 0, fmt.Errorf("page %d: %w", id, err)
	}
	return page, flags, count, nil
}

func (w *pageWalker) freelist(id uint64) error {
	page, flags, count, err := w.read(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != freelistPageFlag {
		return fmt.Errorf("freelist page %d: type %#x", id, flags)
	}
	n, start := uint64(count), uint64(pageHeaderSize)
	if count == 0xFFFF { // the real count is the first element
		if len(page) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d: short", id)
		}
		n, start = ne.Uint64(page[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(page))-start)/8 {
		return fmt.Errorf("freelist page %d: %d ids do not fit", id, n)
	}
	return nil
}

// tree checks the B+tree rooted at page id, and every bucket stored in it.
// Keys must lie in [minKey, maxKey) and ascend, as bbolt's Tx.Check wants:
// bbolt's tree walk at open reports an order error from a goroutine that
// then goes on reading the map, so it must find none (see checkFile). It
// returns the subtree's largest key, as bbolt's check does.
func (w *pageWalker) tree(id uint64, depth int, minKey, maxKey []byte) ([]byte, error) {
	page, flags, count, err := w.read(id)
	if err != nil {
		return nil, err
	}
	switch flags {
	case branchPageFlag:
		if count == 0 {
			// bbolt's cursor reads element 0 of a branch page regardless.
			return nil, fmt.Errorf("page %d: empty branch page", id)
		}
		if err := elementsFit(page, count); err != nil {
			return nil, fmt.Errorf("page %d: %w", id, err)
		}
		keys := make([][]byte, count)
		for i := range count {
			e := pageHeaderSize + i*elemSize
			if keys[i], err = elemBytes(page, e, ne.Uint32(page[e:]), ne.Uint32(page[e+4:]), 0); err != nil {
				return nil, fmt.Errorf("page %d element %d: %w", id, i, err)
			}
		}
		runningMin := minKey
		var maxIn []byte
		for i, k := range keys {
			if err := keyOrder(k, i, runningMin, maxKey); err != nil {
				return nil, fmt.Errorf("page %d element %d: %w", id, i, err)
			}
			next := maxKey
			if i < count-1 {
				next = keys[i+1]
			}
			e := pageHeaderSize + i*elemSize
			if maxIn, err = w.tree(ne.Uint64(page[e+8:]), depth, k, next); err != nil {
				return nil, err
			}
			runningMin = maxIn
		}
		return maxIn, nil
	case leafPageFlag:
		last, err := w.leaf(page, count, depth, true, minKey, maxKey)
		if err != nil {
			return nil, fmt.Errorf("page %d: %w", id, err)
		}
		return last, nil
	}
	return nil, fmt.Errorf("page %d: type %#x where a branch or leaf page belongs", id, flags)
}

// keyOrder is bbolt's verifyKeyOrder: key i of a page, after prev and
// below maxKey.
func keyOrder(key []byte, i int, prev, maxKey []byte) error {
	if i == 0 && prev != nil && bytes.Compare(prev, key) > 0 {
		return fmt.Errorf("key %x below its parent's %x", key, prev)
	}
	if i > 0 && bytes.Compare(prev, key) >= 0 {
		return fmt.Errorf("key %x not above the previous key %x", key, prev)
	}
	if maxKey != nil && bytes.Compare(key, maxKey) >= 0 {
		return fmt.Errorf("key %x not below the next parent key %x", key, maxKey)
	}
	return nil
}

// leaf checks a leaf page (a real one, or an inline bucket's, whose key
// order bbolt does not check) and the buckets it holds, and returns its
// last key.
func (w *pageWalker) leaf(page []byte, count, depth int, order bool, minKey, maxKey []byte) ([]byte, error) {
	if err := elementsFit(page, count); err != nil {
		return nil, err
	}
	var last []byte
	runningMin := minKey
	for i := range count {
		e := pageHeaderSize + i*elemSize
		ksize, vsize := ne.Uint32(page[e+8:]), ne.Uint32(page[e+12:])
		kv, err := elemBytes(page, e, ne.Uint32(page[e+4:]), ksize, vsize)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		last = kv[:ksize]
		if order {
			if err := keyOrder(last, i, runningMin, maxKey); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			runningMin = last
		}
		if ne.Uint32(page[e:])&bucketLeafFlag == 0 {
			continue
		}
		if depth >= 64 {
			return nil, errors.New("buckets nested too deep")
		}
		v := kv[ksize:]
		if len(v) < bucketHeaderSize {
			return nil, fmt.Errorf("element %d: bucket header of %d bytes", i, len(v))
		}
		if root := ne.Uint64(v); root != 0 {
			if _, err := w.tree(root, depth+1, nil, nil); err != nil {
				return nil, err
			}
			continue
		}
		// An inline bucket: a leaf page inside the value.
		inline := v[bucketHeaderSize:]
		if len(inline) < pageHeaderSize {
			return nil, fmt.Errorf("element %d: inline bucket of %d bytes", i, len(inline))
		}
		if f := ne.Uint16(inline[8:]); f != leafPageFlag {
			return nil, fmt.Errorf("element %d: inline bucket page type %#x", i, f)
		}
		if _, err := w.leaf(inline, int(ne.Uint16(inline[10:])), depth+1, false, nil, nil); err != nil {
			return nil, fmt.Errorf("element %d: inline bucket: %w", i, err)
		}
	}
	return last, nil
}

func elementsFit(page []byte, count int) error {
	if pageHeaderSize+count*elemSize > len(page) {
		return fmt.Errorf("%d elements do not fit in %d bytes", count, len(page))
	}
	return nil
}

// elemBytes returns the key (and value) of the element at offset e; bbolt
// finds them pos bytes after the element itself.
func elemBytes(page []byte, e int, pos, ksize, vsize uint32) ([]byte, error) {
	start := uint64(e) + uint64(pos)
	end := start + uint64(ksize) + uint64(vsize)
	if end > uint64(len(page)) {
		return nil, fmt.Errorf("key/value [%d, %d) outside the page's %d bytes", start, end, len(page))
	}
	return page[start:end], nil
}
