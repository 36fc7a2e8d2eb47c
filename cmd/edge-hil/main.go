// Command edge-hil is the hardware-in-the-loop rig of edge-agent: it runs
// the binaries `make dist` ships, unchanged, on Debian's arm64 kernel in
// qemu-system-aarch64 (the virt board under TCG), where the agent's periph
// backend drives the real kernel's GPIO character device for the board's
// PL061 controller. It then watches the lines from outside the guest, with
// QEMU's pl061_set_output trace (every level the controller puts out, with
// the host's clock), and from inside, with the agent's own `status -json`
// and the kernel's /sys/kernel/debug/gpio, while it publishes commands to a
// mosquitto on the host's loopback, kills the agent, the broker and the VM.
//
// `make hil` runs it. It needs root (apt-get download and dpkg -x of the
// arm64 kernel and busybox into the cache, by default
// /var/cache/edge-agent-hil, fetched once), qemu-system-aarch64
// (qemu-system-arm), cpio, xz, mkfs.ext4 and mosquitto; .ci/run installs
// them. A missing one is a failure, never a skip.
//
// Every check and figure is printed at the end; any failure names the
// check, what was expected on which line and what the trace showed, and
// makes the exit status 1 (the work directory with the console and trace
// logs is kept then).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

type options struct {
	dist  string
	cache string
	archs []string
	smp   int
	keep  bool
	// inputs adds the agent's [[input]] checks (inputs.go), for an agent
	// that has them.
	inputs bool
}

// rig is what every device run shares.
type rig struct {
	opts   options
	dir    string
	qemu   string
	guest  *guestFiles
	cloud  *cloud
	initrd string
	start  time.Time
}

func (r *rig) logf(format string, args ...any) {
	fmt.Printf("edge-hil %6.1fs: %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	defCache := os.Getenv("EDGE_HIL_CACHE")
	if defCache == "" {
		defCache = "/var/cache/edge-agent-hil"
	}
	var o options
	var archs string
	flag.StringVar(&o.dist, "dist", "dist", "directory with make dist's binaries (edge-agent-linux-arm64, edge-agent-linux-armv6)")
	flag.StringVar(&o.cache, "cache", defCache, "cache of the guest kernel, modules and busybox (env EDGE_HIL_CACHE)")
	flag.StringVar(&archs, "arch", "arm64,armv6", "agent binaries to run, in order: arm64 (every check) and armv6 (the GPIO checks)")
	// One vCPU: its TCG thread takes one host core and leaves the other to
	// QEMU's I/O thread, mosquitto and the rig (faster boots and steadier
	// timing than 2 on this 2-core machine, measured).
	flag.IntVar(&o.smp, "smp", 1, "guest CPUs (each a host thread under TCG)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (console and trace logs) even when every check passed")
	flag.BoolVar(&o.inputs, "inputs", os.Getenv("EDGE_HIL_INPUTS") != "0",
		"also boot each arch with two [[input]]s and check events, debounce and toggles (env EDGE_HIL_INPUTS=0 turns it off)")
	flag.Parse()
	for _, a := range strings.Split(archs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if _, ok := plans[a]; !ok {
				fmt.Fprintf(os.Stderr, "edge-hil: unknown arch %q (arm64, armv6)\n", a)
				os.Exit(2)
			}
			o.archs = append(o.archs, a)
		}
	}
	os.Exit(run(o))
}

func run(o options) int {
	r := &rig{opts: o, start: time.Now()}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "edge-hil: "+format+"\n", args...)
		return 1
	}
	if os.Geteuid() != 0 {
		return fail("needs root (apt-get download and dpkg -x into the cache)")
	}
	var err error
	if r.qemu, err = exec.LookPath("qemu-system-aarch64"); err != nil {
		return fail("qemu-system-aarch64 not installed (apt-get install qemu-system-arm; .ci/run installs it)")
	}
	for _, tool := range []string{"cpio", "xz", "dpkg", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fail("%s not installed (.ci/run installs what make hil needs)", tool)
		}
	}
	bins := map[string]string{}
	for _, a := range []string{"arm64", "armv6"} {
		p, err := filepath.Abs(filepath.Join(o.dist, "edge-agent-linux-"+a))
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			return fail("agent binary: %v (make dist)", err)
		}
		bins[a] = p
	}
	if r.dir, err = os.MkdirTemp("", "edge-hil-"); err != nil {
		return fail("%v", err)
	}
	r.logf("work directory %s", r.dir)

	r.guest, err = ensureGuest(o.cache, r.logf)
	if err != nil {
		return fail("guest kernel: %v", err)
	}
	r.cloud, err = startCloud(r.dir)
	if err != nil {
		return fail("broker: %v", err)
	}
	defer r.cloud.Stop()
	r.logf("mosquitto with TLS on 127.0.0.1:%d (the guest dials %s:%d)", r.cloud.Broker.Port, testcloud.HostAlias, r.cloud.Broker.Port)

	configs := map[string]string{}
	for a := range bins {
		configs[a] = agentConfig("hil-"+a, r.cloud.Broker.Port)
		configs[a+"-inputs"] = inputsConfig("hil-"+a, r.cloud.Broker.Port)
	}
	t0 := time.Now()
	probes, err := buildProbes(r.dir)
	if err != nil {
		return fail("gpioprobe: %v", err)
	}
	r.logf("gpioprobe built for arm64 and armv6 (%s)", ms(time.Since(t0)))
	r.initrd = filepath.Join(r.dir, "initramfs.cpio.gz")
	t0 = time.Now()
	if err := buildInitramfs(r.initrd, r.dir, r.guest, bins, probes, configs, r.cloud.PKI.CAFile); err != nil {
		return fail("initramfs: %v", err)
	}
	fi, _ := os.Stat(r.initrd)
	r.logf("initramfs: busybox, %d modules, edge-agent arm64 and armv6 from %s (%.1f MB, %s)",
		len(r.guest.Modules), o.dist, float64(fi.Size())/1e6, ms(time.Since(t0)))

	// SIGINT/SIGTERM: QEMU dies with us (Pdeathsig); stop the broker.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		r.cloud.Stop()
		fmt.Fprintf(os.Stderr, "edge-hil: interrupted; work directory %s\n", r.dir)
		os.Exit(130)
	}()

	for _, a := range o.archs {
		r.logf("checks for %s:", a)
		for _, c := range r.plan(a) {
			fmt.Printf("    %-18s %s\n", c.name, c.what)
		}
	}
	var results []*result
	devs := map[string]*device{}
	for _, a := range o.archs {
		res, d := r.runDevice(a)
		results = append(results, res...)
		devs[a] = d
	}
	failed := r.summary(results, devs)
	if failed > 0 || o.keep {
		fmt.Printf("edge-hil: work directory kept: %s (console and trace logs per boot)\n", r.dir)
	} else {
		os.RemoveAll(r.dir)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// summary prints every check with its figures and returns how many failed.
func (r *rig) summary(results []*result, devs map[string]*device) int {
	fmt.Printf("\nedge-hil summary (%s; kernel %s; QEMU TCG, virt, cortex-a72, %d vCPUs):\n",
		time.Since(r.start).Round(100*time.Millisecond), r.guest.Release, r.opts.smp)
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  arch\tcheck\tresult\ttime\tfigures\n")
	failed := 0
	for _, res := range results {
		st := "ok"
		if len(res.errs) > 0 {
			st = "FAIL"
			failed++
		}
		figs := strings.Join(res.figs, "; ")
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", res.arch, res.name, st, ms(res.took), figs)
	}
	w.Flush()
	for _, a := range r.opts.archs {
		if d := devs[a]; d != nil && len(d.bootTimes) > 0 {
			var s []string
			for _, b := range d.bootTimes {
				s = append(s, ms(b))
			}
			fmt.Printf("  %s: QEMU start → agent connected (status from inside), per boot: %s\n", a, strings.Join(s, ", "))
		}
	}
	for _, res := range results {
		for _, e := range res.errs {
			fmt.Printf("  FAIL %s %s: %s\n", res.arch, res.name, e)
		}
	}
	fmt.Printf("edge-hil: %d passed, %d failed\n", len(results)-failed, failed)
	return failed
}
