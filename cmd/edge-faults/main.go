// Command edge-faults is the fault suite of edge-agent: it runs the real
// agent binary against real mosquitto brokers and breaks things the way the
// field does — SIGKILL at random instants and inside the commit path, broker
// crashes and outages, network partitions in network namespaces, a full
// loop-mounted ext4, hostile payloads, messages of tens of MB and retained
// commands, a flood of large messages, an abused control socket, broken
// TLS, sinks across SIGKILLs and a sink's target down — then checks each
// guarantee of docs/design.md#guarantees and prints the figures.
//
// `make faults` runs the bounded version (CI); `make faults SOAK=30m` runs
// each scenario longer. Every random choice comes from -seed, which is
// printed, so a failing run can be replayed with the same seed.
//
// It needs root (network namespaces, loop mounts), mosquitto,
// mosquitto_passwd, ip (iproute2), nft (nftables), strace, mkfs.ext4 and
// mount; a missing one fails its scenario, it never skips (.ci/run installs
// them).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// result is what one scenario found.
type result struct {
	name   string
	took   time.Duration
	errs   []string
	figs   [][2]string // ordered key, value
	notes  []string
	panicd bool
}

func (r *result) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *result) fig(key string, format string, args ...any) {
	r.figs = append(r.figs, [2]string{key, fmt.Sprintf(format, args...)})
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// params are the scenario sizes: bounded for CI, longer with -soak.
type params struct {
	seed        uint64
	soak        time.Duration
	kills       int           // power: SIGKILLs
	outage      time.Duration // broker unreachable
	partition   time.Duration // network partition
	spreadN     int           // agents measuring reconnect spread
	brokerDown  time.Duration // broker down before the spread measurement
	hostileRand int           // generated hostile payloads on top of the fixed ones
	oversizeN   int           // oversize: messages over max_message_size
	oversizeSz  int           // oversize: their size in bytes
	floodN      int           // bigflood: messages just under max_message_size
	floodSize   int           // bigflood: their size in bytes
	sockBytes   int64         // socket: a request line without a newline
	sockIdle    int           // socket: idle clients held open
	sinkKills   int           // sinks: SIGKILLs with a file and an http sink
	sinkDown    time.Duration // sinks: the http sink's target answering 503
}

type scenario struct {
	name string
	what string
	run  func(e *env, p params, r *result)
}

var scenarios = []scenario{
	{"power", "SIGKILL at random instants and inside the commit path while notifications and commands stream", runPower},
	{"sinks", "a file and an http sink across SIGKILLs, then the http target down (503) for a while", runSinks},
	{"broker", "broker restarted and crashed (with persistence) during streams", runBrokerRestarts},
	{"outage", "broker unreachable for a long time, then back", runOutage},
	{"spread", "reconnect spread of many agents after a broker restart", runSpread},
	{"partition", "network partition in namespaces with nftables: half-open detected, queue delivered after heal", runPartition},
	{"diskfull", "data_dir on a small loop-mounted ext4, filled up and freed, with a SIGKILL while full", runDiskFull},
	{"hostile", "hostile payloads through the broker", runHostile},
	{"oversize", "messages of tens of MB, over max_message_size, beside a normal stream", runOversize},
	{"retained", "a retained relay.set delivered at each subscription", runRetained},
	{"bigflood", "a flood of messages just under max_message_size", runBigFlood},
	{"socket", "the control socket abused: a line without a newline, idle clients", runSocket},
	{"tls", "broken TLS: expired, wrong host, self-signed, rejected client certificate, TLS 1.1 only", runTLS},
}

func main() {
	var (
		agentBin = flag.String("agent", "bin/edge-agent", "the edge-agent binary under test")
		seed     = flag.Uint64("seed", 0, "seed for every random choice (0: from the clock; printed)")
		soak     = flag.Duration("soak", 0, "soak: run each scenario about this long (e.g. 30m) instead of the bounded CI sizes")
		only     = flag.String("only", "", "comma-separated scenarios to run (default all): "+names())
		kills    = flag.Int("kills", 0, "power: number of SIGKILLs (default 50, more with -soak)")
		keep     = flag.Bool("keep", false, "keep the work directory (logs, databases) even when everything passed")
		verbose  = flag.Bool("v", false, "log progress")
	)
	flag.Parse()
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	p := params{seed: *seed, soak: *soak, kills: 50, outage: 2 * time.Minute, partition: 25 * time.Second,
		spreadN: 16, brokerDown: 4 * time.Second, hostileRand: 1000,
		oversizeN: 5, oversizeSz: 20_000_000, floodN: 200, floodSize: 900 << 10, sockBytes: 8 << 20, sockIdle: 200,
		sinkKills: 5, sinkDown: 5 * time.Second}
	if *soak > 0 {
		// Each scenario gets a share of the soak; the power scenario about
		// a third, at ~0.35 s per kill (measured).
		p.kills = max(p.kills, int(soak.Seconds()*0.3/0.35))
		p.outage = max(5*time.Minute, *soak/6)
		p.partition = max(2*time.Minute, *soak/10)
		p.spreadN = 40
		p.brokerDown = 20 * time.Second
		p.hostileRand = 20000
		p.oversizeN, p.oversizeSz = 20, 50_000_000
		p.floodN = 400 // 360 MB: under the 400 MiB retain_bytes the scenario sets
		p.sockBytes, p.sockIdle = 600<<20, 1000
		p.sinkKills, p.sinkDown = max(p.sinkKills, int(soak.Seconds()*0.05/2)), 30*time.Second // ~2 s per kill
	}
	if *kills > 0 {
		p.kills = *kills
	}

	bin, err := filepath.Abs(*agentBin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "edge-faults: agent binary: %v (make build)\n", err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "edge-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pki, err := agenttest.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	e := &env{agentBin: bin, dir: dir, pki: pki, verbose: *verbose}

	// SIGINT/SIGTERM: kill what we started, keep the directory.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		e.killAll()
		cleanupNetns()
		fmt.Fprintf(os.Stderr, "edge-faults: interrupted; work directory %s\n", dir)
		os.Exit(130)
	}()

	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for n := range want {
		if !known(n) {
			fmt.Fprintf(os.Stderr, "edge-faults: unknown scenario %q (known: %s)\n", n, names())
			os.Exit(2)
		}
	}

	fmt.Printf("edge-faults: seed %d (replay: -seed %d)%s; agent %s; work dir %s\n",
		p.seed, p.seed, soakNote(p), bin, dir)
	start := time.Now()

	// Scenarios run one at a time, so that their timings are figures,
	// except the long and idle outage.
	var results []*result
	var bg []*result
	var wg sync.WaitGroup
	run := func(s scenario) *result {
		r := &result{name: s.name}
		t0 := time.Now()
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.fail("panic: %v", v)
					r.panicd = true
				}
			}()
			s.run(e, p, r)
		}()
		r.took = time.Since(t0)
		status := "ok"
		if len(r.errs) > 0 {
			status = "FAIL"
		}
		fmt.Printf("--- %s: %s (%v)\n", s.name, status, r.took.Round(100*time.Millisecond))
		for _, f := range r.figs {
			fmt.Printf("    %-40s %s\n", f[0], f[1])
		}
		for _, n := range r.notes {
			fmt.Printf("    note: %s\n", n)
		}
		for _, er := range r.errs {
			fmt.Printf("    FAIL: %s\n", er)
		}
		return r
	}
	// The long, mostly idle outage starts first and runs beside the others.
	for _, s := range scenarios {
		if s.name != "outage" || len(want) > 0 && !want[s.name] {
			continue
		}
		r := &result{name: s.name}
		bg = append(bg, r)
		wg.Add(1)
		go func(s scenario, slot *result) {
			defer wg.Done()
			*slot = *run(s)
		}(s, r)
	}
	for _, s := range scenarios {
		if s.name == "outage" || len(want) > 0 && !want[s.name] {
			continue
		}
		results = append(results, run(s))
	}
	wg.Wait()
	results = append(results, bg...)
	e.killAll()
	cleanupNetns()
	// No agent ever logged the MQTT password (docs/design.md#security).
	sec := &result{name: "secrets"}
	e.mu.Lock()
	for _, a := range e.agents {
		if strings.Contains(a.Log(), agentPass) {
			sec.fail("the MQTT password is in the log of %s", a.logPath)
			break
		}
	}
	sec.fig("agent runs whose logs were searched for the password", "%d", len(e.agents))
	e.mu.Unlock()
	results = append(results, sec)

	failed := 0
	for _, r := range results {
		if len(r.errs) > 0 {
			failed++
		}
	}
	printSummary(results, p, time.Since(start))
	fmt.Printf("edge-faults: %d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 || *keep {
		fmt.Printf("edge-faults: work directory kept: %s (replay with -seed %d)\n", dir, p.seed)
	} else {
		os.RemoveAll(dir)
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func soakNote(p params) string {
	if p.soak > 0 {
		return fmt.Sprintf("; soak %v", p.soak)
	}
	return "; bounded (CI) sizes"
}

func names() string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func known(name string) bool {
	for _, s := range scenarios {
		if s.name == name {
			return true
		}
	}
	return false
}

// summary keys: the figures docs/testing.md#make-faults carries.
var summaryKeys = []struct{ key, label string }{
	{"kills", "power: agent SIGKILLs survived"},
	{"acked", "power: messages acknowledged by the broker"},
	{"lost", "power: acknowledged messages lost"},
	{"dups", "power: duplicates delivered (QoS 1 allows)"},
	{"commands", "commands executed"},
	{"twice", "commands executed twice"},
	{"sinks", "sinks across SIGKILLs (file, http)"},
	{"sinks-down", "a sink's target down"},
	{"restart", "recovery after a broker restart"},
	{"outage", "recovery after a broker outage"},
	{"partition-detect", "half-open detected after partition"},
	{"partition-heal", "recovery after the partition heals"},
	{"spread", "reconnect spread after a broker restart"},
	{"disk", "disk full: stored after space freed"},
	{"hostile", "hostile payloads stored / answered"},
	{"oversize", "messages over max_message_size"},
	{"retained", "retained command"},
	{"bigflood", "flood of messages just under the limit"},
	{"socket", "control socket abuse"},
	{"tls", "broken TLS cases never connected"},
}

var (
	sumMu  sync.Mutex
	sumVal = map[string]string{}
)

// tally adds one scenario's comparison of acknowledged and stored messages
// to the totals over all scenarios.
var totals struct {
	mu                sync.Mutex
	acked, lost, dups int
}

func tally(r lossReport) {
	totals.mu.Lock()
	defer totals.mu.Unlock()
	totals.acked += r.acked
	totals.lost += r.lost
	totals.dups += r.dups
}

func summarise(key, format string, args ...any) {
	sumMu.Lock()
	defer sumMu.Unlock()
	sumVal[key] = fmt.Sprintf(format, args...)
}

func printSummary(results []*result, p params, took time.Duration) {
	fmt.Printf("\nedge-faults summary (seed %d, %v):\n", p.seed, took.Round(time.Second))
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	totals.mu.Lock()
	fmt.Fprintf(w, "  all scenarios: acknowledged / lost / duplicates\t%d / %d / %d\n", totals.acked, totals.lost, totals.dups)
	totals.mu.Unlock()
	sumMu.Lock()
	for _, k := range summaryKeys {
		if v, ok := sumVal[k.key]; ok {
			fmt.Fprintf(w, "  %s\t%s\n", k.label, v)
		}
	}
	sumMu.Unlock()
	w.Flush()
	sort.SliceStable(results, func(i, j int) bool { return order(results[i].name) < order(results[j].name) })
	for _, r := range results {
		st := "ok"
		if len(r.errs) > 0 {
			st = fmt.Sprintf("FAIL (%d)", len(r.errs))
		}
		fmt.Printf("  %-10s %-9s %v\n", r.name, st, r.took.Round(100*time.Millisecond))
	}
}

func order(name string) int {
	for i, s := range scenarios {
		if s.name == name {
			return i
		}
	}
	return len(scenarios)
}

// rng returns a generator for one scenario, derived from the seed and the
// scenario's name so that scenarios replay independently.
func rng(p params, name string) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(p.seed, h))
}

// needTools fails r for each missing tool (the suite never skips), and
// without root if root is true.
func needTools(r *result, root bool, tools ...string) bool {
	ok := true
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			if _, err := os.Stat("/usr/sbin/" + t); err == nil {
				continue
			}
			r.fail("%s not installed (.ci/run installs it: apt-get install %s)", t, debPackage(t))
			ok = false
		}
	}
	if root && os.Geteuid() != 0 {
		r.fail("needs root")
		ok = false
	}
	return ok
}

func debPackage(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "nft":
		return "nftables"
	case "mkfs.ext4":
		return "e2fsprogs"
	case "mount", "umount", "losetup":
		return "mount"
	case "mosquitto_passwd":
		return "mosquitto"
	}
	return tool
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
