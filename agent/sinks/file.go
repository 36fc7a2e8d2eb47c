package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edge-agent/edge-agent/store"
)

// fileSink appends one line per record to a file and rotates it.
type fileSink struct {
	path    string
	format  template
	maxSize int64
	keep    int

	f    *os.File // nil until needed, and after a failure
	size int64    // bytes in f
	buf  []byte
}

func newFileSink(c Config) (*fileSink, error) {
	if err := CheckFormat(c.Format); err != nil {
		return nil, err
	}
	t, _ := parseTemplate(c.Format, FormatFields)
	return &fileSink{path: c.Path, format: t, maxSize: c.MaxSize, keep: c.Keep}, nil
}

// deliver writes recs and fsyncs them, rotating first whenever the next line
// would take the file past maxSize. It returns how many lines are on disk.
// A failed write is cut off again, so no half line stays behind.
func (w *fileSink) deliver(_ context.Context, recs []store.Record) (int, error) {
	if err := w.open(); err != nil {
		return 0, err
	}
	synced := 0
	w.buf = w.buf[:0]
	for i := range recs {
		start := len(w.buf)
		w.buf = w.format.appendTo(w.buf, &recs[i], true)
		w.buf = append(w.buf, '\n')
		if before := w.size + int64(start); before > 0 && before+int64(len(w.buf)-start) > w.maxSize {
			// recs[i]'s line goes to the next file.
			if err := w.flush(w.buf[:start]); err != nil {
				return synced, err
			}
			synced = i
			if err := w.rotate(); err != nil {
				return synced, err
			}
			w.buf = append(w.buf[:0], w.buf[start:]...)
		}
	}
	if err := w.flush(w.buf); err != nil {
		return synced, err
	}
	return len(recs), nil
}

// flush appends b and fsyncs the file.
func (w *fileSink) flush(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := w.f.Write(b)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		// Cut what may have reached the file: it is written again. If even
		// that fails, reopen (and look at the size) next time.
		if w.f.Truncate(w.size) != nil {
			w.drop()
		}
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	w.size += int64(len(b))
	return nil
}

// open opens the file unless the one open is still at path (logrotate, or
// an operator, may have moved or removed it).
func (w *fileSink) open() error {
	if w.f != nil {
		cur, err1 := os.Stat(w.path)
		ours, err2 := w.f.Stat()
		if err1 == nil && err2 == nil && os.SameFile(cur, ours) {
			w.size = ours.Size() // a truncate by someone else
			return nil
		}
		w.drop()
	}
	dir := filepath.Dir(w.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	_, statErr := os.Stat(w.path)
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file's name is durable only once its directory is synced.
		if err := syncDir(dir); err != nil {
			f.Close()
			return err
		}
	}
	w.f, w.size = f, st.Size()
	return nil
}

// rotate renames path.keep-1 → path.keep, …, path → path.1 (path.keep is
// replaced), or removes path when keep is 0, and opens a new path.
func (w *fileSink) rotate() error {
	w.drop()
	var err error
	if w.keep == 0 {
		err = os.Remove(w.path)
	} else {
		for i := w.keep - 1; i >= 1; i-- {
			from := w.path + "." + strconv.Itoa(i)
			if e := os.Rename(from, w.path+"."+strconv.Itoa(i+1)); e != nil && !errors.Is(e, os.ErrNotExist) {
				return fmt.Errorf("rotate %s: %w", w.path, e)
			}
		}
		err = os.Rename(w.path, w.path+".1")
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", w.path, err)
	}
	return w.open()
}

func (w *fileSink) drop() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func (w *fileSink) close() { w.drop() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
