// Command edge-bench is the benchmark of edge-agent (issue 7): it runs the
// real binary against a real mosquitto over TLS on loopback and measures
// durable ingest (a queued backlog and a live flood, beside the old Python
// script and mosquitto_sub on the same broker), command latency on the
// simulated board, the footprint (memory, CPU, start-up, binary sizes), how
// the store scales to a million records, and what a file or an exec sink
// costs the backlog drain beside its own throughput. Every figure is taken in
// several runs and printed as median and range beside its target.
//
// `make bench` builds the agent and the release binaries and runs it. It
// exits 0 when a target is missed (a benchmark, not a test) and non-zero
// only when the bench itself failed: a subject crashed or stalled, or a
// published message was not stored.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// Where the baselines come from.
const (
	pythonBin       = "/usr/bin/python3"             // Debian's, with python3-paho-mqtt (paho 1.x)
	defaultScript   = "scripts/baseline/seed_sub.py" // the old script, kept as the baseline; make runs from the repository top
	mosquittoSubBin = "mosquitto_sub"
	aptPahoCommand  = "apt-get install -y python3-paho-mqtt"
)

// sizes are the message counts of each phase.
type sizes struct {
	backlog      int           // backlog drain
	flood        int           // live flood
	paced        int           // publish→stored at 100/s
	commands     int           // commands at 100/s
	startups     int           // start-up samples per run, on an existing store
	idle         time.Duration // idle RSS is read this long after start
	scaleMid     int           // records prefilled, middle case
	scaleBig     int           // records prefilled, large case
	scaleDrain   int           // backlog drained into each prefilled store
	oversizeN    int           // messages over max_message_size
	oversizeSize int           // their size in bytes
	sinkBacklog  int           // backlog drained with each sink
	wearSlow     int           // wear: messages at 1/s
	wearMid      int           // wear: messages at 10/s
	wearPaced    int           // wear: messages at 100/s
	wearFlood    int           // wear: messages in the flood
	wearFull     int           // wear: records stored in the "full" agent's store (its retain_records)
	wearSyncs    int           // wear: fdatasyncs timed
}

var fullSizes = sizes{backlog: 100_000, flood: 100_000, paced: 1000, commands: 1000, startups: 3,
	idle: 5 * time.Second, scaleMid: 100_000, scaleBig: 1_000_000, scaleDrain: 100_000,
	oversizeN: 20, oversizeSize: 50_000_000, sinkBacklog: 100_000,
	wearSlow: 20, wearMid: 150, wearPaced: 1000, wearFlood: 20_000, wearFull: 100_000, wearSyncs: 300}

// quickSizes keep a smoke run under a minute; its figures are not the
// issue's (each is printed with the size it was taken at).
var quickSizes = sizes{backlog: 10_000, flood: 10_000, paced: 200, commands: 200, startups: 1,
	idle: 5 * time.Second, scaleMid: 20_000, scaleBig: 100_000, scaleDrain: 10_000,
	oversizeN: 5, oversizeSize: 20_000_000, sinkBacklog: 10_000,
	wearSlow: 3, wearMid: 20, wearPaced: 200, wearFlood: 2000, wearFull: 20_000, wearSyncs: 100}

var sectionNames = []string{"ingest", "commands", "footprint", "scale", "oversize", "sinks", "wear", "drain", "slow"}

// env is what every section shares.
type env struct {
	agentBin   string
	diskP99    float64       // ms: the work dir's 4 KiB write + fdatasync p99, measured at the start (printMachine)
	compareBin string        // -compare: a second agent build the drain section runs beside agentBin
	slowSync   time.Duration // -slow-sync: the slow card's cache flush
	slowWrite  time.Duration // -slow-write: the slow card's write request
	scriptPath string
	cpuProfile string // where the agent writes a profile of its drain; "" = none
	distDir    string
	dir        string
	pki        *agenttest.PKI
	broker     *broker // this run's
	sz         sizes
	runs       int
	run        int // 1-based
	token      string
	rep        *report
	sections   map[string]bool
	templates  map[int]string // prefilled store files by record count
	brokerConf []string       // the broker's extra config lines
	// windows are the commit_window values the wear section compares at
	// 100/s (nil: none, for an agent without the key); defaultWindow is
	// the agent's default, for the latency target.
	windows       []string
	defaultWindow string

	mu       sync.Mutex
	seq      int
	failures []string
	started  time.Time
	noise    []noise // per run
}

// sub makes a fresh directory for one subject or phase.
func (e *env) sub(name string) string {
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	d := filepath.Join(e.dir, fmt.Sprintf("r%d-%02d-%s", e.run, n, name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		panic(err)
	}
	return d
}

// id is a client id or device id unique to this bench, run and name, so
// every run has fresh sessions.
func (e *env) id(name string) string {
	return fmt.Sprintf("bench-%s-r%d-%s", e.token, e.run, name)
}

// progress prints what comes next, before each long step.
func (e *env) progress(format string, args ...any) {
	fmt.Printf("[%6.1fs] run %d/%d: %s\n", time.Since(e.started).Seconds(), e.run, e.runs, fmt.Sprintf(format, args...))
}

// fail records a failure of the bench itself (exit 1).
func (e *env) fail(format string, args ...any) {
	msg := fmt.Sprintf("run %d: ", e.run) + fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.failures = append(e.failures, msg)
	e.mu.Unlock()
	fmt.Printf("  BENCH FAILURE: %s\n", msg)
}

func main() {
	serveCardIfAsked() // the slow section's card server: this binary again
	var (
		agentBin  = flag.String("agent", "bin/edge-agent", "the edge-agent binary under test")
		runs      = flag.Int("runs", 0, "runs of every measurement (default 3; 1 with -quick)")
		quick     = flag.Bool("quick", false, "smaller sizes for a smoke run (figures not comparable with the targets)")
		only      = flag.String("only", "", "comma-separated sections to run (default all): "+strings.Join(sectionNames, ","))
		distDir   = flag.String("dist", "dist", "directory holding the release binaries (make dist) whose sizes are reported")
		keep      = flag.Bool("keep", false, "keep the work directory (logs, databases, broker log)")
		script    = flag.String("script", defaultScript, "the old script (baseline)")
		profile   = flag.String("cpuprofile", "", "write a CPU profile of the agent's backlog drain (in the last run) to this file; the agent must be built with -tags pprof (make profile)")
		nagle     = flag.Bool("nagle", false, "leave mosquitto's default set_tcp_nodelay false (Nagle on): latencies then measure the broker's batching")
		compare   = flag.String("compare", "", "a second agent build that the drain section (-only drain) drains beside -agent in every run, order swapped each run, each relative to mosquitto_sub")
		slowSync  = flag.Duration("slow-sync", 5*time.Millisecond, "the slow section's card: how long each cache flush (every fdatasync, every journal commit) takes (5ms: a 4 KiB write + fdatasync takes about 5-6 ms, as on an SD card)")
		slowWrite = flag.Duration("slow-write", 0, "the slow section's card: how long each write request takes before its data is written, besides the flushes")
		windows   = flag.String("windows", "0s,20ms,100ms", "commit_window values the wear section compares at 100/s (\"\" for an agent without [store] commit_window)")
	)
	flag.Parse()
	e := &env{sz: fullSizes, runs: *runs, slowSync: *slowSync, slowWrite: *slowWrite, distDir: *distDir, scriptPath: *script, cpuProfile: *profile, rep: newReport(),
		sections: map[string]bool{}, templates: map[int]string{}, started: time.Now(),
		token: strconv.FormatInt(time.Now().UnixNano()%1e6, 36)}
	if *quick {
		e.sz = quickSizes
	}
	e.brokerConf = brokerConfig(*nagle)
	if *windows != "" {
		for _, w := range strings.Split(*windows, ",") {
			if _, err := time.ParseDuration(w); err != nil {
				fmt.Fprintf(os.Stderr, "edge-bench: -windows: %v\n", err)
				os.Exit(2)
			}
			e.windows = append(e.windows, w)
		}
		e.defaultWindow = defaultCommitWindow
	}
	if e.runs <= 0 {
		e.runs = 3
		if *quick {
			e.runs = 1
		}
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(sectionNames, s) {
			fmt.Fprintf(os.Stderr, "edge-bench: unknown section %q (known: %s)\n", s, strings.Join(sectionNames, ","))
			os.Exit(2)
		}
		e.sections[s] = true
	}
	if len(e.sections) == 0 {
		for _, s := range sectionNames {
			e.sections[s] = true
		}
	}
	bin, err := filepath.Abs(*agentBin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "edge-bench: agent binary: %v (make build)\n", err)
		os.Exit(2)
	}
	e.agentBin = bin
	if *compare != "" {
		if e.compareBin, err = filepath.Abs(*compare); err == nil {
			_, err = os.Stat(e.compareBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "edge-bench: -compare: %v\n", err)
			os.Exit(2)
		}
	}
	if err := prerequisites(e); err != nil {
		fmt.Fprintf(os.Stderr, "edge-bench: %v\n", err)
		os.Exit(2)
	}
	if e.dir, err = os.MkdirTemp("", "edge-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if e.pki, err = agenttest.NewPKI(filepath.Join(e.dir, "pki")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Ctrl-C: the subjects die with us (Pdeathsig); stop the broker,
	// detach the loop devices and slow cards, keep the directory.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		if b := e.broker; b != nil {
			b.stop()
		}
		runAtExit()
		fmt.Fprintf(os.Stderr, "edge-bench: interrupted; work directory %s\n", e.dir)
		os.Exit(130)
	}()

	printMachine(os.Stdout, e)
	if e.sections["footprint"] {
		binarySizes(e)
	}
	if e.sections["scale"] {
		if err := prefill(e); err != nil {
			e.fail("prefill: %v", err)
		}
	}
	for e.run = 1; e.run <= e.runs; e.run++ {
		before, err := sampleCPU()
		if err != nil {
			e.fail("%v", err)
		}
		b, err := startBroker(filepath.Join(e.dir, fmt.Sprintf("r%d-mosquitto", e.run)), e.pki, e.brokerConf)
		if err != nil {
			e.fail("start mosquitto: %v", err)
			break
		}
		e.broker = b
		var drain *drainResult
		if e.sections["ingest"] {
			drain = ingestSection(e)
		}
		if e.sections["drain"] {
			drainABSection(e)
		}
		if e.sections["commands"] {
			commandsSection(e)
		}
		if e.sections["footprint"] {
			footprintSection(e, drain)
		}
		if e.sections["scale"] {
			scaleSection(e, drain)
		}
		if e.sections["oversize"] {
			oversizeSection(e)
		}
		if e.sections["sinks"] {
			sinksSection(e)
		}
		if e.sections["wear"] {
			wearSection(e)
		}
		if e.sections["slow"] {
			slowSection(e)
		}
		b.stop()
		e.broker = nil
		// Every subject and the broker have been waited for: their CPU is
		// in our children's rusage now.
		if after, err := sampleCPU(); err == nil {
			n := noiseBetween(before, after, runtime.NumCPU())
			e.noise = append(e.noise, n)
			flag := ""
			if n.others > noisy || n.steal > noisy {
				flag = ": NOT ALONE, this run's figures are disturbed"
			}
			fmt.Printf("[%6.1fs] run %d/%d done in %v; %s%s\n", time.Since(e.started).Seconds(), e.run, e.runs,
				n.wall.Round(100*time.Millisecond), n, flag)
		}
	}
	took := time.Since(e.started)
	fmt.Println()
	printReport(os.Stdout, e, took)
	if len(e.failures) > 0 || *keep {
		fmt.Printf("\nwork directory kept: %s\n", e.dir)
	} else {
		os.RemoveAll(e.dir)
	}
	if len(e.failures) > 0 {
		os.Exit(1)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// prerequisites checks the tools the selected sections need; a missing
// baseline is an error, with the command that installs it.
func prerequisites(e *env) error {
	if _, err := agenttest.MosquittoBinary(); err != nil {
		return fmt.Errorf("%v (apt-get install -y mosquitto mosquitto-clients)", err)
	}
	if e.sections["wear"] || e.sections["slow"] {
		if err := wearPrerequisites(); err != nil {
			return err
		}
	}
	if e.sections["slow"] {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			return fmt.Errorf("the slow section serves its card over FUSE: %v (modprobe fuse; in a container, pass --device /dev/fuse; or leave it out: -only without slow)", err)
		}
	}
	if !e.sections["ingest"] && !e.sections["wear"] && !e.sections["drain"] {
		return nil
	}
	if _, err := exec.LookPath(mosquittoSubBin); err != nil {
		return fmt.Errorf("mosquitto_sub not found (apt-get install -y mosquitto-clients)")
	}
	if _, err := os.Stat(e.scriptPath); err != nil {
		return fmt.Errorf("the old script: %v (-script PATH)", err)
	}
	if out, err := exec.Command(pythonBin, "-c", "import paho.mqtt").CombinedOutput(); err != nil {
		return fmt.Errorf("the old script needs Debian's paho-mqtt for %s: %s\n  install it: %s (make bench-deps does, as root)",
			pythonBin, strings.TrimSpace(string(out)), aptPahoCommand)
	}
	return nil
}
