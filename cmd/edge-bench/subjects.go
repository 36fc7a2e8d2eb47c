package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// subject is a receiver whose ingest is measured: the agent, the old
// script, or mosquitto_sub. Each holds a persistent session (QoS 1,
// clean session off, fixed client id) on its own topic.
type subject interface {
	kind() string
	topic() string
	// session makes the persistent session and its subscription exist at
	// the broker and leaves the subject stopped, so that what is published
	// next is queued for it.
	session() error
	start() error
	// ready waits until the started subject is subscribed.
	ready() error
	// count is how many messages this process has stored since it started.
	count() (int, error)
	process() *proc
	stop() error
	// verify fails if any of messages 0..n-1 of stream tag is missing.
	verify(tag string, n int) (dups int, err error)
	// dropSession discards the session at the broker afterwards.
	dropSession() error
}

// Subject kinds, as the report names them.
const (
	kindAgent  = "agent"
	kindScript = "old script"
	kindSub    = "mosquitto_sub"
)

// agentSubject is the agent as an ingest subject: count is the status
// document's stored_since_start (committed, so acknowledged).
type agentSubject struct{ *agent }

func (s agentSubject) kind() string       { return kindAgent }
func (s agentSubject) topic() string      { return s.agent.topic("notify") }
func (s agentSubject) process() *proc     { return s.p }
func (s agentSubject) start() error       { return s.agent.start(nil) }
func (s agentSubject) stop() error        { return s.agent.stop() }
func (s agentSubject) dropSession() error { return s.agent.dropSession() }

func (s agentSubject) ready() error {
	_, err := s.waitConnected(15*time.Second, 10*time.Millisecond)
	return err
}

func (s agentSubject) session() error { return session(s) }

// session starts s, waits until it is subscribed and stops it.
func session(s subject) error {
	if err := s.start(); err != nil {
		return err
	}
	if err := s.ready(); err != nil {
		s.process().kill()
		return err
	}
	return s.stop()
}

func (s agentSubject) count() (int, error) {
	st, err := s.status()
	if err != nil {
		return 0, err
	}
	return int(st.StoredSinceStart), nil
}

// fileSubject is a baseline that appends one line per message to a file:
// the old script (SEED_LOG) or mosquitto_sub (its stdout). count reads
// what was appended since the last call and counts the new lines.
type fileSubject struct {
	e        *env
	name     string
	dir      string
	clientID string
	topicStr string
	out      string // the file the lines land in
	argv     []string
	env      []string
	stdout   bool // the lines are the process's stdout (mosquitto_sub)

	p     *proc
	off   int64
	lines int
	base  int
}

// newScript is the old script (scripts/baseline/seed_sub.py) under
// Debian's python3 with paho-mqtt 1.x: QoS 1, persistent session, one
// open-append-close of SEED_LOG per message; its stdout (a copy of each
// line) goes to /dev/null.
func (e *env) newScript(name string) *fileSubject {
	dir := e.sub(name)
	s := &fileSubject{e: e, name: name, dir: dir, out: filepath.Join(dir, "seed.log")}
	s.clientID = e.id(name)
	s.topicStr = "bench/" + s.clientID
	s.argv = []string{pythonBin, e.scriptPath}
	s.env = []string{
		"SEED_HOST=127.0.0.1", "SEED_PORT=" + e.broker.port, "SEED_TOPIC=" + s.topicStr,
		"SEED_ID=" + s.clientID, "SEED_USER=" + cloudUser, "SEED_PASS=" + cloudPass,
		"SEED_CA=" + e.pki.CAFile, "SEED_LOG=" + s.out,
	}
	return s
}

// newMosquittoSub is `mosquitto_sub -q 1 -c -i ID` (persistent session)
// with its stdout appended to a file, one line per payload.
func (e *env) newMosquittoSub(name string) *fileSubject {
	dir := e.sub(name)
	s := &fileSubject{e: e, name: name, dir: dir, out: filepath.Join(dir, "sub.out"), stdout: true}
	s.clientID = e.id(name)
	s.topicStr = "bench/" + s.clientID
	s.argv = []string{mosquittoSubBin, "-h", "127.0.0.1", "-p", e.broker.port, "--cafile", e.pki.CAFile,
		"-u", cloudUser, "-P", cloudPass, "-t", s.topicStr, "-q", "1", "-c", "-i", s.clientID}
	return s
}

// relocate makes the subject write its file in dir (the wear section's
// loop file system) instead of its own directory.
func (s *fileSubject) relocate(dir string) {
	s.out = filepath.Join(dir, filepath.Base(s.out))
	for i, kv := range s.env {
		if strings.HasPrefix(kv, "SEED_LOG=") {
			s.env[i] = "SEED_LOG=" + s.out
		}
	}
}

func (s *fileSubject) kind() string {
	if s.stdout {
		return kindSub
	}
	return kindScript
}

func (s *fileSubject) topic() string  { return s.topicStr }
func (s *fileSubject) process() *proc { return s.p }

func (s *fileSubject) start() error {
	var stdout *os.File
	if s.stdout {
		f, err := os.OpenFile(s.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close() // the child has its own descriptor
		stdout = f
	}
	// Lines already in the file (the session's probe) are not this run's.
	if _, err := s.count(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.base = s.lines
	p, err := startProc(s.argv, s.env, stdout, filepath.Join(s.dir, "stderr.log"), nil)
	if err != nil {
		return err
	}
	s.p = p
	return nil
}

func (s *fileSubject) stop() error {
	if s.p == nil {
		return nil
	}
	// Both die on SIGTERM (python by default); their session stays.
	return s.p.term(5 * time.Second)
}

func (s *fileSubject) count() (int, error) {
	f, err := os.Open(s.out)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(s.off, io.SeekStart); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		s.lines += bytes.Count(buf[:n], []byte{'\n'})
		s.off += int64(n)
		if err == io.EOF || n == 0 {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return s.lines - s.base, nil
}

func (s *fileSubject) session() error { return session(s) }

// ready publishes a probe every 200 ms until one more line is in the
// file: the subject is connected and subscribed. Neither baseline says so
// otherwise (the script's "Connected" line is block-buffered on a pipe).
func (s *fileSubject) ready() error {
	pub, err := s.e.broker.pub(s.clientID+"-probe", 10)
	if err != nil {
		return err
	}
	defer pub.close()
	before, err := s.count()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := pub.paced(s.topicStr, 1, 0, func(int, time.Time) []byte { return []byte("probe") }); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
		n, err := s.count()
		if err != nil {
			return err
		}
		if n > before {
			break
		}
		if time.Now().After(deadline) || !s.p.alive() {
			return fmt.Errorf("%s: no probe arrived within 15 s: %s", s.kind(), s.p.lastLines())
		}
	}
	// Let the probes' PUBACKs go out, so none is redelivered into a run.
	time.Sleep(200 * time.Millisecond)
	return nil
}

func (s *fileSubject) verify(tag string, n int) (int, error) {
	f, err := os.Open(s.out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cov := newCoverage(n)
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) > 0 {
			cov.add(tag, line)
		}
	}
	lost, dups, first := cov.result()
	if lost > 0 {
		return dups, fmt.Errorf("%s %s: %d of %d messages of %s not received (first lost #%d)", s.kind(), s.name, lost, n, tag, first)
	}
	return dups, nil
}

func (s *fileSubject) dropSession() error {
	return s.e.broker.dropSession(s.clientID, cloudUser, cloudPass)
}
