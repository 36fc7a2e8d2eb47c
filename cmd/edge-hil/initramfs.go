package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// initScript is the guest's PID 1 (busybox sh). It loads the modules,
// brings up QEMU's user network, mounts the persistent data disk, finds the
// PL061's gpiochip, writes the agent's config for it and keeps the agent
// running the way systemd would (restarted when it dies). Then it serves
// the host on a virtio serial port named "hil": one request per line,
// "ID COMMAND", answered "@@ID OK|ERR TEXT" on one line (newlines of TEXT
// become tabs):
//
//	status  edge-agent status -json (the agent's own CLI, over its socket)
//	gpio    the kernel's view of the lines (/sys/kernel/debug/gpio)
//	kill    SIGKILL the agent (a crash; the loop restarts it)
//	term    SIGTERM the agent (a clean stop, as systemctl restart does)
//	probe ARGS  gpioprobe on the PL061 (its CHIP is filled in): lines taken
//	        as inputs through hw/periph while the rig drives them
//
// The kernel's command line picks the agent's config: hil.config=NAME
// takes ARCH-NAME.toml.in instead of ARCH.toml.in.
//
// Lines it prints on the console start with "hil:" and carry the guest's
// uptime. The agent's log goes to the console too.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /run /tmp /data
say() { echo "hil: $* (uptime $(cut -d' ' -f1 /proc/uptime))"; }
arch=$(sed -n 's/.*hil\.arch=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
say "init arch=$arch kernel $(uname -r)"
while read -r m; do
  insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done < /lib/modules/order
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
mount -t ext4 /dev/vda /data || say "mount /dev/vda on /data failed"
# The PL061 is the chip whose device is the amba device *.pl061.
chip=
for d in /sys/bus/gpio/devices/gpiochip*; do
  case "$(readlink -f "$d")" in *.pl061/gpiochip*) chip=${d##*/gpiochip} ;; esac
done
[ -n "$chip" ] || say "no PL061 gpiochip in /sys/bus/gpio/devices"
cfgname=$(sed -n 's/.*hil\.config=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
cfgin="/etc/edge-agent/$arch.toml.in"
[ -n "$cfgname" ] && cfgin="/etc/edge-agent/$arch-$cfgname.toml.in"
say "config $cfgin"
sed "s/@CHIP@/$chip/g" "$cfgin" > /etc/edge-agent/config.toml
ln -sf "/bin/edge-agent-$arch" /bin/edge-agent
say "pl061 is gpiochip$chip ($(readlink -f /sys/bus/gpio/devices/gpiochip$chip)); starting edge-agent-$arch"
(
  while :; do
    edge-agent run -config /etc/edge-agent/config.toml </dev/null &
    echo $! > /run/agent.pid
    wait $!
    say "agent exited with status $?"
    sleep 0.2
  done
) &
port=
while [ -z "$port" ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = hil ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] || sleep 0.1
done
exec 3<>"$port"
say "control channel on $port"
cfg=/etc/edge-agent/config.toml
while :; do
  if ! read -r id cmd <&3; then sleep 0.05; continue; fi
  r=OK
  case "$cmd" in
    status) out=$(edge-agent status -json -config $cfg 2>&1) || r=ERR ;;
    gpio) out=$(cat /sys/kernel/debug/gpio 2>&1) || r=ERR ;;
    kill) out=$(kill -KILL "$(cat /run/agent.pid)" 2>&1) || r=ERR ;;
    term) out=$(kill -TERM "$(cat /run/agent.pid)" 2>&1) || r=ERR ;;
    probe\ *) out=$(/bin/gpioprobe-$arch "$chip" ${cmd#probe }) || r=ERR ;;
    *) r=ERR; out="unknown command: $cmd" ;;
  esac
  echo "@@$id $r $(echo "$out" | tr '\n' '\t')" >&3
done
`

// initramfsSpec is what goes into the initramfs, by path inside it.
type initramfsSpec struct {
	files map[string]string // inside path → host file
	texts map[string]string // inside path → content
	modes map[string]os.FileMode
}

// buildInitramfs writes a gzip-compressed newc cpio archive to out with
// busybox, both agent binaries, the modules, the init script and the
// agents' configs. It is rebuilt every run (under a second): the binaries
// are the ones make dist just built.
func buildInitramfs(out, scratch string, g *guestFiles, bins, probes map[string]string, configs map[string]string, caFile string) error {
	root := filepath.Join(scratch, "initramfs")
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	spec := initramfsSpec{files: map[string]string{}, texts: map[string]string{}, modes: map[string]os.FileMode{}}
	spec.texts["init"] = initScript
	spec.modes["init"] = 0o755
	spec.files["bin/busybox"] = g.busybox()
	spec.modes["bin/busybox"] = 0o755
	for arch, bin := range bins {
		p := "bin/edge-agent-" + arch
		spec.files[p] = bin
		spec.modes[p] = 0o755
	}
	for arch, bin := range probes {
		p := "bin/gpioprobe-" + arch
		spec.files[p] = bin
		spec.modes[p] = 0o755
	}
	for _, m := range g.Modules {
		spec.files["lib/modules/"+m+".ko"] = g.module(m)
	}
	spec.texts["lib/modules/order"] = strings.Join(g.Modules, "\n") + "\n"
	for arch, c := range configs {
		spec.texts["etc/edge-agent/"+arch+".toml.in"] = c
	}
	spec.files["etc/edge-agent/ca.pem"] = caFile
	spec.texts["etc/edge-agent/mqtt.pass"] = agentPass + "\n"
	spec.modes["etc/edge-agent/mqtt.pass"] = 0o600
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := spec.write(root); err != nil {
		return err
	}
	return cpioGzip(root, out)
}

func (s initramfsSpec) write(root string) error {
	mode := func(p string) os.FileMode {
		if m, ok := s.modes[p]; ok {
			return m
		}
		return 0o644
	}
	put := func(p string, b []byte) error {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, mode(p))
	}
	for p, src := range s.files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := put(p, b); err != nil {
			return err
		}
	}
	for p, t := range s.texts {
		if err := put(p, []byte(t)); err != nil {
			return err
		}
	}
	return nil
}

// cpioGzip archives the tree at root with cpio (newc, every file owned by
// root, in sorted order) and gzips it, as the kernel's initramfs wants.
func cpioGzip(root, out string) error {
	var names []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	var archive, errb bytes.Buffer
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = root
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	cmd.Stdout, cmd.Stderr = &archive, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := zw.Write(archive.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newDisk makes the guest's data disk: a raw image with an empty ext4 (it
// survives a kill of the VM, like a Pi's SD card survives a power cut).
func newDisk(path string) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		return err
	}
	out, err := exec.Command(mkfsExt4(), "-q", "-F", "-m", "0", "-L", "edge-data", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, out)
	}
	return nil
}

func mkfsExt4() string {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p
	}
	return "/sbin/mkfs.ext4"
}
