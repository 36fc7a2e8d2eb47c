package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
)

// Kills inside the commit path. strace runs the agent and injects SIGKILL
// at the entry of its Nth pwrite64 or fdatasync (counted per thread), the
// two system calls of a bbolt commit: data pages (pwrite64), fdatasync, the
// meta page (pwrite64 at page 0 or 1), fdatasync
// (docs/dependencies.md#bbolt-commit-fsyncs). The
// killed call is never executed. The trace then tells where the kill landed.
//
// A SIGKILL keeps what reached the page cache, a power cut may not: after
// some kills the suite also tears every write since the last completed
// fdatasync (garbage in its first and last 512-byte sector), which is the
// worst a power cut at that instant can leave. bbolt never writes a page the
// last synced meta page refers to, so a torn unsynced write must cost at
// most the commit in flight, which was never acknowledged.

// pageSize is bbolt's page size on this machine (the OS page size); meta
// pages are pages 0 and 1.
var pageSize = int64(os.Getpagesize())

// commitKill is where an injected kill landed.
type commitKill struct {
	landed   bool   // the injection fired (else a plain SIGKILL was needed)
	phase    string // "data write", "data fsync", "meta write", "meta fsync", "other"
	unsynced []write
}

type write struct{ off, n int64 }

// straceArgs wraps the agent: SIGKILL at the when-th call of syscall.
func straceArgs(traceFile, syscall string, when int) []string {
	return []string{"strace", "-f", "-qq", "-s", "0", "-o", traceFile,
		"-e", "trace=pwrite64,fdatasync,fsync",
		"-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", syscall, when)}
}

var (
	reDone       = regexp.MustCompile(`^(\d+) +(pwrite64|fdatasync|fsync)\((\d+)(?:, ""\.\.\., (\d+), (\d+))?\) += (-?\d+|\?)`)
	reUnfinished = regexp.MustCompile(`^(\d+) +(pwrite64|fdatasync|fsync)\((\d+)(?:, ""\.\.\., (\d+), (\d+))? <unfinished \.\.\.>`)
	reResumed    = regexp.MustCompile(`^(\d+) +<\.\.\. (pwrite64|fdatasync|fsync) resumed>.*\) += (\S+)`)
	reKilled     = regexp.MustCompile(`^(\d+) +\+\+\+ killed by SIGKILL`)
)

// parseTrace reads an strace log: the completed writes since the last
// completed sync, and the call the kill interrupted.
func parseTrace(path string) (commitKill, error) {
	f, err := os.Open(path)
	if err != nil {
		return commitKill{}, err
	}
	defer f.Close()
	type call struct {
		name   string
		fd     string
		off, n int64
	}
	inflight := map[string]call{}
	var (
		k         commitKill
		lastWrite *write
		killed    *call
	)
	dbFD := "" // the database file's descriptor: the one bbolt writes to
	complete := func(c call) {
		switch {
		case c.name == "pwrite64":
			dbFD = c.fd
			w := write{c.off, c.n}
			k.unsynced = append(k.unsynced, w)
			lastWrite = &w
		case c.fd == dbFD:
			k.unsynced = nil
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reDone.FindStringSubmatch(line); m != nil {
			c := call{name: m[2], fd: m[3]}
			if m[2] == "pwrite64" {
				c.n, _ = strconv.ParseInt(m[4], 10, 64)
				c.off, _ = strconv.ParseInt(m[5], 10, 64)
			}
			if m[6] == "?" {
				// Killed on entry, in one line: never executed.
				if killed == nil {
					killed = &c
				}
				continue
			}
			if ret, _ := strconv.ParseInt(m[6], 10, 64); ret >= 0 {
				complete(c)
			}
			continue
		}
		if m := reUnfinished.FindStringSubmatch(line); m != nil {
			c := call{name: m[2], fd: m[3]}
			if m[2] == "pwrite64" {
				c.n, _ = strconv.ParseInt(m[4], 10, 64)
				c.off, _ = strconv.ParseInt(m[5], 10, 64)
			}
			inflight[m[1]] = c
			continue
		}
		if m := reResumed.FindStringSubmatch(line); m != nil {
			c, ok := inflight[m[1]]
			delete(inflight, m[1])
			if !ok {
				continue
			}
			if m[3] == "?" {
				killed = &c
				continue
			}
			if ret, _ := strconv.ParseInt(m[3], 10, 64); ret >= 0 {
				complete(c)
			}
			continue
		}
		if m := reKilled.FindStringSubmatch(line); m != nil {
			if c, ok := inflight[m[1]]; ok && killed == nil {
				cc := c
				killed = &cc
			}
		}
	}
	if err := sc.Err(); err != nil {
		return k, err
	}
	if killed == nil {
		k.phase = "other"
		return k, nil
	}
	k.landed = true
	meta := func(off int64) bool { return off < 2*pageSize }
	switch killed.name {
	case "pwrite64":
		if meta(killed.off) {
			k.phase = "meta write"
		} else {
			k.phase = "data write"
		}
	default:
		if lastWrite != nil && len(k.unsynced) > 0 && meta(lastWrite.off) {
			k.phase = "meta fsync"
		} else {
			k.phase = "data fsync"
		}
	}
	return k, nil
}

// tear overwrites the first and the last 512-byte sector of each unsynced
// write with garbage: what a power cut in the middle of those writes can
// leave behind.
func tear(dbPath string, ws []write, rnd *rand.Rand) (int, error) {
	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
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
