package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/agent/config"
)

// The wear section (issue 18): what each subject makes the block device
// write per message, each on a fresh ext4 of its own on a loop device, read
// from the device's sector counter after a final syncfs. An SD card wears
// by what reaches it, whatever the file system above asked for.

// wearRate is one pace of the section; every 0 is a flood.
type wearRate struct {
	key   string
	label string
	every time.Duration
	n     func(sizes) int
}

var wearRates = []wearRate{
	{"1", "1/s", time.Second, func(s sizes) int { return s.wearSlow }},
	{"10", "10/s", 100 * time.Millisecond, func(s sizes) int { return s.wearMid }},
	{"100", "100/s", 10 * time.Millisecond, func(s sizes) int { return s.wearPaced }},
	{"flood", "flood", 0, func(s sizes) int { return s.wearFlood }},
}

// wearSpec is one subject of the section.
type wearSpec struct {
	key    string // figure keys: wear.KEY.RATE
	label  string
	kind   string
	window string // agent: commit_window written to its config; "" = the default (key absent)
	full   bool   // agent: starts on a store at its retain_records bound (every commit prunes)
}

// card is what the days figures assume: a 32 GB card written over 300
// times its capacity, a consumer card's endurance.
const (
	cardBytes = 32e9
	cardTimes = 300
)

// daysToWear is how long a card lasts at bytesPerMsg and rate msg/s.
func daysToWear(bytesPerMsg, rate float64) float64 {
	if bytesPerMsg <= 0 || rate <= 0 {
		return math.Inf(1)
	}
	return cardBytes * cardTimes / (bytesPerMsg * rate * 86400)
}

// wearSpecs are the subjects: the agent as configured by default, the
// agent without a commit window, the agent on a full store, and both
// baselines.
func (e *env) wearSpecs() []wearSpec {
	specs := []wearSpec{{key: "agent", label: "agent (default config)", kind: kindAgent}}
	if e.windows != nil {
		specs = append(specs, wearSpec{key: "agent0", label: "agent, commit_window 0", kind: kindAgent, window: "0s"})
	}
	specs = append(specs,
		wearSpec{key: "agentfull", label: fmt.Sprintf("agent, %s records stored (at retain_records)", num(float64(e.sz.wearFull), 0)), kind: kindAgent, full: true},
		wearSpec{key: "script", label: kindScript + " (append, no fsync)", kind: kindScript},
		wearSpec{key: "sub", label: kindSub + " to a file", kind: kindSub})
	return specs
}

// wearSection is one run of the section.
func wearSection(e *env) {
	specs := e.wearSpecs()
	if err := e.wearTemplate(); err != nil {
		e.fail("wear: prefill: %v", err)
		return
	}
	e.progress("wear: fdatasync of 4 KiB on a fresh loop ext4, %d times, 10 ms apart", e.sz.wearSyncs)
	if err := fdatasyncProbe(e); err != nil {
		e.fail("wear: fdatasync probe: %v", err)
	}
	for _, r := range wearRates {
		n := r.n(e.sz)
		switch {
		case r.every >= 100*time.Millisecond:
			// Slow paces: every subject at once, each on its own device,
			// or the section would take minutes.
			e.progress("wear: %d messages at %s, %d subjects side by side", n, r.label, len(specs))
			e.wearParallel(r, specs, n)
		case r.every > 0:
			// 100/s: the agents one at a time, their publish→stored timed
			// (the broker's debug log, as in the ingest section); the
			// baselines together.
			var base []wearSpec
			for _, s := range specs {
				if s.kind != kindAgent {
					base = append(base, s)
					continue
				}
				e.progress("wear: %d messages at %s, %s", n, r.label, s.label)
				e.wearParallel(r, []wearSpec{s}, n)
			}
			for _, w := range e.windows {
				s := wearSpec{key: "win" + w, label: "agent, commit_window " + w, kind: kindAgent, window: w}
				e.progress("wear: %d messages at %s, %s", n, r.label, s.label)
				e.wearParallel(r, []wearSpec{s}, n)
			}
			e.progress("wear: %d messages at %s, the baselines side by side", n, r.label)
			e.wearParallel(r, base, n)
		default:
			for _, s := range specs {
				e.progress("wear: flood of %d messages, %s", n, s.label)
				e.wearParallel(r, []wearSpec{s}, n)
			}
		}
	}
}

// wearSubject is one prepared subject: its device mounted where it
// writes, its session made, the process started and ready.
type wearSubject struct {
	spec wearSpec
	fs   *loopFS
	s    subject
	a    *agent // nil for the baselines
}

// prepare makes the subject of spec for rate, mounts its device and starts
// it.
func (e *env) wearPrepare(spec wearSpec, rate string) (*wearSubject, error) {
	name := "wear-" + spec.key + "-" + rate
	w := &wearSubject{spec: spec}
	switch spec.kind {
	case kindAgent:
		st := storeCfg{commitWindow: spec.window}
		if spec.full {
			st.retainRecords = e.sz.wearFull
		}
		a, err := e.newAgent(name, st)
		if err != nil {
			return nil, err
		}
		fs, err := newLoopFS(filepath.Join(a.dir, "disk.img"), a.dataDir)
		if err != nil {
			return nil, err
		}
		w.fs, w.a, w.s = fs, a, agentSubject{a}
		if spec.full {
			if err := copyStore(e.templates[e.sz.wearFull], a.dataDir); err != nil {
				w.close()
				return nil, err
			}
		}
	default:
		var fsub *fileSubject
		if spec.kind == kindScript {
			fsub = e.newScript(name)
		} else {
			fsub = e.newMosquittoSub(name)
		}
		mnt := filepath.Join(fsub.dir, "mnt")
		fs, err := newLoopFS(filepath.Join(fsub.dir, "disk.img"), mnt)
		if err != nil {
			return nil, err
		}
		w.fs, w.s = fs, fsub
		fsub.relocate(mnt)
	}
	if err := w.s.session(); err != nil {
		w.close()
		return nil, fmt.Errorf("%s session: %w", spec.label, err)
	}
	if err := w.s.start(); err != nil {
		w.close()
		return nil, err
	}
	if err := w.s.ready(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *wearSubject) close() {
	if p := w.s.process(); p != nil {
		p.kill()
	}
	if w.fs != nil {
		_ = w.fs.close()
	}
}

// wearResult is one subject's phase.
type wearResult struct {
	bytes   int64 // written to the device, first message → last stored + syncfs
	n       int
	commits uint64 // agent: commits in the phase
	// the agent's publish→stored (the broker has its PUBACK), 100/s only
	p50, p99 float64
}

// wearParallel runs specs side by side at rate r, n messages each, and
// records their figures.
func (e *env) wearParallel(r wearRate, specs []wearSpec, n int) {
	var ws []*wearSubject
	for _, s := range specs {
		w, err := e.wearPrepare(s, r.key)
		if err != nil {
			e.fail("wear %s, %s: %v", r.label, s.label, err)
			continue
		}
		ws = append(ws, w)
	}
	track := r.every == pacedEvery && len(ws) == 1 && ws[0].a != nil
	var trackers []*pubackTracker
	if track {
		a := ws[0].a
		tr := newPubackTracker(a.clientID, a.topic("notify"), n)
		trackers = append(trackers, tr)
		e.broker.setWatch(tr.line)
		if err := e.broker.debug(true); err != nil {
			e.fail("wear: broker debug log: %v", err)
			track = false
		}
	}
	results := make([]wearResult, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tr *pubackTracker
			if track {
				tr = trackers[0]
			}
			results[i], errs[i] = e.wearMeasure(w, r, n, tr)
		}()
	}
	wg.Wait()
	if track {
		e.broker.setWatch(nil)
		if err := e.broker.debug(false); err != nil {
			e.fail("wear: broker debug log off: %v", err)
		}
	}
	for i, w := range ws {
		if errs[i] != nil {
			e.fail("wear %s, %s: %v", r.label, w.spec.label, errs[i])
			w.close()
			continue
		}
		e.wearRecord(w.spec, r, results[i])
		if err := e.verifyEventually(w.s, e.id("wear-"+w.spec.key+"-"+r.key), n); err != nil {
			e.fail("wear %s, %s: %v", r.label, w.spec.label, err)
		}
		if err := w.s.stop(); err != nil {
			e.fail("wear %s, %s: %v", r.label, w.spec.label, err)
		}
		if err := w.s.dropSession(); err != nil {
			e.fail("wear %s, %s: %v", r.label, w.spec.label, err)
		}
		w.close()
	}
}

// wearMeasure publishes n messages to w at r and counts what reached its
// device from the first publish until all are stored and synced.
func (e *env) wearMeasure(w *wearSubject, r wearRate, n int, tr *pubackTracker) (wearResult, error) {
	res := wearResult{n: n, p50: math.NaN(), p99: math.NaN()}
	var commits0 uint64
	if w.a != nil {
		st, err := w.a.status()
		if err != nil {
			return res, err
		}
		if st.Ingest != nil {
			commits0 = st.Ingest.Commits
		}
	}
	c0, err := w.s.count()
	if err != nil {
		return res, err
	}
	b0, err := w.fs.written()
	if err != nil {
		return res, err
	}
	tag := e.id("wear-" + w.spec.key + "-" + r.key)
	pub, err := e.broker.pub(tag+"-pub", pubWindow)
	if err != nil {
		return res, err
	}
	defer pub.close()
	type pubDone struct {
		sent []time.Time
		err  error
	}
	done := make(chan pubDone, 1)
	go func() {
		if r.every == 0 {
			_, err := pub.flood(w.s.topic(), n, func(i int) []byte { return makePayload(tag, i, 0) })
			done <- pubDone{nil, err}
			return
		}
		sent, err := pub.paced(w.s.topic(), n, r.every, func(i int, at time.Time) []byte { return makePayload(tag, i, at.UnixNano()) })
		done <- pubDone{sent, err}
	}()
	if _, _, _, err := waitStored(w.s, w.s.process(), c0, n, "at "+r.label); err != nil {
		return res, err
	}
	pd := <-done
	if pd.err != nil {
		return res, pd.err
	}
	b1, err := w.fs.written()
	if err != nil {
		return res, err
	}
	res.bytes = b1 - b0
	if w.a != nil {
		st, err := w.a.status()
		if err != nil {
			return res, err
		}
		if st.Ingest != nil {
			res.commits = st.Ingest.Commits - commits0
		}
	}
	if tr != nil {
		deadline := time.Now().Add(5 * time.Second)
		for tr.ackedCount() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		tr.mu.Lock()
		var lat []float64
		for i := range n {
			if !tr.acked[i].IsZero() {
				lat = append(lat, float64(tr.acked[i].Sub(pd.sent[i]))/1e6)
			}
		}
		ok := tr.sends == n && tr.dups == 0 && len(lat) == n
		tr.mu.Unlock()
		if ok {
			res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
		}
	}
	return res, nil
}

// wearRecord adds one subject's phase to the report.
func (e *env) wearRecord(s wearSpec, r wearRate, res wearResult) {
	per := float64(res.bytes) / float64(res.n)
	if strings.HasPrefix(s.key, "win") {
		w := strings.TrimPrefix(s.key, "win")
		e.rep.fig("wear.win."+w+".bytes", "bytes to the device per message at 100/s, commit_window "+w, "B", 0).add(per)
		e.rep.fig("wear.win."+w+".percommit", "messages per commit at 100/s, commit_window "+w, "", 1).add(float64(res.n) / float64(max(res.commits, 1)))
		e.rep.fig("wear.win."+w+".p50", "publish→stored p50 at 100/s, commit_window "+w, "ms", 2).add(res.p50)
		e.wearLatencyFig("wear.win."+w+".p99", "publish→stored p99 at 100/s, commit_window "+w, w).add(res.p99)
		return
	}
	f := e.rep.fig("wear."+s.key+"."+r.key, "bytes to the device per message at "+r.label+", "+s.label, "B", 0)
	switch {
	case s.key == "agent0" && r.key == "100", s.key == "agent0" && r.key == "10", s.key == "agent" && r.key == "10":
		f.want("≤ 8,000 B", func(v float64) bool { return v <= 8000 })
	case s.key == "agent" && r.key == "100":
		f.want("≤ 1,000 B", func(v float64) bool { return v <= 1000 })
	case s.key == "agent" && r.key == "flood":
		f.want(fmt.Sprintf("≤ %d B (2× payload)", 2*payloadSize), func(v float64) bool { return v <= 2*payloadSize })
	}
	f.add(per)
	if s.kind == kindAgent {
		e.rep.fig("wearg."+s.key+".percommit."+r.key, "bytes to the device per commit at "+r.label+", "+s.label, "B", 0).
			add(float64(res.bytes) / float64(max(res.commits, 1)))
		e.rep.fig("wearg."+s.key+".msgpercommit."+r.key, "messages per commit at "+r.label+", "+s.label, "", 1).
			add(float64(res.n) / float64(max(res.commits, 1)))
		if r.key == "100" && !math.IsNaN(res.p99) {
			e.rep.fig("wear."+s.key+".p50", "publish→stored p50 at 100/s, "+s.label, "ms", 2).add(res.p50)
			win := ""
			if s.key == "agent0" {
				win = "0s"
			}
			e.wearLatencyFig("wear."+s.key+".p99", "publish→stored p99 at 100/s, "+s.label, win).add(res.p99)
		}
	}
	switch r.key {
	case "10":
		e.rep.fig("wearg."+s.key+".days.10", "days to write 300 × a 32 GB card at 10/s, "+s.label, "days", 0).add(daysToWear(per, 10))
	case "100":
		e.rep.fig("wearg."+s.key+".days.100", "days to write 300 × a 32 GB card at 100/s, "+s.label, "days", 0).add(daysToWear(per, 100))
	}
}

// wearLatencyFig is a publish→stored p99 figure whose target is the
// issue's: 2 × the same run's fdatasync p99 + 1 ms, plus the commit window
// (window "" = the agent's default, whose value the bench reads from
// -default-window).
func (e *env) wearLatencyFig(key, label, window string) *figure {
	f := e.rep.fig(key, label, "ms", 2)
	if window == "" {
		window = e.defaultWindow
	}
	wd, err := time.ParseDuration(window)
	if err != nil {
		return f
	}
	fs := e.rep.fig("wear.fdatasync.p99", "fdatasync p99 of a 4 KiB write on the loop ext4", "ms", 2)
	text := "≤ 2 × fdatasync p99 + 1 ms"
	if wd > 0 {
		text = "≤ " + window + " + 2 × fdatasync p99 + 1 ms"
	}
	return f.want(text, func(v float64) bool {
		s := fs.valid()
		return len(s) > 0 && v <= float64(wd)/1e6+2*median(s)+1
	})
}

// fdatasyncProbe times a 4 KiB write + fdatasync of one block (already
// allocated: a plain data write and the device's cache flush) on a fresh
// loop ext4, every 10 ms: the disk's own floor under a commit's latency.
func fdatasyncProbe(e *env) error {
	dir := e.sub("wear-fdatasync")
	fs, err := newLoopFS(filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt"))
	if err != nil {
		return err
	}
	defer fs.close()
	ms, err := timeSyncs(fs.mnt, e.sz.wearSyncs, pacedEvery)
	if err != nil {
		return err
	}
	e.rep.fig("wear.fdatasync.p50", "fdatasync p50 of a 4 KiB write on the loop ext4", "ms", 2).add(percentile(ms, 50))
	e.rep.fig("wear.fdatasync.p99", "fdatasync p99 of a 4 KiB write on the loop ext4", "ms", 2).add(percentile(ms, 99))
	return nil
}

// timeSyncs times n 4 KiB overwrites + fdatasync of one block of a file
// in dir (allocated first: a plain data write and the device's cache
// flush), one every `every`, and returns each one's ms.
func timeSyncs(dir string, n int, every time.Duration) ([]float64, error) {
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	if _, err := f.WriteAt(block, 0); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	var ms []float64
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		block[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		ms = append(ms, float64(time.Since(t))/1e6)
	}
	return ms, nil
}

// wearTemplate makes, once, the store the "full" agent starts on.
func (e *env) wearTemplate() error {
	if _, ok := e.templates[e.sz.wearFull]; ok {
		return nil
	}
	return makeTemplate(e, e.sz.wearFull)
}

// wearGrid is the section's own table: bytes per message by subject and
// rate, per commit, and how long a card lasts.
func wearGrid(e *env) [][]string {
	var rows [][]string
	for _, s := range e.wearSpecs() {
		row := []string{s.label}
		for _, r := range wearRates {
			row = append(row, e.rep.get("wear."+s.key+"."+r.key).compactCell())
		}
		if s.kind == kindAgent {
			row = append(row, e.rep.get("wearg."+s.key+".percommit.100").compactCell())
		} else {
			row = append(row, "—")
		}
		row = append(row, e.rep.get("wearg."+s.key+".days.10").compactCell(), e.rep.get("wearg."+s.key+".days.100").compactCell())
		rows = append(rows, row)
	}
	return rows
}

// wearWindowRows: bytes and publish→stored at 100/s by commit window.
func wearWindowRows(e *env) [][]string {
	var rows [][]string
	for _, w := range e.windows {
		k := "wear.win." + w
		p99 := e.rep.get(k + ".p99")
		row := []string{w, e.rep.get(k + ".bytes").compactCell(), e.rep.get(k + ".percommit").compactCell(),
			e.rep.get(k + ".p50").compactCell(), p99.compactCell()}
		if p99 != nil {
			row = append(row, p99.target, p99.verdict())
		} else {
			row = append(row, "—", "—")
		}
		rows = append(rows, row)
	}
	return rows
}

// defaultCommitWindow is the agent's [store] commit_window default, for
// the latency target of the default-config agent.
const defaultCommitWindow = config.DefaultCommitWindow
