package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// powerRelays: a relay driven by toggles (each execution flips it, so an
// execution twice shows in its state) and one driven by explicit sets.
const powerRelays = `
[[relay]]
name = "tog"
pin = "GPIO5"
power_on = "restore"

[[relay]]
name = "set"
pin = "GPIO6"
power_on = "restore"
`

// powerStore: every message its own commit. With the default commit
// window a batch gathers plain notifications until the next command (one
// in eight here) and goes to bbolt whole, so no kill would land in the
// journal. Committed at once, each plain notification is a small commit
// to the journal and each command a bbolt commit that takes the journaled
// ones along: kills land in both files' writes and syncs.
const powerStore = `
[store]
commit_window = "0s"
`

// runPower streams numbered QoS 1 notifications with a command every eighth
// message and SIGKILLs the agent p.kills times: at random instants (some
// during start-up, while the store checks its file), and inside the commit
// path through strace (some followed by a power cut's tear of what was not
// synced). The strace runs aim in turn at the file fewer kills have landed
// in: the database (commands flowing) or the journal (plain notifications
// only, while that run lasts). Then: every acknowledged message is stored,
// no command id executed twice, the relays are in the state the executed
// commands imply, every start opened the store and passed its check, and
// kills landed in both files.
func runPower(e *env, p params, r *result) {
	if !needTools(r, false, "strace") {
		return
	}
	rnd := rng(p, "power")
	m := e.scenarioBroker(r, "power", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("power")
	cfg := newAgentConfig("faults-power", m.URL)
	cfg.extra = powerRelays + powerStore
	cfgPath, err := e.writeConfig(dir, cfg)
	if err != nil {
		r.fail("%v", err)
		return
	}
	notify := cfg.topic("notify")
	replyTopic := cfg.topic("reply")
	rl, err := e.replies(m.URL, replyTopic, "faults-power-replies")
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer rl.close()

	// A command every eighth message; set values come from the seed.
	setOn := map[int]bool{}
	for k := 0; k < 1<<16; k++ {
		setOn[k] = rnd.IntN(2) == 0
	}
	s := e.newStream(m.URL, "faults-power-pub", notify, "power", 2*time.Millisecond)
	// plain: while set, the stream sends plain notifications only, which
	// the agent commits to its journal (see kindJournal).
	var plain atomic.Bool
	s.payload = func(i int) []byte {
		if i%8 != 7 || plain.Load() {
			return textOrBinary("power", i)
		}
		k := i / 8
		if k%2 == 0 {
			return []byte(fmt.Sprintf(`{"id":"tog-%d","method":"relay.toggle","params":{"relay":"tog"}}`, k))
		}
		return []byte(fmt.Sprintf(`{"id":"set-%d","method":"relay.set","params":{"relay":"set","on":%v}}`, k, setOn[k%(1<<16)]))
	}

	var runs []*agentProc
	first, err := e.startAgent(cfgPath, nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if _, err := waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.Connected }); err != nil {
		r.fail("first start: %v\n%s", err, tail(first.Log(), 20))
		first.kill()
		return
	}
	runs = append(runs, first)
	s.start(0)
	cur := first

	var (
		randomKills, preOpen, syscallKills, fallback, torn int
		straceRuns, bootsChecked                           int
		expectBoot                                         map[string]store.RelayState
		phases, tornPhases                                 = map[string]int{}, map[string]int{}
		traceFile, injected                                string // the strace run's
		storeOpens                                         int
		prevHeld                                           map[string]bool // payloads after the last kill
		checkErrs, goneErrs                                int
	)
	scratch := e.sub("power-scratch")
	const (
		kindRandom  = iota // a random instant once the store is open
		kindStartup        // during start-up: the store's check and open
		kindSyscall        // under strace, at an injected call in a commit, with commands flowing
		// kindJournal: as kindSyscall, while the stream sends plain
		// notifications only. A command's commit, the dispatcher's two per
		// command and the outbox's are all bbolt's: with commands flowing
		// about one call in ten is the journal's.
		kindJournal
	)
	kind := kindRandom
	for k := 0; k < p.kills; k++ {
		switch kind {
		case kindRandom:
			if !cur.waitLog("store open", 10*time.Second) {
				r.fail("run %d: no \"store open\" within 10 s:\n%s", len(runs), tail(cur.Log(), 10))
			}
			time.Sleep(time.Duration(30+rnd.IntN(700)) * time.Millisecond)
			cur.kill()
			randomKills++
		case kindStartup:
			time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond)
			cur.kill()
			randomKills++
			preOpen++
		case kindSyscall, kindJournal:
			select {
			case <-cur.done:
			case <-time.After(6 * time.Second):
				cur.kill()
				fallback++
			}
		}
		if !cur.killedBySIGKILL() {
			r.fail("run %d ended by itself (%v), not by SIGKILL:\n%s", len(runs), cur.state, tail(cur.Log(), 15))
		}
		opened := strings.Contains(cur.Log(), "store open")
		if opened {
			storeOpens++
		} else if kind == kindRandom {
			r.fail("run %d never reached \"store open\":\n%s", len(runs), tail(cur.Log(), 10))
		}
		how := "" // how this kill went, for a failure below
		if kind == kindSyscall || kind == kindJournal {
			straceRuns++
			ck, err := parseTrace(traceFile, injected)
			if err != nil {
				r.fail("trace: %v", err)
			}
			if ck.landed {
				syscallKills++
				phases[ck.phase]++
				how = fmt.Sprintf(" (killed in a %s of %s, trace %s", ck.phase, filepath.Base(ck.file), traceFile)
				// Half of the kills become power cuts: in each file, the
				// writes since its last completed sync and the write the
				// kill interrupted torn.
				if cut := ck.powerCut(); len(cut) > 0 && rnd.IntN(2) == 0 {
					n, err := tearFiles(cfg.dataDir, cut, rnd)
					if err != nil {
						r.fail("tear: %v", err)
					}
					if n > 0 {
						torn++
						tornPhases[ck.phase]++
						how += fmt.Sprintf(", then %d unsynced writes torn", n)
					}
				}
				how += ")"
			} else {
				randomKills++
			}
		}
		// The files must pass the store's check after every kill, and hold
		// every record they held after the kill before: what a start took
		// in as stored, a later kill or power cut must not take away.
		held := map[string]bool{}
		recorded, err := checkStoreOffline(cfg.dataDir, scratch, func(rec store.Record) error {
			held[string(rec.Payload)] = true
			return nil
		})
		if err != nil {
			checkErrs++
			r.fail("after kill %d%s the store fails its check: %v", k+1, how, err)
		} else {
			if gone, first := missing(prevHeld, held); gone > 0 {
				goneErrs++
				r.fail("after kill %d%s %d records the store held after kill %d are gone (first: %s)",
					k+1, how, gone, k, control.PayloadPrefix([]byte(first), 40))
			}
			prevHeld = held
		}
		// The run just killed came up with its relays at the state the
		// previous one left recorded (power_on = restore), straight away.
		if checkBoot(r, len(runs), cur.Log(), expectBoot) {
			bootsChecked++
		}
		expectBoot = recorded

		// The next run, and how it will be killed; the last one is not.
		kind = kindRandom
		if k+1 < p.kills {
			switch x := rnd.Float64(); {
			case x < 0.08:
				kind = kindStartup
			case x < 0.4:
				// Aim at the file fewer kills have landed in so far.
				kind = kindSyscall
				if landedIn(phases, true) <= landedIn(phases, false) {
					kind = kindJournal
				}
			}
		}
		plain.Store(kind == kindJournal)
		var wrap []string
		if kind == kindSyscall || kind == kindJournal {
			injected = []string{"pwrite64", "fdatasync"}[rnd.IntN(2)]
			traceFile = filepath.Join(scratch, fmt.Sprintf("kill-%d.trace", k+2)) // the kill that ends it
			wrap = straceArgs(traceFile, injected, 2+rnd.IntN(60))
		}
		next, err := e.startAgent(cfgPath, nil, wrap...)
		if err != nil {
			r.fail("%v", err)
			break
		}
		runs = append(runs, next)
		cur = next
		e.logf("power: kill %d/%d done, %d acked so far", k+1, p.kills, s.ackedLen())
	}
	s.finish()
	// The final run, the last in the list, must take everything.
	cur.waitLog("store open", 10*time.Second)
	cur.waitLog("pin=GPIO6", 10*time.Second)
	if checkBoot(r, len(runs), cur.Log(), expectBoot) {
		bootsChecked++
	}
	if strings.Contains(cur.Log(), "store open") {
		storeOpens++
	}
	acked := s.ackedCopy()
	rep, err := waitAllStored(cfg.dataDir, acked, 60*time.Second, 10*time.Second)
	if err != nil {
		r.fail("final run: %v\n%s", err, tail(cur.Log(), 20))
		return
	}
	tally(rep)
	if _, err := waitStatus(cfg.dataDir, 30*time.Second, func(s status) bool {
		return s.Inbox.Pending == 0 && s.Outbox.Pending == 0
	}); err != nil {
		r.fail("commands not all executed and answered: %v", err)
	}
	recs, err := export(cfg.dataDir)
	if err != nil {
		r.fail("export: %v", err)
		return
	}
	final, err := getStatus(cfg.dataDir)
	if err != nil {
		r.fail("status: %v", err)
	}
	// Give the last replies a moment to reach the subscriber.
	time.Sleep(500 * time.Millisecond)
	replies, _ := rl.snapshot()

	var logs []string
	for _, run := range runs {
		logs = append(logs, run.Log())
	}
	cc := checkCommands(recs, replies, logs, final)
	for _, f := range cc.failures {
		r.fail("%s", f)
	}

	if err := cur.term(10 * time.Second); err != nil {
		r.fail("final SIGTERM: %v", err)
	}
	if _, err := checkStoreOffline(cfg.dataDir, scratch, nil); err != nil {
		r.fail("after the final stop the store fails its check: %v", err)
	}
	if rep.lost > 0 {
		r.fail("%d of %d acknowledged messages lost (first: %s)", rep.lost, rep.acked, rep.firstLost)
	}
	kills := randomKills + syscallKills
	if kills < p.kills {
		r.fail("only %d kills landed, want %d", kills, p.kills)
	}
	// Both files must have been under the kills (the runs aim at each in
	// turn): none in one means its traffic no longer reaches it.
	if syscallKills >= 8 {
		for _, journal := range []bool{true, false} {
			if landedIn(phases, journal) == 0 {
				r.fail("none of %d kills inside a commit landed in a write or sync of the %s", syscallKills, map[bool]string{true: "journal", false: "database"}[journal])
			}
		}
	}
	var ph []string
	for _, name := range append(killPhases, "other") {
		if n := phases[name]; n > 0 || name != "other" {
			ph = append(ph, fmt.Sprintf("%s %d (%d torn)", name, n, tornPhases[name]))
		}
	}
	r.fig("kills", "%d (%d at random instants, %d of them during start-up; %d inside a commit)", kills, randomKills, preOpen, syscallKills)
	r.fig("kills inside a commit", "%s; %d then torn as by a power cut", strings.Join(ph, ", "), torn)
	if n := straceRuns - syscallKills; n > 0 {
		r.note("%d of %d runs under strace were not killed by the injection (%d did not reach their Nth call within 6 s) and count as random kills", n, straceRuns, fallback)
	}
	r.fig("runs that opened the store and passed its check", "%d of %d (the others killed during start-up)", storeOpens, len(runs))
	r.fig("offline checks after each kill", "%d failed; %d found a record gone that the check before held", checkErrs, goneErrs)
	r.fig("boots with each relay line straight at its recorded state", "%d (every run that got as far as its relays)", bootsChecked)
	r.fig("messages acknowledged by the broker", "%d (%d publishes not acknowledged)", rep.acked, s.failed)
	r.fig("acknowledged messages lost", "%d", rep.lost)
	r.fig("duplicates stored", "%d", rep.dups)
	r.fig("commands executed", "%d (%d toggles, %d sets)", cc.executed, cc.toggles, cc.sets)
	r.fig("command ids executed twice", "%d", cc.twice)
	r.fig("replies", "%d (%d resent for redelivered ids)", len(replies), cc.resent)
	r.fig("final relays", "tog=%v (want %v), set=%v (want %v)", final.Relays["tog"].On, cc.wantTog, final.Relays["set"].On, cc.wantSet)
	summarise("kills", "%d (%d random, %d in commit path: %d journal, %d database; %d torn)",
		kills, randomKills, syscallKills, landedIn(phases, true), landedIn(phases, false), torn)
	summarise("acked", "%d", rep.acked)
	summarise("lost", "%d", rep.lost)
	summarise("dups", "%d", rep.dups)
	summarise("commands", "%d", cc.executed)
	summarise("twice", "%d", cc.twice)
}

// missing counts the payloads in before that are not in after, and names
// the first in sorted order.
func missing(before, after map[string]bool) (int, string) {
	var gone []string
	for p := range before {
		if !after[p] {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	if len(gone) == 0 {
		return 0, ""
	}
	return len(gone), gone[0]
}

// landedIn counts the kills in phases that landed in the journal's calls
// (journal true) or in the database's.
func landedIn(phases map[string]int, journal bool) int {
	n := 0
	for _, ph := range killPhases {
		if strings.HasPrefix(ph, "journal ") == journal {
			n += phases[ph]
		}
	}
	return n
}

// powerPins are the relays' lines (powerRelays); active high.
var powerPins = map[string]string{"tog": "GPIO5", "set": "GPIO6"}

// checkBoot checks a run's first level of each relay line against the
// state recorded before it started. It reports whether the run got as far
// as setting its lines up.
func checkBoot(r *result, run int, log string, recorded map[string]store.RelayState) bool {
	checked := false
	for name, pin := range powerPins {
		m := regexp.MustCompile(`msg="sim gpio" part=hw pin=` + pin + ` high=(true|false) initial=(true|false)`).FindStringSubmatch(log)
		if m == nil {
			continue
		}
		checked = true
		want := recorded[name].On
		if m[2] != "true" || (m[1] == "true") != want {
			r.fail("run %d: relay %s's line first went high=%s initial=%s; recorded on=%v: it must come up there directly", run, name, m[1], m[2], want)
		}
	}
	return checked
}

// commandCheck is what the inbox, the replies and the logs say about the
// commands.
type commandCheck struct {
	executed, toggles, sets, twice, resent int
	wantTog, wantSet                       bool
	failures                               []string
}

var reSwitched = regexp.MustCompile(`msg="relay switched" part=command relay=(\w+) on=(true|false) .*id=(\S+)`)

func checkCommands(recs []control.Record, replies []map[string]any, logs []string, final status) commandCheck {
	var cc commandCheck
	fail := func(format string, args ...any) {
		if len(cc.failures) < 10 {
			cc.failures = append(cc.failures, fmt.Sprintf(format, args...))
		}
	}
	// Execution order: the first stored copy of each id, in seq order (one
	// dispatcher executes pending records oldest first).
	type cmd struct {
		id     string
		toggle bool
		on     bool // set: the value asked for; toggle: the state it must produce
	}
	seen := map[string]bool{}
	var order []cmd
	tog := false
	for _, rec := range recs {
		b, _ := rec.Bytes()
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		var v struct {
			ID     string `json:"id"`
			Method string `json:"method"`
			Params struct {
				On *bool `json:"on"`
			} `json:"params"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			fail("stored command %d is not JSON: %v", rec.Seq, err)
			continue
		}
		if seen[v.ID] {
			continue
		}
		seen[v.ID] = true
		switch v.Method {
		case "relay.toggle":
			tog = !tog
			order = append(order, cmd{id: v.ID, toggle: true, on: tog})
			cc.toggles++
		case "relay.set":
			order = append(order, cmd{id: v.ID, on: *v.Params.On})
			cc.sets++
			cc.wantSet = *v.Params.On
		}
	}
	cc.wantTog = tog
	cc.executed = len(order)

	// Each id: at least one reply, every reply the same, ok, and the state
	// its position in the order implies. A toggle executed twice shifts
	// every later toggle's state.
	by := byID(replies)
	for _, c := range order {
		rs := by[c.id]
		if len(rs) == 0 {
			fail("command %s executed but never answered", c.id)
			continue
		}
		cc.resent += len(rs) - 1
		for _, r := range rs[1:] {
			if !reflect.DeepEqual(r, rs[0]) {
				fail("command %s answered differently: %v then %v", c.id, rs[0], r)
				break
			}
		}
		res, _ := rs[0]["result"].(map[string]any)
		if rs[0]["ok"] != true || res["on"] != c.on {
			fail("command %s: reply %v, want ok with on=%v", c.id, rs[0], c.on)
		}
	}
	// The agents' logs: a second "relay switched" for one id is a second
	// execution, whatever the replies say.
	switched := map[string]int{}
	for _, l := range logs {
		for _, m := range reSwitched.FindAllStringSubmatch(l, -1) {
			switched[m[3]]++
		}
	}
	var twice []string
	for id, n := range switched {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	sort.Strings(twice)
	cc.twice = len(twice)
	if len(twice) > 0 {
		fail("command ids executed more than once: %v", twice)
	}
	if final.Relays["tog"].On != cc.wantTog {
		fail("relay tog is on=%v after %d toggles, want %v", final.Relays["tog"].On, cc.toggles, cc.wantTog)
	}
	if cc.sets > 0 && final.Relays["set"].On != cc.wantSet {
		fail("relay set is on=%v, want %v (the last set executed)", final.Relays["set"].On, cc.wantSet)
	}
	return cc
}
