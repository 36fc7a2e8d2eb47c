package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// printMachine says exactly what the figures were taken on and with.
func printMachine(w io.Writer, e *env) {
	fmt.Fprintf(w, "edge-bench %s\n", time.Now().Format(time.RFC3339))
	fmt.Fprintf(w, "command:    %s\n", strings.Join(os.Args, " "))
	fmt.Fprintf(w, "machine:    %d CPUs (nproc), %s, kernel %s, %s\n", runtime.NumCPU(), cpuModel(), kernel(), memTotal())
	fmt.Fprintf(w, "broker:     %s, TLS 1.2 on 127.0.0.1, password auth, persistence off; %s\n", mosquittoVersion(), strings.Join(e.brokerConf, ", "))
	fmt.Fprintf(w, "agent:      %s (%s)\n", e.agentBin, binaryVersion(e.agentBin))
	fmt.Fprintf(w, "Go:         %s (bench), agent built with %s\n", runtime.Version(), goVersionOf(e.agentBin))
	if e.sections["ingest"] {
		fmt.Fprintf(w, "baselines:  %s under %s (%s); %s\n", e.scriptPath, pythonBin, pahoVersion(), lineWith("version", mosquittoSubBin, "--help"))
	}
	disk := "fdatasync probe failed"
	if p50, p99, err := diskSync(e.dir, 200); err == nil {
		disk = fmt.Sprintf("4 KiB write + fdatasync p50 %.2f ms, p99 %.2f ms (n=200; a commit is two)", p50, p99)
		e.diskP99 = p99
	}
	fmt.Fprintf(w, "work dir:   %s (%s); %s\n", e.dir, fsType(e.dir), disk)
	if a, err := sampleCPU(); err == nil {
		time.Sleep(time.Second)
		if b, err := sampleCPU(); err == nil {
			n := noiseBetween(a, b, runtime.NumCPU())
			warn := ""
			if n.others > noisy || n.steal > noisy {
				warn = ": the machine is busy, figures will be disturbed"
			}
			fmt.Fprintf(w, "before:     in the second before the bench, %s%s\n", n, warn)
		}
	}
	fmt.Fprintf(w, "sizes:      backlog %d, flood %d, paced %d at 100/s, commands %d at 100/s, scale %d/%d records + %d drained; %d runs\n\n",
		e.sz.backlog, e.sz.flood, e.sz.paced, e.sz.commands, e.sz.scaleMid, e.sz.scaleBig, e.sz.scaleDrain, e.runs)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "unknown"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	m, err := parseStatusKB(string(b), "MemTotal")
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f GB RAM", float64(m["MemTotal"])*1024/1e9)
}

func mosquittoVersion() string {
	bin, err := agenttest.MosquittoBinary()
	if err != nil {
		return "mosquitto (not found)"
	}
	return firstLine(bin, "-h")
}

// firstLine is the first line a command prints (some print their version
// with a non-zero exit).
func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(l)
}

// lineWith is the first line a command prints that contains word.
func lineWith(word, name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, word) {
			return strings.TrimSpace(l)
		}
	}
	return name
}

func binaryVersion(bin string) string { return firstLine(bin, "version") }

func goVersionOf(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown Go"
	}
	return bi.GoVersion
}

func pahoVersion() string {
	out, err := exec.Command(pythonBin, "-c", "import paho.mqtt; print(paho.mqtt.__version__)").Output()
	if err != nil {
		return "paho-mqtt missing"
	}
	return "paho-mqtt " + strings.TrimSpace(string(out))
}

// fsType names the file system the stores live on: fsync's cost is the
// disk's.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "unknown fs"
	}
	switch uint32(st.Type) { // int32 on 32-bit targets, int64 on 64-bit
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs: fsync costs nothing here"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs type %#x", st.Type)
}

// diskSync times n 4 KiB writes each followed by fdatasync in dir: a bbolt
// commit is two of these (data pages, then the meta page;
// docs/dependencies.md#bbolt-commit-fsyncs), so
// the disk sets the floor of receive→stored, and the figures can only be
// compared between machines with this beside them.
func diskSync(dir string, n int) (p50, p99 float64, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%64)*4096); err != nil {
			return 0, 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		lat = append(lat, float64(time.Since(t0))/1e6)
	}
	return percentile(lat, 50), percentile(lat, 99), nil
}
