package scripts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// Partition layout of the test image, in 512-byte sectors: a FAT32 boot
// partition at 4 MiB and an ext4 root after it, as Raspberry Pi OS has them.
const (
	bootStart   = 8192
	bootSectors = 131072 // 64 MiB
	rootStart   = bootStart + bootSectors
	imageSize   = 192 << 20
)

// rootSpec says what Raspberry Pi OS-like root file system to make.
type rootSpec struct {
	arch       string // the dist binary that stands for the image's /usr/bin/dash
	osName     string
	gpioGroup  bool // Raspberry Pi OS has one, with pi in it; plain Debian has none
	absShLink  bool // /usr/bin/sh -> /usr/bin/dash (an absolute link) instead of "dash"
	shELFOther bool // /usr/bin/dash is a RISC-V ELF header
}

// makeRoot populates dir like a merged-/usr Debian 12 root file system.
func makeRoot(t *testing.T, dir string, s rootSpec) {
	t.Helper()
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}} {
		if err := os.MkdirAll(filepath.Join(dir, l[1]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	if s.shELFOther {
		// ELF header: 32-bit little endian, e_machine 243 (RISC-V).
		h := make([]byte, 64)
		copy(h, "\x7fELF\x01\x01\x01")
		h[18] = 243
		writeFile(t, filepath.Join(dir, "usr/bin/dash"), string(h), 0o755)
	} else {
		copyFile(t, filepath.Join(dist(t), "edge-agent-linux-"+s.arch), filepath.Join(dir, "usr/bin/dash"), 0o755)
	}
	target := "dash"
	if s.absShLink {
		target = "/usr/bin/dash"
	}
	if err := os.Symlink(target, filepath.Join(dir, "usr/bin/sh")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "usr/sbin/nologin"), "#!/bin/sh\nexit 1\n", 0o755)
	writeFile(t, filepath.Join(dir, "usr/lib/os-release"), fmt.Sprintf("PRETTY_NAME=%q\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n", s.osName), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	group := "root:x:0:\nshadow:x:42:\nusers:x:100:\n"
	gshadow := "root:*::\nshadow:*::\nusers:*::\n"
	if s.gpioGroup {
		group += "gpio:x:997:pi\n"
		gshadow += "gpio:!::pi\n"
	}
	group += "pi:x:1000:\n"
	gshadow += "pi:!::\n"
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/group"), group, 0o644)
	writeFile(t, filepath.Join(dir, "etc/shadow"), "root:*:19500:0:99999:7:::\npi:$y$j9T$notreal:19500:0:99999:7:::\n", 0o640)
	writeFile(t, filepath.Join(dir, "etc/gshadow"), gshadow, 0o640)
	for _, f := range []string{"etc/shadow", "etc/gshadow"} {
		if err := os.Chown(filepath.Join(dir, f), 0, 42); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "usr/lib/systemd/system/ssh.service"), "[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n", 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "etc/systemd/system/multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/ssh.service", filepath.Join(dir, "etc/systemd/system/multi-user.target.wants/ssh.service")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"var/lib", "home/pi", "tmp", "boot/firmware"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// loopDev attaches img and returns the loop device and its partitions' node
// names, detached on cleanup. The kernel here may not scan partitions of
// loop devices: partx adds them (this kernel has no partition parser).
func loopDev(t *testing.T, img string) (loop string, parts []string) {
	t.Helper()
	loop = strings.TrimSpace(sh(t, "losetup", "-f", "-P", "--show", img))
	added := false
	if _, err := os.Stat(loop + "p2"); err != nil {
		sh(t, "partx", "-a", loop)
		added = true
	}
	t.Cleanup(func() {
		if added {
			_, _ = shErr("partx", "-d", loop)
		}
		_, _ = shErr("losetup", "-d", loop)
	})
	return loop, []string{loop + "p1", loop + "p2"}
}

func detach(t *testing.T, loop string) {
	t.Helper()
	_, _ = shErr("partx", "-d", loop)
	sh(t, "losetup", "-d", loop)
}

// mountRoot mounts dev on a new directory until cleanup (or the returned
// unmount).
func mountRoot(t *testing.T, dev string) (dir string, unmount func()) {
	t.Helper()
	dir = t.TempDir()
	sh(t, "mount", dev, dir)
	done := false
	unmount = func() {
		if !done {
			done = true
			sh(t, "umount", dir)
		}
	}
	t.Cleanup(func() {
		if !done {
			done = true
			_, _ = shErr("umount", dir)
		}
	})
	return dir, unmount
}

// makeImage builds a two-partition SD image file like Raspberry Pi OS's:
// dos label, FAT32 "bootfs" (type c) with config.txt and cmdline.txt written
// by mtools, ext4 "rootfs" (type 83) populated by makeRoot.
func makeImage(t *testing.T, s rootSpec) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "raspios.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(imageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	layout := fmt.Sprintf("label: dos\nlabel-id: 0x5e3da3da\nunit: sectors\n\nstart=%d, size=%d, type=c\nstart=%d, type=83\n", bootStart, bootSectors, rootStart)
	writeFile(t, img+".sfdisk", layout, 0o644)
	out, err := shErr("sh", "-c", "sfdisk --no-reread --no-tell-kernel -q \"$0\" < \"$0.sfdisk\"", img)
	if err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	loop, parts := loopDev(t, img)
	sh(t, "mkfs.vfat", "-F", "32", "-n", "bootfs", parts[0])
	sh(t, "mkfs.ext4", "-q", "-F", "-L", "rootfs", parts[1])
	boot := t.TempDir()
	writeFile(t, filepath.Join(boot, "config.txt"), "[all]\nenable_uart=1\n", 0o644)
	writeFile(t, filepath.Join(boot, "cmdline.txt"), "console=serial0,115200 root=PARTUUID=5e3da3da-02 rootfstype=ext4 fsck.repair=yes rootwait\n", 0o644)
	sh(t, "mcopy", "-i", parts[0], filepath.Join(boot, "config.txt"), filepath.Join(boot, "cmdline.txt"), "::/")
	dir, unmount := mountRoot(t, parts[1])
	makeRoot(t, dir, s)
	unmount()
	detach(t, loop)
	return img
}

// fileState is one entry of a listing: type, mode, owner, size, content
// hash or link target, modification time.
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "lost+found" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		what := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			what = "-> " + l
		case fi.Mode().IsRegular():
			what = fileSHA256(t, p)
		}
		m[rel] = fmt.Sprintf("%v %d:%d %d %s mtime=%d", fi.Mode(), st.Uid, st.Gid, fi.Size(), what, fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func diffListings(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("changed %s: %s -> %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// installImage runs install-image.sh and returns its output.
func installImage(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return shErr(filepath.Join(repoRoot, "scripts", "install-image.sh"), append([]string{"--dist", dist(t)}, args...)...)
}

// operatorFiles writes a config and its secret files as an operator would.
func operatorFiles(t *testing.T, dataDir string) (cfg, pass, ca string) {
	t.Helper()
	d := t.TempDir()
	cfg = filepath.Join(d, "config.toml")
	data := ""
	if dataDir != "" {
		data = fmt.Sprintf("data_dir = %q   # where the inbox lives\n", dataDir)
	}
	writeFile(t, cfg, "device_id = \"5219709\"\n"+data+"\n[mqtt]\nbroker = \"tls://broker.example.com:8883\"\nusername = \"gw-5219709\"\npassword_file = \"/etc/edge-agent/mqtt.pass\"\nca_file = \"/etc/edge-agent/ca.pem\"\n", 0o644)
	pass = filepath.Join(d, "mqtt.pass")
	writeFile(t, pass, "s3cret\n", 0o644)
	ca = filepath.Join(d, "ca.pem")
	copyFile(t, agenttest.MustPKI(t).CAFile, ca, 0o644)
	return cfg, pass, ca
}

// checkInstalled checks what install-image.sh promises in a root.
func checkInstalled(t *testing.T, root, arch, dataDir string, files ...string) {
	t.Helper()
	passwd := readText(t, filepath.Join(root, "etc/passwd"))
	var uid, gid int
	found := false
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == "edge-agent" {
			found = true
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			if uid == 0 || uid >= 1000 {
				t.Errorf("edge-agent uid %d: want a system id (1…999)", uid)
			}
			if f[5] != dataDir || f[6] != "/usr/sbin/nologin" {
				t.Errorf("edge-agent home %q shell %q, want %s and /usr/sbin/nologin", f[5], f[6], dataDir)
			}
		}
	}
	if !found {
		t.Fatalf("no user edge-agent in etc/passwd:\n%s", passwd)
	}
	group := readText(t, filepath.Join(root, "etc/group"))
	if !strings.Contains(group, fmt.Sprintf("edge-agent:x:%d:", gid)) {
		t.Errorf("no group edge-agent with gid %d:\n%s", gid, group)
	}
	gpioMembers := ""
	for _, line := range strings.Split(group, "\n") {
		if strings.HasPrefix(line, "gpio:") {
			f := strings.Split(line, ":")
			gpioMembers = f[len(f)-1]
		}
	}
	if !strings.Contains(","+gpioMembers+",", ",edge-agent,") {
		t.Errorf("edge-agent not in group gpio (members %q)", gpioMembers)
	}
	if sh := readText(t, filepath.Join(root, "etc/shadow")); !strings.Contains(sh, "\nedge-agent:!") && !strings.Contains(sh, "\nedge-agent:*") {
		t.Errorf("no locked shadow entry for edge-agent:\n%s", sh)
	}

	type want struct {
		path     string
		mode     os.FileMode
		uid, gid int
		same     string // a file it must equal
	}
	wants := []want{
		{"usr/local/bin/edge-agent", 0o755, 0, 0, filepath.Join(dist(t), "edge-agent-linux-"+arch)},
		{"etc/systemd/system/edge-agent.service", 0o644, 0, 0, filepath.Join(repoRoot, "scripts", "edge-agent.service")},
		{"etc/edge-agent", fs.ModeDir | 0o750, 0, gid, ""},
		{strings.TrimPrefix(dataDir, "/"), fs.ModeDir | 0o750, uid, gid, ""},
		{"etc/udev/rules.d/60-edge-agent-gpio.rules", 0o644, 0, 0, ""},
	}
	// The config and its secrets: the agent reads them (group), only root
	// may rewrite them.
	for _, f := range files {
		wants = append(wants, want{"etc/edge-agent/" + filepath.Base(f), 0o640, 0, gid, f})
	}
	for _, w := range wants {
		p := filepath.Join(root, w.path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != w.mode || int(st.Uid) != w.uid || int(st.Gid) != w.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", w.path, fi.Mode(), st.Uid, st.Gid, w.mode, w.uid, w.gid)
		}
		if w.same != "" && fileSHA256(t, p) != fileSHA256(t, w.same) {
			t.Errorf("%s differs from %s", w.path, w.same)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/edge-agent.service")); err != nil || l != "/etc/systemd/system/edge-agent.service" {
		t.Errorf("unit not enabled: multi-user.target.wants/edge-agent.service -> %q (%v)", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ssh.service")); err != nil {
		t.Errorf("the image's own enabled units were touched: %v", err)
	}
	if rule := readText(t, filepath.Join(root, "etc/udev/rules.d/60-edge-agent-gpio.rules")); !strings.Contains(rule, `KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"`) {
		t.Errorf("udev rule:\n%s", rule)
	}
	dropin := filepath.Join(root, "etc/systemd/system/edge-agent.service.d/data-dir.conf")
	if dataDir == "/var/lib/edge-agent" {
		if _, err := os.Stat(dropin); err == nil {
			t.Errorf("a data_dir drop-in for the default data_dir")
		}
	} else if d := readText(t, dropin); !strings.Contains(d, "\nReadWritePaths="+dataDir+"\n") {
		t.Errorf("drop-in for data_dir %s:\n%s", dataDir, d)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hashRange is the SHA-256 of length bytes of path at off.
func hashRange(t *testing.T, path string, off, length int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, length)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The image case: a 32-bit Raspberry Pi OS image file gets the armv6
// build, the unit enabled, the config, the user (into the image's existing
// gpio group) and the data directory; a second run changes nothing, and
// the boot partition is never touched.
func TestInstallImageFile(t *testing.T) {
	needRoot(t)
	need(t, "fdisk", "sfdisk")
	need(t, "util-linux", "losetup", "partx", "blkid", "mount")
	need(t, "dosfstools", "mkfs.vfat")
	need(t, "mtools", "mcopy")
	need(t, "e2fsprogs", "mkfs.ext4")
	need(t, "passwd", "useradd", "groupadd", "usermod")

	img := makeImage(t, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	cfg, pass, ca := operatorFiles(t, "")
	bootHash := hashRange(t, img, bootStart*512, bootSectors*512)

	out, err := installImage(t, "-c", cfg, "-f", pass, "-f", ca, img)
	t.Logf("first run:\n%s", out)
	if err != nil {
		t.Fatalf("install-image.sh: %v", err)
	}
	if !strings.Contains(out, "arm userland: installing edge-agent-linux-armv6") {
		t.Errorf("first run did not name the armv6 build for an arm image")
	}

	loop, parts := loopDev(t, img)
	root, unmount := mountRoot(t, parts[1])
	checkInstalled(t, root, "armv6", "/var/lib/edge-agent", cfg, pass, ca)
	if g := readText(t, filepath.Join(root, "etc/group")); !strings.Contains(g, "gpio:x:997:pi,edge-agent\n") {
		t.Errorf("the image's gpio group (997, with pi) was not kept:\n%s", g)
	}
	before := listing(t, root)
	unmount()
	detach(t, loop)

	out, err = installImage(t, "-c", cfg, "-f", pass, "-f", ca, img)
	t.Logf("second run:\n%s", out)
	if err != nil {
		t.Fatalf("install-image.sh, second run: %v", err)
	}
	if !strings.Contains(out, "nothing to change") {
		t.Errorf("second run did not say it had nothing to change")
	}
	loop, parts = loopDev(t, img)
	root, unmount = mountRoot(t, parts[1])
	if d := diffListings(before, listing(t, root)); len(d) > 0 {
		t.Errorf("the second run changed the root file system:\n%s", strings.Join(d, "\n"))
	}
	unmount()
	detach(t, loop)
	if hashRange(t, img, bootStart*512, bootSectors*512) != bootHash {
		t.Error("the boot partition changed")
	}
}

// The mounted-root case: a 64-bit image without a gpio group, /bin/sh an
// absolute link (resolved inside the root, not on this machine), a config
// with its own data_dir (which gets a ReadWritePaths drop-in).
func TestInstallImageRootDir(t *testing.T) {
	needRoot(t)
	need(t, "passwd", "useradd", "groupadd", "usermod")
	root := t.TempDir()
	makeRoot(t, root, rootSpec{arch: "arm64", osName: "Debian GNU/Linux 12 (bookworm)", absShLink: true})
	cfg, pass, ca := operatorFiles(t, "/srv/edge-agent")

	out, err := installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	t.Logf("first run:\n%s", out)
	if err != nil {
		t.Fatalf("install-image.sh: %v", err)
	}
	checkInstalled(t, root, "arm64", "/srv/edge-agent", cfg, pass, ca)
	if !strings.Contains(out, "created group gpio") {
		t.Error("no gpio group was created")
	}
	before := listing(t, root)
	out, err = installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	if err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	if d := diffListings(before, listing(t, root)); len(d) > 0 {
		t.Errorf("the second run changed the root file system:\n%s", strings.Join(d, "\n"))
	}

	// An operator's new config: only it changes.
	writeFile(t, cfg, readText(t, cfg)+"\n[hw]\nbackend = \"sim\"\n", 0o644)
	out, err = installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	if err != nil {
		t.Fatalf("third run: %v\n%s", err, out)
	}
	// (The directory's mtime moves with the new entry.)
	d := diffListings(before, listing(t, root))
	if len(d) != 2 || !strings.HasPrefix(d[0], "changed etc/edge-agent/config.toml: ") || !strings.HasPrefix(d[1], "changed etc/edge-agent: ") {
		t.Errorf("a new config changed:\n%s", strings.Join(d, "\n"))
	}
}

// The config is checked as the agent will see it in the image: a file it
// names that was not installed fails the run, saying so.
func TestInstallImageChecksConfig(t *testing.T) {
	needRoot(t)
	need(t, "util-linux", "unshare", "chroot")
	root := t.TempDir()
	makeRoot(t, root, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	cfg, pass, ca := operatorFiles(t, "")
	out, err := installImage(t, "-c", cfg, "-f", pass, root) // no ca.pem
	if err == nil {
		t.Fatalf("succeeded without the CA the config names:\n%s", out)
	}
	if !strings.Contains(out, "mqtt.ca_file") || !strings.Contains(out, "fails 'edge-agent config check'") {
		t.Errorf("output does not name the problem:\n%s", out)
	}
	out, err = installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	if err != nil || !strings.Contains(out, "config check: /etc/edge-agent/config.toml: ok") {
		t.Errorf("with the CA: %v\n%s", err, out)
	}
}

// What it refuses, each before changing anything.
func TestInstallImageRefuses(t *testing.T) {
	needRoot(t)
	cfg, _, _ := operatorFiles(t, "")
	riscv := t.TempDir()
	makeRoot(t, riscv, rootSpec{osName: "Debian GNU/Linux 12 (bookworm)", shELFOther: true})
	arm := t.TempDir()
	makeRoot(t, arm, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	relCfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, relCfg, "device_id = \"x\"\ndata_dir = \"data\"\n", 0o600)
	// /etc/edge-agent a link whose ".." climbs out of the image: resolved
	// on this machine it would be a directory beside the image's root.
	escape := t.TempDir()
	makeRoot(t, escape, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	if err := os.Symlink("../../outside", filepath.Join(escape, "etc/edge-agent")); err != nil {
		t.Fatal(err)
	}
	loop := t.TempDir()
	makeRoot(t, loop, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	if err := os.Symlink("/etc/edge-agent", filepath.Join(loop, "etc/edge-agent")); err != nil {
		t.Fatal(err)
	}
	noOS := t.TempDir()
	makeRoot(t, noOS, rootSpec{arch: "armv6", osName: "Raspbian GNU/Linux 12 (bookworm)", gpioGroup: true})
	for _, f := range []string{"etc/os-release", "usr/lib/os-release"} {
		if err := os.Remove(filepath.Join(noOS, f)); err != nil {
			t.Fatal(err)
		}
	}
	noSums := distWithoutSums(t)

	for _, tc := range []struct {
		name string
		root string
		args []string
		want string
	}{
		{"unknown architecture", riscv, []string{"-c", cfg}, "machine 243"},
		{"binary for another architecture", arm, []string{"-c", cfg, "-b", filepath.Join(dist(t), "edge-agent-linux-arm64")}, "is for arm64, the image is arm"},
		{"relative data_dir", arm, []string{"-c", relCfg}, "must be an absolute path"},
		{"compressed image", arm, []string{"-c", cfg, "raspios.img.xz"}, "decompress it first"},
		{"no config", arm, nil, "no config given"},
		{"a link out of the image", escape, []string{"-c", cfg}, "/etc/edge-agent leads out of the image through the link /etc/edge-agent -> ../../outside: make that link point inside the image"},
		{"a loop of links", loop, []string{"-c", cfg}, "/etc/edge-agent: too many levels of symbolic links in the image"},
		{"no os-release", noOS, []string{"-c", cfg}, "no /etc/os-release or /usr/lib/os-release"},
		{"no SHA256SUMS", arm, []string{"-c", cfg, "-d", noSums}, "no " + noSums + "/SHA256SUMS to check the build against: run make dist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listing(t, tc.root)
			args := tc.args
			if len(args) == 0 || !strings.HasSuffix(args[len(args)-1], ".xz") {
				args = append(args, tc.root)
			}
			out, err := installImage(t, args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
			if d := diffListings(before, listing(t, tc.root)); len(d) > 0 {
				t.Errorf("changed the root although it refused:\n%s", strings.Join(d, "\n"))
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(escape), "outside")); err == nil {
		t.Error("the link out of the image was followed on this machine")
	}
}

// distWithoutSums is a copy of the dist binaries without SHA256SUMS.
func distWithoutSums(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, a := range distArches {
		copyFile(t, filepath.Join(dist(t), "edge-agent-linux-"+a), filepath.Join(d, "edge-agent-linux-"+a), 0o755)
	}
	return d
}

// A dist without SHA256SUMS is refused (above); --no-verify installs it,
// unchecked, on purpose.
func TestInstallImageNoVerify(t *testing.T) {
	needRoot(t)
	need(t, "passwd", "useradd", "groupadd", "usermod")
	root := t.TempDir()
	makeRoot(t, root, rootSpec{arch: "arm64", osName: "Debian GNU/Linux 12 (bookworm)"})
	cfg, pass, ca := operatorFiles(t, "")
	out, err := installImage(t, "-d", distWithoutSums(t), "--no-verify", "-c", cfg, "-f", pass, "-f", ca, root)
	if err != nil {
		t.Fatalf("install-image.sh --no-verify: %v\n%s", err, out)
	}
	checkInstalled(t, root, "arm64", "/var/lib/edge-agent", cfg, pass, ca)
}

// imageIDs is the uid and gid of user name in a root's etc/passwd.
func imageIDs(t *testing.T, root, name string) (uid, gid int) {
	t.Helper()
	for _, line := range strings.Split(readText(t, filepath.Join(root, "etc/passwd")), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid
		}
	}
	t.Fatalf("no user %s in %s/etc/passwd", name, root)
	return 0, 0
}

// checkMeta fails unless path (not followed) has mode and owner.
func checkMeta(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

// The image's own links are followed inside the image, as the gateway will
// follow them, never on this machine: /etc/edge-agent an absolute link to a
// directory that also exists here, and data_dir under /var/run, which is an
// absolute link to /run on Pi OS. This machine's directory and /run stay as
// they were; the image gets the config and the data directory where its
// links lead.
func TestInstallImageLinksInsideImage(t *testing.T) {
	needRoot(t)
	need(t, "passwd", "useradd", "groupadd", "usermod")
	need(t, "util-linux", "unshare", "chroot")
	root := t.TempDir()
	makeRoot(t, root, rootSpec{arch: "arm64", osName: "Debian GNU/Linux 12 (bookworm)"})
	host := t.TempDir() // this machine's, by its absolute path
	writeFile(t, filepath.Join(host, "keep"), "this machine's file\n", 0o644)
	hostBefore := listing(t, host)
	if err := os.Symlink(host, filepath.Join(root, "etc/edge-agent")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(root, "var/run")); err != nil {
		t.Fatal(err)
	}
	const dataDir = "/var/run/edge-agent-linktest"
	const hostData = "/run/edge-agent-linktest" // where it must not appear
	if _, err := os.Lstat(hostData); err == nil {
		t.Fatalf("%s exists on this machine before the run (left by an old run? remove it)", hostData)
	}
	t.Cleanup(func() { os.RemoveAll(hostData) })
	cfg, pass, ca := operatorFiles(t, dataDir)

	out, err := installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	t.Logf("first run:\n%s", out)
	if err != nil {
		t.Errorf("install-image.sh: %v", err) // and what it did to this machine:
	}
	if d := diffListings(hostBefore, listing(t, host)); len(d) > 0 {
		t.Errorf("this machine's %s changed:\n%s", host, strings.Join(d, "\n"))
	}
	if _, err := os.Lstat(hostData); err == nil {
		t.Errorf("data_dir %s was created on this machine as %s", dataDir, hostData)
	}

	uid, gid := imageIDs(t, root, "edge-agent")
	inImage := filepath.Join(root, host) // where /etc/edge-agent leads in the image
	checkMeta(t, inImage, fs.ModeDir|0o750, 0, gid)
	for _, f := range []string{cfg, pass, ca} {
		p := filepath.Join(inImage, filepath.Base(f))
		checkMeta(t, p, 0o640, 0, gid)
		if _, err := os.Stat(p); err == nil && fileSHA256(t, p) != fileSHA256(t, f) {
			t.Errorf("%s differs from %s", p, f)
		}
	}
	checkMeta(t, filepath.Join(root, "run/edge-agent-linktest"), fs.ModeDir|0o750, uid, gid)
	for link, want := range map[string]string{"etc/edge-agent": host, "var/run": "/run"} {
		if l, err := os.Readlink(filepath.Join(root, link)); err != nil || l != want {
			t.Errorf("the image's %s -> %q (%v), want it kept -> %s", link, l, err, want)
		}
	}
	if d := readText(t, filepath.Join(root, "etc/systemd/system/edge-agent.service.d/data-dir.conf")); !strings.Contains(d, "\nReadWritePaths="+dataDir+"\n") {
		t.Errorf("drop-in for data_dir %s:\n%s", dataDir, d)
	}
	if !strings.Contains(out, "config check: /etc/edge-agent/config.toml: ok") {
		t.Error("the config was not checked in the image through its links")
	}

	out, err = installImage(t, "-c", cfg, "-f", pass, "-f", ca, root)
	if err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("second run: %v\n%s", err, out)
	}
}
