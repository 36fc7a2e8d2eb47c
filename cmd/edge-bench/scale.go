package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// prefillBatch is how many records one prefill commit appends: big
// batches make a million records a matter of seconds.
const prefillBatch = 10_000

// bigRetention keeps every record of the scale cases: retain_records above
// the largest case plus its drain; retain_bytes for ~1.1 M records of
// ~190 bytes (payload + topic); max_db_size at least twice retain_bytes,
// as the config check wants (bbolt needs free room beside the data).
func bigRetention(records int) storeCfg {
	return storeCfg{retainRecords: records, retainBytes: "400MiB", maxDBSize: "1GiB"}
}

// prefill makes, once per bench, a store file for each prefilled size:
// handled ~150-byte notifications appended through the store package, the
// way the agent stores them but prefillBatch per commit.
func prefill(e *env) error {
	for _, n := range []int{e.sz.scaleMid, e.sz.scaleBig} {
		if _, ok := e.templates[n]; ok {
			continue
		}
		if err := makeTemplate(e, n); err != nil {
			return err
		}
	}
	return nil
}

// makeTemplate prefills the template store of n records, e.templates[n].
func makeTemplate(e *env, n int) error {
	dir := filepath.Join(e.dir, "templates", fmt.Sprint(n))
	fmt.Printf("[%6.1fs] prefilling a store with %s records\n", time.Since(e.started).Seconds(), num(float64(n), 0))
	t0 := time.Now()
	db, err := store.Open(dir, &store.Options{RetainRecords: n + 1, RetainBytes: 1 << 30, MaxSize: 1 << 30}) // 1M records take 237 MB
	if err != nil {
		return err
	}
	topic := "/sys/bench-prefill/thing/push/notify"
	now := time.Now()
	msgs := make([]store.Message, 0, prefillBatch)
	for i := 0; i < n; i += prefillBatch {
		msgs = msgs[:0]
		for j := i; j < min(i+prefillBatch, n); j++ {
			msgs = append(msgs, store.Message{ReceivedAt: now, Topic: topic, Payload: makePayload("prefill", j, now.UnixNano())})
		}
		if _, err := db.Append(msgs); err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Close(); err != nil {
		return err
	}
	e.templates[n] = filepath.Join(dir, store.FileName)
	st, _ := os.Stat(e.templates[n])
	fmt.Printf("          %s records in %v, %.1f MB\n", num(float64(n), 0), time.Since(t0).Round(time.Millisecond), float64(st.Size())/1e6)
	return nil
}

// copyStore puts a prefilled store file into dataDir.
func copyStore(src, dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dataDir, store.FileName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// scaleCase is one store size the agent starts on and drains into.
type scaleCase struct {
	key     string
	records int // prefilled
	label   string
	cfg     storeCfg
}

// scaleSection is issue item 4 for one run: start-up and backlog drain
// with 0, scaleMid and scaleBig stored records, store bytes (database and
// journal) per stored message, and what retention does at its bound. The
// empty case is the ingest section's agent drain when that ran in this run
// (same broker, same size, same method).
func scaleSection(e *env, empty *drainResult) {
	n := e.sz.scaleDrain
	big := e.sz.scaleBig + n + 1000
	cases := []scaleCase{
		{"0", 0, "0", bigRetention(big)},
		{"mid", e.sz.scaleMid, num(float64(e.sz.scaleMid), 0), bigRetention(big)},
		{"big", e.sz.scaleBig, num(float64(e.sz.scaleBig), 0), bigRetention(big)},
	}
	results := map[string]drainResult{}
	if empty != nil && empty.n == n {
		results["0"] = *empty
		cases = cases[1:]
	}
	for _, c := range cases {
		e.progress("scale: start-up and backlog drain of %s with %s stored records", num(float64(n), 0), c.label)
		r, _, err := scaleDrain(e, "scale-"+c.key, c.records, c.cfg, n)
		if err != nil {
			e.fail("scale %s: %v", c.label, err)
			continue
		}
		results[c.key] = r
	}
	for _, c := range []scaleCase{{"0", 0, "0", storeCfg{}}, {"mid", e.sz.scaleMid, num(float64(e.sz.scaleMid), 0), storeCfg{}},
		{"big", e.sz.scaleBig, num(float64(e.sz.scaleBig), 0), storeCfg{}}} {
		st := e.rep.fig("scale.startup."+c.key, fmt.Sprintf("start-up to subscribed with %s stored records", c.label), "ms", 1)
		rt := e.rep.fig("scale.rate."+c.key, fmt.Sprintf("backlog drain of %s into %s stored records", num(float64(n), 0), c.label), "msg/s", 0)
		by := e.rep.fig("scale.bytes."+c.key, fmt.Sprintf("store bytes per stored message, %s + %s records (database and journal files ÷ records)", c.label, num(float64(n), 0)), "B", 0)
		if c.key == "big" {
			st.want("≤ 1 s", func(v float64) bool { return v <= 1000 })
		}
		r, ok := results[c.key]
		if !ok {
			continue
		}
		st.add(ms(r.startup))
		rt.add(r.rate())
		if r.total > 0 {
			by.add(float64(r.storeBytes) / float64(r.total))
		}
	}
	ratio := e.rep.fig("scale.ratio.big", fmt.Sprintf("drain rate with %s stored ÷ with an empty store (same run)", num(float64(e.sz.scaleBig), 0)), "×", 2).
		want("≥ 0.8×", func(v float64) bool { return v >= 0.8 })
	if b, ok := results["big"]; ok {
		if z, ok := results["0"]; ok {
			ratio.add(b.rate() / z.rate())
		}
	}

	// Retention at the bound: a store already holding retain_records
	// records takes another backlog; every commit must drop as many old
	// records as it adds.
	bound := e.sz.scaleMid
	e.progress("scale: retention at the bound: %s stored, retain_records %s, drain of %s", num(float64(bound), 0), num(float64(bound), 0), num(float64(n), 0))
	r, before, err := scaleDrain(e, "scale-bound", bound, storeCfg{retainRecords: bound}, n)
	if err != nil {
		e.fail("scale at the bound: %v", err)
		return
	}
	e.rep.fig("bound.rate", fmt.Sprintf("at the bound: backlog drain of %s into a full store (retain_records %s)", num(float64(n), 0), num(float64(bound), 0)), "msg/s", 0).add(r.rate())
	e.rep.fig("bound.ratio", "at the bound: drain rate ÷ empty store's (same run)", "×", 2).add(r.rate() / results["0"].rate())
	e.rep.fig("bound.before", "at the bound: store files (database and journal) before the drain", "MB", 1).add(float64(before) / 1e6)
	e.rep.fig("bound.after", "at the bound: store files (database and journal) after the drain", "MB", 1).add(float64(r.storeBytes) / 1e6)
	e.rep.fig("bound.total", "at the bound: inbox total after the drain", "records", 0).
		want(fmt.Sprintf("= %s", num(float64(bound), 0)), func(v float64) bool { return int(v) == bound }).add(float64(r.total))
}

// scaleDrain copies the prefilled store of `records` (none for 0) into a
// new agent with cfg and drains n messages into it: the session's start
// is the start-up figure. It also returns the store's size on disk before
// the drain.
func scaleDrain(e *env, name string, records int, cfg storeCfg, n int) (drainResult, int64, error) {
	a, err := e.newAgent(name, cfg)
	if err != nil {
		return drainResult{}, 0, err
	}
	if records > 0 {
		src, ok := e.templates[records]
		if !ok {
			return drainResult{}, 0, fmt.Errorf("no prefilled store of %d records", records)
		}
		if err := copyStore(src, a.dataDir); err != nil {
			return drainResult{}, 0, err
		}
	}
	var before int64
	r, err := e.drain(agentSubject{a}, e.id(name), n, func() error {
		before = a.storeBytes()
		return nil
	})
	return r, before, err
}
