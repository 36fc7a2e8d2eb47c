package store

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// closedStore makes a store with a few hundred records in several commits
// (so the inbox has branch and leaf pages), closes it and returns its dir,
// file path and current meta page.
func closedStore(t *testing.T) (dir, path string, m boltMeta) {
	t.Helper()
	dir = t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		msgs := make([]Message, 100)
		for i := range msgs {
			msgs[i] = msg("edge/gw1/notify", 100, i%7 == 0)
		}
		mustAppend(t, db, msgs...)
	}
	path = db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if m, err = currentMeta(f, st.Size()); err != nil {
		t.Fatal(err)
	}
	return dir, path, m
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func garbage(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// branchPage builds a branch page with id, pointing at children.
func branchPage(pageSize int, id uint64, children ...uint64) []byte {
	p := make([]byte, pageSize)
	ne.PutUint64(p[0:], id)
	ne.PutUint16(p[8:], branchPageFlag)
	ne.PutUint16(p[10:], uint16(len(children)))
	keys := pageHeaderSize + len(children)*elemSize
	for i, c := range children {
		e := pageHeaderSize + i*elemSize
		ne.PutUint32(p[e:], uint32(keys+i-e)) // pos: one-byte key i, after the elements
		ne.PutUint32(p[e+4:], 1)
		ne.PutUint64(p[e+8:], c)
		p[keys+i] = byte(i)
	}
	return p
}

// inboxLeaf finds a leaf page of the inbox: elements with 8-byte keys and
// non-empty values.
func inboxLeaf(t *testing.T, path string, m boltMeta) (off int64, page []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(m.pageSize)
	for id := 2; id < int(m.pgid); id++ {
		p := data[id*ps : (id+1)*ps]
		if ne.Uint64(p) != uint64(id) || ne.Uint16(p[8:]) != leafPageFlag || ne.Uint16(p[10:]) < 2 {
			continue
		}
		e := p[pageHeaderSize:]
		if ne.Uint32(e) == 0 && ne.Uint32(e[8:]) == 8 && ne.Uint32(e[12:]) > 8 {
			return int64(id * ps), p
		}
	}
	t.Fatal("no inbox leaf page found")
	return 0, nil
}

func TestOpenCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string, m boltMeta)
	}{{
		name: "truncated to half of the pages in use",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			// Half the high-water mark, not of the file: the file is
			// preallocated beyond the mark (prealloc_linux.go).
			if err := os.Truncate(path, int64(m.pgid)*int64(m.pageSize)/2); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "truncated after the first meta page",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "both meta pages zeroed",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			writeAt(t, path, 0, make([]byte, 2*m.pageSize))
		},
	}, {
		name: "not a bbolt file",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			if err := os.WriteFile(path, []byte(strings.Repeat("edge-agent config\n", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "garbage over the root page",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			writeAt(t, path, int64(m.root)*int64(m.pageSize), garbage(int(m.pageSize), 1))
		},
	}, {
		name: "garbage over every page after the meta pages",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			n := int(m.pgid-2) * int(m.pageSize)
			writeAt(t, path, 2*int64(m.pageSize), garbage(n, 2))
		},
	}, {
		name: "a page reference far past the end of the file",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			// Without checkPages, bbolt faults on this (SIGSEGV) and the
			// process dies.
			writeAt(t, path, int64(m.root)*int64(m.pageSize), branchPage(int(m.pageSize), m.root, 1<<40))
		},
	}, {
		name: "a page reference just past the file's end",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			// Inside bbolt's mmap but past EOF: a SIGBUS without checkPages.
			writeAt(t, path, int64(m.root)*int64(m.pageSize), branchPage(int(m.pageSize), m.root, m.pgid+1))
		},
	}, {
		name: "a page that refers to itself",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			writeAt(t, path, int64(m.root)*int64(m.pageSize), branchPage(int(m.pageSize), m.root, m.root))
		},
	}, {
		name: "a leaf element pointing outside its page",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			off, _ := inboxLeaf(t, path, m)
			writeAt(t, path, off+pageHeaderSize+4, binary.NativeEndian.AppendUint32(nil, 1<<20))
		},
	}, {
		name: "inbox keys out of order",
		corrupt: func(t *testing.T, path string, m boltMeta) {
			// Every reference still in bounds: only the key-order check
			// sees it (bbolt's walk at open would panic on it from a
			// goroutine that keeps reading the map).
			off, p := inboxLeaf(t, path, m)
			e := p[pageHeaderSize:]
			key := int64(pageHeaderSize) + int64(ne.Uint32(e[4:]))
			writeAt(t, path, off+key, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, path, m := closedStore(t)
			tt.corrupt(t, path, m)
			db, err := Open(dir, nil)
			if err == nil {
				db.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{path, "move it aside", "redelivers"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			// The check leaves no lock behind: once the file is moved
			// aside, the same process starts with an empty store.
			if err := os.Rename(path, path+".corrupt"); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, dir, &Options{LockTimeout: 100 * 1e6})
			if s := mustStats(t, db); s.Total != 0 {
				t.Errorf("fresh store has %d records", s.Total)
			}
		})
	}
}

func TestOpenSurvivesLostLatestMeta(t *testing.T) {
	// A torn write of the newest meta page: bbolt falls back to the
	// previous commit, and so must the check.
	dir, path, m := closedStore(t)
	latest := int64(m.txid%2) * int64(m.pageSize)
	writeAt(t, path, latest, garbage(int(m.pageSize), 3))

	db := openAt(t, dir, nil)
	if s := mustStats(t, db); s.Total != 200 || s.LastSeq != 200 {
		t.Errorf("after losing the latest meta page, Stats = %+v, want the 200 records of the commit before", s)
	}
	if got := mustAppend(t, db, msg("a", 1, false)); got[0] != 201 {
		t.Errorf("next seq = %d, want 201", got[0])
	}
}

func TestCorruptRecord(t *testing.T) {
	db := openTest(t, nil)
	mustAppend(t, db, msg("a", 1, false), msg("a", 1, false))
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Scribble over record 2 through bbolt, so the file stays sound.
	if err := db.update(func(t *txn) error { return t.inbox.Put(seqKey(2), []byte{9, 9, 9}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(2); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a malformed record: err = %v, want ErrCorrupt", err)
	}
	var seen []uint64
	err := db.Scan(0, func(r Record) error { seen = append(seen, r.Seq); return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Scan over a malformed record: err = %v, want ErrCorrupt", err)
	}
	// Put it back as it was, so that the cleanup check passes.
	good, _ := encodeRecord(Record{ReceivedAt: msg("a", 1, false).ReceivedAt, Topic: "a", Payload: []byte{0}})
	if err := db.update(func(t *txn) error { return t.inbox.Put(seqKey(2), good) }); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPagesOnGoodFiles(t *testing.T) {
	_, path, _ := closedStore(t)
	for _, p := range []string{path, filepath.Join(t.TempDir(), "empty-store")} {
		if p != path {
			db, err := Open(filepath.Dir(p), nil)
			if err != nil {
				t.Fatal(err)
			}
			p = db.Path()
			db.Close()
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if _, err := checkPages(f, st.Size()); err != nil {
			t.Errorf("checkPages(%s): %v", p, err)
		}
		f.Close()
	}
}

// FuzzOpen patches bytes into a good store file: Open must then succeed or
// fail with an error, never crash the process (which the fuzzer sees).
func FuzzOpen(f *testing.F) {
	base := f.TempDir()
	db, err := Open(base, nil)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		msgs := make([]Message, 60)
		for j := range msgs {
			msgs[j] = msg("edge/gw1/notify", 50+i*40, j%5 == 0)
		}
		if _, err := db.Append(msgs); err != nil {
			f.Fatal(err)
		}
	}
	db.Close()
	image, err := os.ReadFile(filepath.Join(base, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{0})
	f.Add(uint32(4096*3), []byte{2, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add(uint32(4096*4+16), []byte{0xff, 0xff})
	f.Add(uint32(len(image)/2), garbage(64, 4))
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := append([]byte(nil), image...)
		if int(off) < len(b) {
			copy(b[off:], patch)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir, &Options{LockTimeout: 10 * 1e6})
		if err != nil {
			return
		}
		// Whatever opened must also read without crashing.
		_, _ = db.Stats()
		_ = db.Scan(0, func(Record) error { return nil })
		_, _ = db.Append([]Message{msg("t", 10, false)})
		db.Close()
	})
}
