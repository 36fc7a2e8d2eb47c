package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// Sizes and abuse: messages over max_message_size, retained commands, a
// flood of messages just under the limit, and the control socket under
// abuse. What the agent may hold in memory is the point of each, so each
// reports the agent's peak RSS (VmHWM) beside its other checks.

// Peak RSS bounds. The agent holds at most one message of max_message_size
// (1 MiB by default) and a 4 MiB writer queue; idle it is about 10 MB.
const (
	oversizeMaxRSS = 64e6    // with messages of 20–50 MB arriving
	floodMaxRSS    = 96e6    // with 900 KiB messages arriving as fast as they can
	socketMaxRSS   = 64e6    // with the control socket under abuse
	defaultMaxMsg  = 1 << 20 // [mqtt] max_message_size's default
	markerHead     = 256     // bytes of an oversize message its marker keeps
)

// procStatusKB reads fields such as VmRSS and VmHWM (kB) from
// /proc/PID/status.
func procStatusKB(pid int, fields ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return procFields(string(b), ":", " kB", fields...)
}

// procIO reads counters such as rchar (bytes read by read(2) and its kin,
// sockets included) from /proc/PID/io.
func procIO(pid int, fields ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return nil, err
	}
	return procFields(string(b), ":", "", fields...)
}

func procFields(s, sep, unit string, fields ...string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		for _, f := range fields {
			if name == f {
				v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), unit), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("/proc %s: %q", f, rest)
				}
				out[f] = v
			}
		}
	}
	for _, f := range fields {
		if _, ok := out[f]; !ok {
			return nil, fmt.Errorf("/proc has no %s", f)
		}
	}
	return out, nil
}

// fdCount is how many file descriptors pid has open.
func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

func (p *agentProc) pid() int { return p.cmd.Process.Pid }

// peakRSS is the agent's VmHWM, with VmRSS and its anonymous and file
// parts now, in bytes.
type rss struct{ hwm, now, anon, file int64 }

func readRSS(pid int) (rss, error) {
	m, err := procStatusKB(pid, "VmHWM", "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return rss{}, err
	}
	return rss{hwm: m["VmHWM"] << 10, now: m["VmRSS"] << 10, anon: m["RssAnon"] << 10, file: m["RssFile"] << 10}, nil
}

// rssSampler follows the agent's resident memory while a scenario runs:
// VmHWM is the peak of the whole, RssAnon and RssFile (pages of the store's
// memory-mapped file) have no peak of their own in /proc, so they are
// sampled.
type rssSampler struct {
	stop chan struct{}
	done chan struct{}
	anon int64 // the largest RssAnon seen, bytes
	file int64 // the largest RssFile seen
	n    int
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := readRSS(pid); err == nil {
				s.anon, s.file = max(s.anon, v.anon), max(s.file, v.file)
				s.n++
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns it, its peaks final.
func (s *rssSampler) finish() *rssSampler {
	close(s.stop)
	<-s.done
	return s
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// mbOf is a size in MB as the scenarios state them (20 MB = 20,000,000 B).
func mbOf(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%d MB", n/1_000_000)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%1024 == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// bigPayload is message i of a large kind (tag): a header naming it, then
// size bytes in all, deterministic from seed. Binary (every byte value) when
// binary, else ASCII letters, so that export carries it as a string.
func bigPayload(seed uint64, tag string, i, size int, binary bool) []byte {
	b := make([]byte, size)
	h := copy(b, fmt.Sprintf("%s-%05d:", tag, i))
	rnd := rand.New(rand.NewPCG(seed, uint64(i)))
	for j := h; j < size; j += 8 {
		v := rnd.Uint64()
		for k := 0; k < 8 && j+k < size; k++ {
			c := byte(v >> (8 * k))
			if !binary {
				c = 'a' + c%26
			}
			b[j+k] = c
		}
	}
	return b
}

// runOversize publishes messages far over max_message_size QoS 1 to the
// command topic while a stream of normal ones flows. Each must be
// acknowledged to the publisher, stored once as a marker (oversize, its
// size, its first 256 bytes), the first (a relay.set command) refused and
// not executed; the normal ones stored byte-exact, none lost; the agent's
// peak RSS far below one message; and after a restart nothing comes again
// (the agent acknowledged every one to the broker).
func runOversize(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "oversize", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("oversize")
	cfg := newAgentConfig("faults-oversize", m.URL)
	cfg.extra = hostileRelays
	cfgPath, a, st0, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer func() { a.kill() }()
	notify := cfg.topic("notify")
	rl, pub, ok := e.cloudClients(r, m.URL, cfg, "faults-oversize")
	if !ok {
		return
	}
	defer rl.close()
	defer pub.Disconnect(100)
	idle, err := readRSS(a.pid())
	if err != nil {
		r.fail("%v", err)
		return
	}

	n, size := p.oversizeN, p.oversizeSz
	s := e.newStream(m.URL, "faults-oversize-stream", notify, "oversize", 2*time.Millisecond).start(0)
	heads := make([][]byte, n)
	start := time.Now()
	var pubTimes []time.Duration
	for i := 0; i < n; i++ {
		var pl []byte
		if i == 0 {
			// A command, refused: only its head is kept.
			pl = bytes.Repeat([]byte{'x'}, size)
			copy(pl, `{"id":"huge-00000","method":"relay.set","params":{"relay":"lamp","on":true,"pad":"`)
			copy(pl[size-3:], `"}}`)
		} else {
			pl = bigPayload(p.seed, "huge", i, size, i%2 == 1)
		}
		heads[i] = append([]byte(nil), pl[:markerHead]...)
		t0 := time.Now()
		if err := agenttest.PublishQoS1(pub, notify, pl, 60*time.Second); err != nil {
			r.fail("message %d of %s not acknowledged to the publisher: %v", i, mbOf(size), err)
			s.finish()
			return
		}
		pubTimes = append(pubTimes, time.Since(t0))
	}
	st, err := waitStatus(cfg.dataDir, 60*time.Second, func(st status) bool { return st.Ingest.Oversize >= uint64(n) })
	if err != nil {
		r.fail("the %d oversize messages were not all stored: ingest.oversize %d: %v\n%s", n, st.Ingest.Oversize, err, tail(a.Log(), 10))
		s.finish()
		return
	}
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	s.finish()
	rep, ok := allStored(r, cfg.dataDir, s.ackedCopy(), 60*time.Second)
	if !ok {
		return
	}
	peak, err := readRSS(a.pid())
	if err != nil {
		r.fail("%v", err)
		return
	}
	if rep.lost > 0 {
		r.fail("%d of %d normal messages sent beside the oversize ones lost (first %s)", rep.lost, rep.acked, rep.firstLost)
	}
	if peak.hwm > oversizeMaxRSS {
		r.fail("peak RSS %s while %d × %s arrived: more than %s", mb(peak.hwm), n, mbOf(size), mb(oversizeMaxRSS))
	}
	st, _ = getStatus(cfg.dataDir)
	if !st.Connected || !st.Since.Equal(st0.Since) || !a.alive() {
		r.fail("the agent did not stay connected: connected=%v since %v (was %v) alive=%v", st.Connected, st.Since, st0.Since, a.alive())
	}
	if st.Relays["lamp"].On {
		r.fail("relay lamp is on: the oversize relay.set ran")
	}

	// Each stored once, as a marker.
	recs, err := export(cfg.dataDir)
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	markers, largest := 0, 0
	seen := make([]int, n)
	for _, rec := range recs {
		b, err := rec.Bytes()
		if err != nil {
			r.fail("record %d: %v", rec.Seq, err)
			continue
		}
		largest = max(largest, len(b))
		if !rec.Oversize {
			continue
		}
		markers++
		i := -1
		for j, h := range heads {
			if bytes.Equal(b, h) {
				i = j
			}
		}
		switch {
		case i < 0:
			r.fail("marker record %d holds none of the messages' first %d bytes: %s", rec.Seq, markerHead, control.PayloadPrefix(b, 60))
		case rec.Size != int64(size):
			r.fail("marker record %d (message %d) says size %d, want %d", rec.Seq, i, rec.Size, size)
		case rec.Topic != notify:
			r.fail("marker record %d has topic %q", rec.Seq, rec.Topic)
		default:
			seen[i]++
		}
	}
	for i, c := range seen {
		if c != 1 {
			r.fail("message %d of %s stored as a marker %d times, want once", i, mbOf(size), c)
		}
	}
	if largest > defaultMaxMsg {
		r.fail("a record of %d bytes is stored: over max_message_size", largest)
	}
	// The command among them: refused, by a bad_command reply.
	refusal := ""
	waitFor(10*time.Second, func() bool {
		all, _ := rl.snapshot()
		for _, v := range all {
			if errCode(v) == "bad_command" {
				msg, _ := v["error"].(map[string]any)["message"].(string)
				refusal = msg
				return true
			}
		}
		return false
	})
	if !strings.Contains(refusal, "max_message_size") {
		r.fail("no bad_command reply naming max_message_size for the oversize relay.set (got %q)", refusal)
	}

	// Restart: had the agent not acknowledged a message to the broker, it
	// would come again now.
	if err := a.term(10 * time.Second); err != nil {
		r.fail("SIGTERM: %v", err)
	}
	a, err = e.startAgent(cfgPath, nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if _, err := waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.Connected }); err != nil {
		r.fail("after the restart: %v", err)
		return
	}
	time.Sleep(time.Second)
	st, _ = getStatus(cfg.dataDir)
	if st.Ingest.Oversize != 0 || st.StoredSinceStart != 0 {
		r.fail("after a restart %d messages came again (%d oversize): not all were acknowledged to the broker", st.StoredSinceStart, st.Ingest.Oversize)
	}

	r.fig("oversize messages", "%d × %s QoS 1 to the command topic, acknowledged to the publisher in median %s each; all stored in %s", n, mbOf(size), ms(median(pubTimes)), ms(took))
	r.fig("stored as", "%d markers (oversize, size %d, first %d bytes); largest record %d B; the relay.set among them refused, not run", markers, size, markerHead, largest)
	r.fig("normal messages beside them", "%d acknowledged, %d lost, %d duplicates", rep.acked, rep.lost, rep.dups)
	r.fig("agent peak RSS (VmHWM)", "%s (idle %s; bound %s)", mb(peak.hwm), mb(idle.now), mb(oversizeMaxRSS))
	r.fig("after a restart", "nothing redelivered: every one was acknowledged to the broker")
	summarise("oversize", "%d × %s stored as markers, %d normal beside them lost of %d, peak RSS %s", n, mbOf(size), rep.lost, rep.acked, mb(peak.hwm))
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// runRetained publishes a retained relay.set for lamp before the agent
// connects: it arrives with RETAIN set on the subscription, and again on
// each resubscription after a restart. Each time it must be stored marked
// retained, answered bad_command, and never run; a live command proves
// the relay works.
func runRetained(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "retained", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("retained")
	cfg := newAgentConfig("faults-retained", m.URL)
	cfg.extra = hostileRelays
	cfgPath, err := e.writeConfig(dir, cfg)
	if err != nil {
		r.fail("%v", err)
		return
	}
	notify := cfg.topic("notify")
	rl, pub, ok := e.cloudClients(r, m.URL, cfg, "faults-retained")
	if !ok {
		return
	}
	defer rl.close()
	defer pub.Disconnect(100)
	cmd := []byte(`{"id":"retained-1","method":"relay.set","params":{"relay":"lamp","on":true}}`)
	tok := pub.Publish(notify, 1, true, cmd)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.fail("publish the retained command: %v", tok.Error())
		return
	}

	var refusals []string
	var arrivals []time.Duration
	var a *agentProc
	defer func() {
		if a != nil {
			a.kill()
		}
	}()
	const starts = 2
	for run := 1; run <= starts; run++ {
		if a != nil {
			if err := a.term(10 * time.Second); err != nil {
				r.fail("SIGTERM: %v", err)
			}
		}
		a, err = e.startAgent(cfgPath, nil)
		if err != nil {
			r.fail("%v", err)
			return
		}
		if _, err := waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.Connected }); err != nil {
			r.fail("start %d: %v", run, err)
			return
		}
		if !waitFor(10*time.Second, func() bool { return rl.len() >= run }) {
			r.fail("start %d: no reply to the retained command within 10 s of connecting", run)
			return
		}
		arrivals = append(arrivals, time.Since(a.started))
		replies, raw := rl.snapshot()
		got := replies[run-1]
		if got["id"] != "retained-1" || got["ok"] != false || errCode(got) != "bad_command" {
			r.fail("start %d: reply %s, want ok:false bad_command for retained-1", run, control.PayloadPrefix(raw[run-1], 200))
		}
		msg, _ := got["error"].(map[string]any)["message"].(string)
		refusals = append(refusals, msg)
		st, err := waitStatus(cfg.dataDir, 5*time.Second, func(s status) bool { return s.Ingest.Refused >= 1 })
		if err != nil {
			r.fail("start %d: ingest.refused stays 0: %v", run, err)
		}
		if st.Relays["lamp"].On {
			r.fail("start %d: relay lamp is on: the retained relay.set ran", run)
		}
	}
	time.Sleep(300 * time.Millisecond)
	recs, err := export(cfg.dataDir)
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	if len(recs) != starts {
		r.fail("%d records, want %d (the retained command once per subscription)", len(recs), starts)
	}
	for _, rec := range recs {
		b, _ := rec.Bytes()
		if !rec.Retained || !bytes.Equal(b, cmd) || rec.Topic != notify {
			r.fail("record %d: retained=%v topic %q payload %s: want the retained command, marked retained", rec.Seq, rec.Retained, rec.Topic, control.PayloadPrefix(b, 80))
		}
	}
	if len(refusals) > 0 && !strings.Contains(refusals[0], "retained") {
		r.fail("the refusal does not say why: %q", refusals[0])
	}
	// The relay works: the same command, not retained, runs.
	if err := agenttest.PublishQoS1(pub, notify, []byte(`{"id":"live-1","method":"relay.set","params":{"relay":"lamp","on":true}}`), 10*time.Second); err != nil {
		r.fail("%v", err)
		return
	}
	st, err := waitStatus(cfg.dataDir, 10*time.Second, func(s status) bool { return s.Relays["lamp"].On })
	if err != nil {
		r.fail("the live relay.set did not switch lamp on: %v", err)
	}
	if rl.len() != starts+1 {
		r.fail("%d replies, want %d", rl.len(), starts+1)
	}
	r.fig("retained relay.set lamp on", "published before the agent connected; delivered at each of %d subscriptions (the second after a restart); refusal received %s after the agent's start", starts, durList(arrivals))
	r.fig("each time", "stored marked retained, answered bad_command, lamp stayed off (ingest.refused %d in the last run)", st.Ingest.Refused)
	r.fig("the same command without retain", "ran: lamp on")
	summarise("retained", "delivered %d times (restart included): stored retained, bad_command, lamp stayed off", starts)
}

func durList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, ms(d))
	}
	return strings.Join(s, ", ")
}

// runBigFlood publishes messages just under max_message_size as fast as
// the publisher can (a window of 64 unacknowledged): all must be stored
// byte-exact, none lost, and the agent's peak RSS stays bounded by its
// 4 MiB writer queue, not by what the broker has queued for it.
func runBigFlood(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "bigflood", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("bigflood")
	cfg := newAgentConfig("faults-bigflood", m.URL)
	// Retention above what the flood brings, so that every message can be
	// checked after it.
	cfg.extra = "\n[store]\nretain_bytes = \"400MiB\"\nmax_db_size = \"1GiB\"\n"
	_, a, st0, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer a.kill()
	notify := cfg.topic("notify")
	pub, err := e.publisher(m.URL, "faults-bigflood-pub")
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer pub.Disconnect(100)
	idle, err := readRSS(a.pid())
	if err != nil {
		r.fail("%v", err)
		return
	}

	n, size := p.floodN, p.floodSize
	want := make([][32]byte, n)
	const window = 64
	toks := make(chan mqtt.Token, window)
	var pubErr error
	var wg sync.WaitGroup
	var acked int
	var lastAck time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		for t := range toks {
			if !t.WaitTimeout(60*time.Second) || t.Error() != nil {
				if pubErr == nil {
					pubErr = fmt.Errorf("message %d not acknowledged: %v", acked, t.Error())
				}
				continue
			}
			acked++
			lastAck = time.Now()
		}
	}()
	io0, err := procIO(a.pid(), "write_bytes")
	if err != nil {
		r.fail("%v", err)
		return
	}
	smp := sampleRSS(a.pid(), 5*time.Millisecond)
	start := time.Now()
	for i := 0; i < n; i++ {
		pl := bigPayload(p.seed, "large", i, size, i%10 == 3)
		want[i] = sha256.Sum256(pl)
		toks <- pub.Publish(notify, 1, false, pl)
	}
	close(toks)
	wg.Wait()
	if pubErr != nil {
		r.fail("%v", pubErr)
		return
	}
	pubTook := lastAck.Sub(start)
	st, err := waitStatus(cfg.dataDir, 120*time.Second, func(s status) bool { return s.Inbox.Total >= n })
	smp.finish()
	if err != nil {
		r.fail("not all stored: %v", err)
		return
	}
	took := time.Since(start)
	peak, err := readRSS(a.pid())
	if err != nil {
		r.fail("%v", err)
		return
	}
	io1, err := procIO(a.pid(), "write_bytes")
	if err != nil {
		r.fail("%v", err)
		return
	}
	if !st.Connected || !st.Since.Equal(st0.Since) {
		r.fail("the agent did not stay connected: connected=%v since %v (was %v)", st.Connected, st.Since, st0.Since)
	}
	if st.Ingest.Oversize != 0 {
		r.fail("%d messages of %d bytes taken for oversize (max_message_size 1 MiB)", st.Ingest.Oversize, size)
	}
	// Every one byte-exact, read as a stream: the records are not all held
	// here at once either.
	got := make([]int, n)
	bad := 0
	err = control.Call(cfg.dataDir, control.Request{Cmd: control.CmdInboxExport}, func(rep control.Reply) error {
		if rep.Record == nil {
			return nil
		}
		b, err := rep.Record.Bytes()
		if err != nil {
			return err
		}
		var i int
		if _, err := fmt.Sscanf(string(b[:min(len(b), 12)]), "large-%05d:", &i); err != nil || i < 0 || i >= n || sha256.Sum256(b) != want[i] || rep.Record.Oversize {
			bad++
			if bad <= 3 {
				r.fail("record %d (%d bytes) is not a message as published: %s", rep.Record.Seq, len(b), control.PayloadPrefix(b, 40))
			}
			return nil
		}
		got[i]++
		return nil
	})
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	lost, dups := 0, 0
	for _, c := range got {
		if c == 0 {
			lost++
		}
		dups += max(c-1, 0)
	}
	if lost > 0 {
		r.fail("%d of %d messages of %s lost", lost, n, mbOf(size))
	}
	tally(lossReport{acked: n, lost: lost, dups: dups})
	// The bound is on anonymous memory (heap, stacks), which the writer's
	// queue bounds. VmHWM also counts the pages of the store's file that
	// bbolt has mapped and touched: page cache, which grows with the file,
	// not with what is queued. Here it is much of the file: bbolt does not
	// split a leaf of four keys or fewer, so the last leaf holds up to four
	// of these values, and each commit copies them out of the map into the
	// rewritten leaf.
	if smp.anon > floodMaxRSS {
		r.fail("anonymous memory peaked at %s while %d × %s arrived: more than %s", mb(smp.anon), n, mbOf(size), mb(floodMaxRSS))
	}
	total := float64(n) * float64(size)
	r.fig("flood", "%d × %s (%.0f MB) QoS 1, a window of %d: publisher acknowledged in %s", n, mbOf(size), total/1e6, window, ms(pubTook))
	r.fig("first publish → all stored", "%s (%.1f MB/s, %.0f msg/s)", ms(took), total/1e6/took.Seconds(), float64(n)/took.Seconds())
	r.fig("written to the store's disk (write_bytes)", "%.0f MB: %.2f× the payload", float64(io1["write_bytes"]-io0["write_bytes"])/1e6, float64(io1["write_bytes"]-io0["write_bytes"])/total)
	r.fig("stored byte-exact", "%d of %d; %d lost, %d duplicates, %d wrong", n-lost, n, lost, dups, bad)
	r.fig("agent peak RSS (VmHWM)", "%s (idle %s)", mb(peak.hwm), mb(idle.now))
	r.fig("of which, sampled every 5 ms", "anonymous peak %s (bound %s); the mapped database file peak %s (file %s)", mb(smp.anon), mb(floodMaxRSS), mb(smp.file), mb(dbSize(cfg.dataDir)))
	summarise("bigflood", "%d × %s: all stored in %s, %d lost, peak RSS %s (anonymous %s, mapped database file %s)", n, mbOf(size), ms(took), lost, mb(peak.hwm), mb(smp.anon), mb(smp.file))
}

// runSocket abuses the running agent's control socket: a client sends
// p.sockBytes without a newline (the daemon must answer or close after its
// 64 KiB bound, having read no more), p.sockIdle clients connect and send
// nothing; meanwhile a status from a fresh connection must answer within
// 2 s and notifications keep being stored. After the abusers go, the
// daemon's descriptors come back to where they were; an idle client left
// alone is dropped by the daemon.
func runSocket(e *env, p params, r *result) {
	m := e.scenarioBroker(r, "socket", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("socket")
	cfg := newAgentConfig("faults-socket", m.URL)
	_, a, _, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer a.kill()
	pid := a.pid()
	sock := filepath.Join(cfg.dataDir, control.SocketName)
	idle, err := readRSS(pid)
	if err != nil {
		r.fail("%v", err)
		return
	}
	s := e.newStream(m.URL, "faults-socket-pub", cfg.topic("notify"), "socket", 5*time.Millisecond).start(0)
	time.Sleep(200 * time.Millisecond)
	fd0 := fdCount(pid)

	// One idle client that is left alone: the daemon must drop it.
	lone, err := net.Dial("unix", sock)
	if err != nil {
		r.fail("connect: %v", err)
		s.finish()
		return
	}
	loneAt := time.Now()
	loneGone := make(chan time.Duration, 1)
	go func() {
		_ = lone.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := io.Copy(io.Discard, lone)
		if err != nil {
			loneGone <- -1
			return
		}
		loneGone <- time.Since(loneAt)
	}()
	defer lone.Close()

	// Idle clients.
	var idles []net.Conn
	for i := 0; i < p.sockIdle; i++ {
		c, err := net.DialTimeout("unix", sock, 2*time.Second)
		if err != nil {
			r.fail("idle client %d: %v", i, err)
			break
		}
		idles = append(idles, c)
	}
	closeIdles := func() {
		for _, c := range idles {
			c.Close()
		}
		idles = nil
	}
	defer closeIdles()

	// The long line.
	io0, err := procIO(pid, "rchar")
	if err != nil {
		r.fail("%v", err)
	}
	big, err := net.Dial("unix", sock)
	if err != nil {
		r.fail("connect: %v", err)
		s.finish()
		return
	}
	defer big.Close()
	var written int64
	var writeErr error
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		_ = big.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for written < p.sockBytes {
			n, err := big.Write(chunk[:min(int64(len(chunk)), p.sockBytes-written)])
			written += int64(n)
			if err != nil {
				writeErr = err
				return
			}
		}
	}()
	var answer []byte
	var readErr error
	var answered time.Duration
	bigAt := time.Now()
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		_ = big.SetReadDeadline(time.Now().Add(10 * time.Second))
		answer, readErr = io.ReadAll(big)
		answered = time.Since(bigAt)
	}()

	// Status from fresh connections while all that goes on.
	var lat []time.Duration
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		_, err := getStatus(cfg.dataDir)
		d := time.Since(t0)
		lat = append(lat, d)
		if err != nil || d > 2*time.Second {
			r.fail("status %d during the abuse: %v after %s (bound 2 s)", i+1, err, ms(d))
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-rdone
	<-wdone
	io1, err := procIO(pid, "rchar")
	if err != nil {
		r.fail("%v", err)
	}
	read := io1["rchar"] - io0["rchar"]
	fdPeak := fdCount(pid)
	peak, err := readRSS(pid)
	if err != nil {
		r.fail("%v", err)
	}
	var reply control.Reply
	_ = json.Unmarshal(bytes.TrimSpace(answer), &reply)
	switch {
	case written >= p.sockBytes && writeErr == nil && readErr != nil:
		r.fail("the daemon took all %d bytes of a line without a newline and neither answered nor closed (%v)", written, readErr)
	case readErr != nil && !errors.Is(readErr, os.ErrDeadlineExceeded):
		// A reset after the answer is the daemon closing with our bytes unread.
		if reply.Error == "" {
			r.fail("the long line: no answer, %v", readErr)
		}
	case readErr != nil:
		r.fail("the long line: no answer and no close within 10 s")
	}
	if reply.Error != "" && !strings.Contains(reply.Error, "longer than") {
		r.fail("the long line: answered %q", reply.Error)
	}
	if read > 1<<20 {
		r.fail("the daemon read %d bytes during the abuse (rchar): the request line is not bounded", read)
	}
	if peak.hwm > socketMaxRSS {
		r.fail("peak RSS %s during the abuse: more than %s", mb(peak.hwm), mb(socketMaxRSS))
	}

	// The abusers go.
	big.Close()
	gone := time.Now()
	closeIdles()
	back := waitFor(10*time.Second, func() bool { return fdCount(pid) <= fd0+1 }) // +1: the lone client, until dropped
	recov := time.Since(gone)
	if !back {
		r.fail("10 s after the abusers went the daemon still has %d descriptors open (%d before)", fdCount(pid), fd0)
	}
	t0 := time.Now()
	if _, err := getStatus(cfg.dataDir); err != nil {
		r.fail("status after the abuse: %v", err)
	}
	after := time.Since(t0)
	var loneD time.Duration
	select {
	case loneD = <-loneGone:
	case <-time.After(15 * time.Second):
		loneD = -1
	}
	if loneD < 0 {
		r.fail("an idle client that sent nothing was not dropped by the daemon within 15 s")
	}
	s.finish()
	rep, ok := allStored(r, cfg.dataDir, s.ackedCopy(), 30*time.Second)
	if ok && rep.lost > 0 {
		r.fail("%d of %d notifications sent during the abuse lost", rep.lost, rep.acked)
	}
	if !a.alive() {
		r.fail("the agent died")
	}
	how := "answered " + strconv.Quote(reply.Error)
	if reply.Error == "" {
		how = "closed without an answer"
	}
	r.fig("a line without a newline", "of up to %s: the client wrote %s (socket buffers included) before %s; the daemon read %s in all (rchar) and %s after %s",
		mbOf(int(p.sockBytes)), kib(written), errWord(writeErr), kib(read), how, fine(answered))
	r.fig("idle clients held open", "%d (daemon descriptors %d → %d)", p.sockIdle, fd0, fdPeak)
	r.fig("status from a fresh connection during it", "max %s, median %s of %d (bound 2 s)", fine(maxDur(lat)), fine(median(lat)), len(lat))
	r.fig("agent peak RSS (VmHWM)", "%s (idle %s; bound %s)", mb(peak.hwm), mb(idle.now), mb(socketMaxRSS))
	r.fig("recovery after the abusers went", "%s to the descriptors before; status then in %s", ms(recov), fine(after))
	r.fig("a client that sends nothing", "dropped by the daemon after %s", ms(loneD))
	r.fig("notifications stored meanwhile", "%d acknowledged, %d lost", rep.acked, rep.lost)
	summarise("socket", "%s line read %s, %d idle clients: status max %s, recovered in %s, peak RSS %s",
		mbOf(int(p.sockBytes)), kib(read), p.sockIdle, ms(maxDur(lat)), ms(recov), mb(peak.hwm))
}

// dbSize is the size of the store's database file in dataDir: the file
// bbolt maps. (The journal beside it is 1 MiB and never mapped.)
func dbSize(dataDir string) int64 {
	fi, err := os.Stat(filepath.Join(dataDir, store.FileName))
	if err != nil {
		return 0
	}
	return fi.Size()
}

func kib(n int64) string {
	if n >= 10<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

func errWord(err error) string {
	switch {
	case err == nil:
		return "the end"
	case strings.Contains(err.Error(), "broken pipe"):
		return "EPIPE"
	case strings.Contains(err.Error(), "connection reset"):
		return "ECONNRESET"
	}
	return err.Error()
}

// fine is ms for durations that may be under a millisecond.
func fine(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return ms(d)
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
