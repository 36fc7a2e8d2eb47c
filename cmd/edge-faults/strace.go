package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/edge-agent/edge-agent/store"
)

// Kills inside the commit path. strace runs the agent and injects SIGKILL
// at the entry of its Nth pwrite64 or fdatasync (counted per thread). The
// store writes two files with these calls, each synced on its own:
//
//   - the journal (store.JournalName): a small commit of plain
//     notifications is one group, pwrite64 at a 4 KiB boundary, then
//     fdatasync of the journal;
//   - the bbolt database (store.FileName): a commit writes its data pages
//     (pwrite64), fdatasync, the meta page (pwrite64 at page 0 or 1),
//     fdatasync (docs/dependencies.md#bbolt-commit-fsyncs); the zeros the
//     store writes ahead of bbolt's high-water mark go to the same file
//     through another descriptor.
//
// The killed call is never executed. strace's -y names each call's file,
// so the trace tells where the kill landed and which writes of each file
// were not yet synced: an fdatasync of the journal makes none of the
// database's writes durable, nor the reverse.
//
// A SIGKILL keeps what reached the page cache, a power cut may not: after
// some kills the suite also tears, in each file, every write since that
// file's last completed sync, and the write the kill interrupted (garbage
// in its first and last 512-byte sector), which is the worst a power cut at
// that instant can leave. bbolt never writes a page the last synced meta
// page refers to, and a journal group that is torn was never acknowledged
// (its fdatasync had not returned) and ends the journal's replay; so a torn
// unsynced write must cost at most the commit in flight.

// pageSize is bbolt's page size on this machine (the OS page size); meta
// pages are pages 0 and 1.
var pageSize = int64(os.Getpagesize())

// The phases a kill inside the commit path lands in, in the order the
// power scenario prints them.
var killPhases = []string{"journal write", "journal fsync", "data write", "data fsync", "meta write", "meta fsync"}

// commitKill is where an injected kill landed.
type commitKill struct {
	landed bool   // the injection fired (else a plain SIGKILL was needed)
	phase  string // one of killPhases; "other" when not landed or in another file
	file   string // the file of the killed call, as strace printed it
	// unsynced are, per file (the path strace printed, or "fd N" for a
	// line without -y), the completed writes since that file's last
	// completed sync.
	unsynced map[string][]write
	// interrupted are the writes the kill ended, per file: the injected
	// one (never executed) and any in flight in another thread.
	interrupted map[string][]write
}

type write struct{ off, n int64 }

// powerCut is what a power cut at the kill's instant may tear, per file:
// the unsynced writes, and the interrupted ones, which a power cut an
// instant later finds begun.
func (k commitKill) powerCut() map[string][]write {
	m := map[string][]write{}
	for f, ws := range k.unsynced {
		m[f] = append(m[f], ws...)
	}
	for f, ws := range k.interrupted {
		m[f] = append(m[f], ws...)
	}
	return m
}

// straceArgs wraps the agent: SIGKILL at the when-th call of syscall, every
// call naming its file (-y).
func straceArgs(traceFile, syscall string, when int) []string {
	return []string{"strace", "-f", "-qq", "-y", "-s", "0", "-o", traceFile,
		"-e", "trace=pwrite64,fdatasync,fsync",
		"-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", syscall, when)}
}

// A call's descriptor is `5` or, with -y, `5</path/to/file>` (strace escapes
// a '>' in the path).
const fdArg = `(\d+)(?:<([^>]*)>)?`

var (
	reDone       = regexp.MustCompile(`^(\d+) +(pwrite64|fdatasync|fsync)\(` + fdArg + `(?:, ""\.\.\., (\d+), (\d+))?\) += (-?\d+|\?)`)
	reUnfinished = regexp.MustCompile(`^(\d+) +(pwrite64|fdatasync|fsync)\(` + fdArg + `(?:, ""\.\.\., (\d+), (\d+))? <unfinished \.\.\.>`)
	reResumed    = regexp.MustCompile(`^(\d+) +<\.\.\. (pwrite64|fdatasync|fsync) resumed>.*\) += (\S+)`)
	reKilled     = regexp.MustCompile(`^(\d+) +\+\+\+ killed by SIGKILL`)
)

// traceCall is one system call in the trace.
type traceCall struct {
	name   string
	file   string // the path with -y, else "fd N"
	off, n int64
}

func newTraceCall(m []string) traceCall {
	c := traceCall{name: m[2], file: m[4]}
	if c.file == "" {
		c.file = "fd " + m[3]
	}
	if c.name == "pwrite64" {
		c.n, _ = strconv.ParseInt(m[5], 10, 64)
		c.off, _ = strconv.ParseInt(m[6], 10, 64)
	}
	return c
}

// isJournal reports whether a traced file is the store's journal.
func isJournal(file string) bool { return filepath.Base(file) == store.JournalName }

// parseTrace reads an strace log written with straceArgs: per file, the
// completed writes since its last completed sync; and the call the kill
// injected at syscall interrupted ("" for any).
func parseTrace(path, syscall string) (commitKill, error) {
	f, err := os.Open(path)
	if err != nil {
		return commitKill{}, err
	}
	defer f.Close()
	inflight := map[string]traceCall{} // by thread id
	k := commitKill{unsynced: map[string][]write{}, interrupted: map[string][]write{}}
	// killed: the calls a SIGKILL ended (the injected one, and any other
	// thread's call in flight at that instant), in trace order.
	var killed []traceCall
	complete := func(c traceCall) {
		switch c.name {
		case "pwrite64":
			k.unsynced[c.file] = append(k.unsynced[c.file], write{c.off, c.n})
		default: // fdatasync, fsync: that file's writes are durable
			delete(k.unsynced, c.file)
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reDone.FindStringSubmatch(line); m != nil {
			c := newTraceCall(m)
			if m[7] == "?" {
				// Killed on entry, in one line: never executed.
				killed = append(killed, c)
				continue
			}
			if ret, _ := strconv.ParseInt(m[7], 10, 64); ret >= 0 {
				complete(c)
			}
			continue
		}
		if m := reUnfinished.FindStringSubmatch(line); m != nil {
			inflight[m[1]] = newTraceCall(m)
			continue
		}
		if m := reResumed.FindStringSubmatch(line); m != nil {
			c, ok := inflight[m[1]]
			delete(inflight, m[1])
			if !ok {
				continue
			}
			if m[3] == "?" {
				killed = append(killed, c)
				continue
			}
			if ret, _ := strconv.ParseInt(m[3], 10, 64); ret >= 0 {
				complete(c)
			}
			continue
		}
		if m := reKilled.FindStringSubmatch(line); m != nil {
			// A thread killed in a call whose end strace never printed.
			if c, ok := inflight[m[1]]; ok {
				delete(inflight, m[1])
				killed = append(killed, c)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return k, err
	}
	if len(killed) == 0 {
		k.phase = "other"
		return k, nil
	}
	// The phase is the injected call's: the first killed call of that
	// system call; the others were in flight in other threads.
	first := killed[0]
	for _, c := range killed {
		if c.name == syscall {
			first = c
			break
		}
	}
	k.landed, k.file = true, first.file
	k.phase = phaseOf(first, k.unsynced[first.file])
	for _, c := range killed {
		if c.name == "pwrite64" {
			k.interrupted[c.file] = append(k.interrupted[c.file], write{c.off, c.n})
		}
	}
	return k, nil
}

// phaseOf names where a kill in call c landed; unsynced are c's file's
// completed writes not yet synced when it did. A call on a descriptor
// strace did not name (a trace without -y) is taken for the database's.
func phaseOf(c traceCall, unsynced []write) string {
	meta := func(off int64) bool { return off < 2*pageSize }
	switch {
	case isJournal(c.file) && c.name == "pwrite64":
		return "journal write"
	case isJournal(c.file):
		return "journal fsync"
	case filepath.Base(c.file) != store.FileName && filepath.IsAbs(c.file):
		return "other"
	case c.name == "pwrite64" && meta(c.off):
		return "meta write"
	case c.name == "pwrite64":
		return "data write"
	case len(unsynced) > 0 && meta(unsynced[len(unsynced)-1].off):
		return "meta fsync"
	default:
		return "data fsync"
	}
}

// tearFiles tears each file's unsynced writes (parseTrace's) in that file:
// a power cut tears the database and the journal each where it had not
// synced. The files are the store's, in dataDir; it returns the number of
// writes torn.
func tearFiles(dataDir string, unsynced map[string][]write, rnd *rand.Rand) (int, error) {
	files := make([]string, 0, len(unsynced))
	for f := range unsynced {
		files = append(files, f)
	}
	sort.Strings(files) // the seed replays the same tears
	n := 0
	for _, f := range files {
		base := filepath.Base(f)
		if !filepath.IsAbs(f) || (base != store.FileName && base != store.JournalName) {
			return n, fmt.Errorf("unsynced writes to %q, not a file of the store's (a trace without strace -y, or the agent writes another file: tear it too)", f)
		}
		t, err := tear(filepath.Join(dataDir, base), unsynced[f], rnd)
		n += t
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// tear overwrites the first and the last 512-byte sector of each unsynced
// write with garbage: what a power cut in the middle of those writes can
// leave behind.
func tear(path string, ws []write, rnd *rand.Rand) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const sector = 512
	junk := make([]byte, sector)
	n := 0
	for _, w := range ws {
		for _, off := range []int64{w.off, w.off + w.n - sector} {
			if off < w.off {
				continue
			}
			for i := range junk {
				junk[i] = byte(rnd.Uint32())
			}
			if _, err := f.WriteAt(junk, off); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, f.Sync()
}
