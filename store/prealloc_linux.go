package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// preallocation keeps real blocks under the file ahead of bbolt's
// high-water mark. bbolt grows its file with ftruncate, which leaves a
// hole; the commit that first writes a page there makes ext4 allocate a
// block, and its fdatasync must then commit the allocation (bitmaps,
// extent tree, inode size) through the journal as well: several 4 KiB
// journal blocks beside the page itself, and bbolt's own truncate+fsync on
// growth. Zeros written ahead, once, make later commits plain overwrites
// of allocated blocks, whose fdatasync writes the data pages and nothing
// else (docs/flash.md).
//
// It runs inside write transactions only (bbolt serialises them), before
// the transaction's own pages are written, and it writes only at or above
// the high-water mark: pages no transaction refers to.
type preallocation struct {
	f      *os.File
	filled int64 // bytes from 0 known to have blocks under them
	max    int64 // never beyond Options.MaxSize
}

// Preallocation steps: when fewer than preallocLow bytes of allocated
// space are left above the high-water mark, preallocStep more are zeroed.
const (
	preallocStep = 1 << 20
	preallocLow  = 256 << 10
)

// preallocMaxGrow: a transaction adding this many bytes or more does not
// preallocate. A journal commit is about 12-16 KiB; a commit that grows
// the file by more than that saves less than its zeros cost.
const preallocMaxGrow = 16 << 10

// openPreallocation opens path for the zero fills; hwm is the high-water
// mark in bytes. Everything below the first hole at or above it has
// blocks (bbolt wrote every page below the mark).
func openPreallocation(path string, hwm, maxSize int64) (*preallocation, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	hole, err := unix.Seek(int(f.Fd()), hwm, unix.SEEK_HOLE)
	if err != nil {
		// No SEEK_HOLE (an old or odd file system), or hwm at EOF (ENXIO):
		// fill from the mark.
		hole = hwm
	}
	return &preallocation{f: f, filled: hole, max: maxSize}, nil
}

// ahead zeroes the next step when the high-water mark hwm comes near the
// end of the allocated space. A failure (a full disk) is left to the
// commit to meet: the file stays as it was, or longer by zeros nobody
// reads.
func (p *preallocation) ahead(hwm int64) {
	if p == nil || hwm+preallocLow <= p.filled || p.filled >= p.max {
		return
	}
	from := max(p.filled, hwm)
	to := min(from+preallocStep, p.max)
	zero := make([]byte, 64<<10)
	for off := from; off < to; {
		n, err := p.f.WriteAt(zero[:min(int64(len(zero)), to-off)], off)
		off += int64(n)
		if err != nil {
			p.filled = max(p.filled, off)
			return
		}
	}
	p.filled = to
}

func (p *preallocation) close() error {
	if p == nil {
		return nil
	}
	return p.f.Close()
}
