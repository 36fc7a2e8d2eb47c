package metrics

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with b so that a reader sees the old text or the
// new one, never a part: b goes to a temporary file in the same directory
// (the same file system), which is then renamed over path.
//
// It does not fsync. A rewrite every interval is a few KB of page cache
// that the file system writes back on its own schedule (ext4: every 5 s,
// with the journal commit it does anyway); an fsync per rewrite would add
// a journal commit and a flash erase-block update each time, for numbers
// that the next rewrite replaces. After a power cut the file may be empty
// or old until the next rewrite. On a tmpfs (/run) it costs no flash at
// all.
func WriteFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		// node_exporter usually runs as its own user: the file is
		// world-readable, as counters hold nothing secret.
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// RSS is the process's resident set size in bytes (the second field of
// /proc/self/statm, in pages), 0 where that cannot be read.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var n int64
	field := 0
	for _, c := range b {
		switch {
		case c == ' ':
			if field++; field > 1 {
				return n * int64(os.Getpagesize())
			}
		case field == 1 && c >= '0' && c <= '9':
			n = n*10 + int64(c-'0')
		}
	}
	return 0
}
