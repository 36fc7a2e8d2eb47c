// Command edge-system is the whole field path on a real systemd: it boots
// a Debian bookworm arm64 card (the base of Raspberry Pi OS; FAT boot and
// ext4 root partitions; systemd as PID 1, udev, sshd) in
// qemu-system-aarch64's virt board, after scripts/install-image.sh has
// written `make dist`'s arm64 agent, its config, secrets and unit into it
// unchanged. Then, as an operator and the cloud would: the unit starts the
// agent under its sandbox, the agent connects over TLS to a mosquitto on
// the host, a command switches a relay and the PL061 line moves (QEMU's
// trace, from outside); systemctl show and the agent's /proc say which
// sandbox is in force; the journal has the agent's lines and no secret;
// a SIGSTOPped agent is restarted by the watchdog; a config error shows;
// systemctl stop says offline; scripts/deploy.sh updates it over ssh and
// rolls back three kinds of broken binary; QEMU is killed during a
// message flood and a timed relay, and the next boot has lost nothing.
//
// `make system` runs it. It needs root, debootstrap, qemu-system-arm,
// mosquitto, openssh-client, dosfstools, mtools, fdisk, e2fsprogs and cpio
// (.ci/deps system). The card is built once per machine into the cache
// (default /var/cache/edge-agent-system) and copied for each run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

type options struct {
	dist  string
	cache string
	keep  bool
}

func main() {
	defCache := os.Getenv("EDGE_SYSTEM_CACHE")
	if defCache == "" {
		defCache = "/var/cache/edge-agent-system"
	}
	var o options
	flag.StringVar(&o.dist, "dist", "dist", "make dist's output (edge-agent-linux-arm64, edge-agent-linux-amd64, SHA256SUMS)")
	flag.StringVar(&o.cache, "cache", defCache, "where the card image is built once and kept (env EDGE_SYSTEM_CACHE)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (card copy, console and trace logs) even when every check passed")
	flag.Parse()
	os.Exit(run(o))
}

// result is one check: its figures, or what failed.
type result struct {
	name string
	errs []string
	figs []string
	took time.Duration
}

func (r *result) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *result) fig(format string, args ...any) {
	r.figs = append(r.figs, fmt.Sprintf(format, args...))
}

type rig struct {
	opts     options
	dir      string
	start    time.Time
	gw       *gateway
	cloud    *cloud
	repo     string
	results  []*result
	goodSum  string // SHA-256 of the binary the good deploy installed
	badReady bool   // the broken builds' real agent and config are on the gateway
	bootTook time.Duration
}

func (r *rig) logf(format string, args ...any) {
	fmt.Printf("edge-system %6.1fs: %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// check runs one check, prints its verdict at once and keeps it for the
// summary. A check that returns false stops the run (what follows needs
// it).
func (r *rig) check(name string, f func(res *result) bool) bool {
	res := &result{name: name}
	t0 := time.Now()
	r.logf("check %s", name)
	goOn := f(res)
	res.took = time.Since(t0)
	r.results = append(r.results, res)
	st := "ok"
	if len(res.errs) > 0 {
		st = "FAIL"
	}
	r.logf("  %s %s (%s) %s", st, name, res.took.Round(100*time.Millisecond), strings.Join(res.figs, "; "))
	for _, e := range res.errs {
		fmt.Printf("      %s\n", strings.ReplaceAll(e, "\n", "\n      "))
	}
	return goOn && len(res.errs) == 0
}

func run(o options) int {
	r := &rig{opts: o, start: time.Now()}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "edge-system: "+format+"\n", args...)
		return 1
	}
	if os.Geteuid() != 0 {
		return fail("needs root (debootstrap, loop devices for install-image.sh)")
	}
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		return fail("qemu-system-aarch64 not installed (apt-get install qemu-system-arm; make system installs what it needs as root via .ci/deps)")
	}
	for _, tool := range []string{"debootstrap", "dpkg", "cpio", "gzip", "sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "losetup", "ssh", "scp", "ssh-keygen", "mosquitto_passwd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + tool); err2 != nil {
				return fail("%s not installed (.ci/deps system installs what make system needs)", tool)
			}
		}
	}
	if r.repo, err = filepath.Abs("."); err != nil {
		return fail("%v", err)
	}
	for _, f := range []string{"scripts/install-image.sh", "scripts/deploy.sh", "scripts/edge-agent.service"} {
		if _, err := os.Stat(filepath.Join(r.repo, f)); err != nil {
			return fail("run from the repository's root: %v", err)
		}
	}
	if o.dist, err = filepath.Abs(o.dist); err != nil {
		return fail("%v", err)
	}
	for _, f := range []string{"edge-agent-linux-arm64", "SHA256SUMS"} {
		if _, err := os.Stat(filepath.Join(o.dist, f)); err != nil {
			return fail("%v (make dist)", err)
		}
	}
	if r.dir, err = os.MkdirTemp("", "edge-system-"); err != nil {
		return fail("%v", err)
	}
	r.logf("work directory %s", r.dir)

	var c *card
	okCard := r.check("card image", func(res *result) bool {
		cached := true
		if _, err := loadCard(o.cache); err != nil {
			cached = false
		}
		c, err = ensureCard(o.cache, qemu, r.logf)
		if err != nil {
			res.fail("%v", err)
			return false
		}
		if cached {
			res.fig("cached in %s", o.cache)
		}
		res.fig("Debian %s arm64, kernel %s; built in: %s", c.Suite, c.Kernel, buildTook(c))
		return true
	})
	if !okCard {
		return r.finish()
	}
	if r.cloud, err = startCloud(r.dir); err != nil {
		return fail("broker: %v", err)
	}
	defer r.cloud.Stop()
	r.logf("mosquitto with TLS on 127.0.0.1:%d (the gateway dials %s:%d)", r.cloud.Broker.Port, testcloud.HostAlias, r.cloud.Broker.Port)

	port, err := freePort()
	if err != nil {
		return fail("%v", err)
	}
	r.gw = &gateway{card: c, qemu: qemu, dir: r.dir, sshPort: port,
		img: filepath.Join(r.dir, "card.img"), known: filepath.Join(r.dir, "known_hosts")}
	if err := os.WriteFile(r.gw.known, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, c.HostKey)), 0o644); err != nil {
		return fail("%v", err)
	}
	defer r.gw.cut()

	r.runChecks()
	return r.finish()
}

// finish prints the summary and returns the exit status.
func (r *rig) finish() int {
	fmt.Printf("\nedge-system summary (%s; Debian %s arm64 under qemu-system-aarch64 virt, TCG, cortex-a72, 2 vCPUs):\n",
		time.Since(r.start).Round(time.Second), suite)
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  check\tresult\ttime\tfigures\n")
	failed := 0
	for _, res := range r.results {
		st := "ok"
		if len(res.errs) > 0 {
			st = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", res.name, st, res.took.Round(100*time.Millisecond), strings.Join(res.figs, "; "))
	}
	w.Flush()
	if failed > 0 {
		fmt.Printf("\nedge-system: %d checks FAILED:\n", failed)
		for _, res := range r.results {
			for _, e := range res.errs {
				fmt.Printf("  %s: %s\n", res.name, strings.ReplaceAll(e, "\n", "\n    "))
			}
		}
	}
	if failed > 0 || r.opts.keep {
		fmt.Printf("edge-system: work directory kept: %s (card copy, console and trace logs per boot)\n", r.dir)
	} else if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func buildTook(c *card) string {
	var s []string
	for _, k := range []string{"debootstrap --foreign", "first-boot initramfs", "card layout (sfdisk, mkfs.vfat, mkfs.ext4 -d)", "second stage in the guest", "kernel to the boot partition"} {
		if v, ok := c.BuildTook[k]; ok {
			s = append(s, k+" "+v)
		}
	}
	return strings.Join(s, ", ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
