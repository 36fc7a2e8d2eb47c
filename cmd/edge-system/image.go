package main

// The gateway's SD card: a Debian bookworm arm64 system with systemd as
// PID 1, partitioned like a Raspberry Pi OS card (FAT32 boot partition with
// the kernel and initramfs, ext4 root), built once per machine and kept in
// the cache. Each run works on a copy, so every run is a gateway's first
// boot with a freshly flashed card.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/cachedir"
)

const (
	suite  = "bookworm"
	mirror = "http://deb.debian.org/debian"
	// The card: 1 MiB of partition table and gap as Pi OS has, a 256 MiB
	// FAT32 boot partition, then the root file system.
	bootStart       = 2048   // sectors
	bootSize        = 524288 // sectors (256 MiB)
	rootStart       = bootStart + bootSize
	rootBytes int64 = 2 << 30
)

// packages on top of debootstrap's minbase: what a Pi OS Lite card has
// that the field path touches (systemd, udev, sshd, a kernel and its
// initramfs), plus busybox-static, whose arm64 binary runs the first boot
// that finishes the foreign debootstrap inside the guest.
var packages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "openssh-server",
	"linux-image-arm64", "initramfs-tools", "zstd", "kmod",
	"busybox-static", "iproute2", "procps",
}

// stage1Modules are what the first boot's busybox initramfs loads to reach
// the root partition (Debian's 6.1 arm64 kernel builds them as modules), in
// dependency order.
var stage1Modules = []string{
	"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk",
	"crc32c_generic", "jbd2", "mbcache", "crc16", "ext4",
}

// card is the cached image and what a run needs to boot and reach it.
type card struct {
	Dir       string            `json:"-"`
	Suite     string            `json:"suite"`
	Kernel    string            `json:"kernel"`   // uname -r
	HostKey   string            `json:"host_key"` // the guest sshd's ed25519 public key
	Built     time.Time         `json:"built"`
	BuildTook map[string]string `json:"build_took"` // step → duration
}

const cardManifest = "edge-system-card.json"

func (c *card) image() string   { return filepath.Join(c.Dir, "card.img") }
func (c *card) vmlinuz() string { return filepath.Join(c.Dir, "vmlinuz") }
func (c *card) initrd() string  { return filepath.Join(c.Dir, "initrd.img") }
func (c *card) key() string     { return filepath.Join(c.Dir, "id_ed25519") }

// Files are what must be in the cache for it to be complete.
func (c *card) Files() []string { return []string{c.image(), c.vmlinuz(), c.initrd(), c.key()} }

func loadCard(dir string) (*card, error) {
	c := &card{Dir: dir}
	if err := cachedir.Load(dir, cardManifest, c); err != nil {
		return nil, err
	}
	return c, nil
}

// ensureCard returns the cached card, building it first if the cache has
// none: debootstrap --foreign on this machine (no binfmt_misc: registering
// an interpreter would change the whole host), then a first boot of the
// guest under a busybox initramfs that runs debootstrap's second stage on
// the real arm64 CPU QEMU emulates, then the kernel and initramfs the
// guest's own initramfs-tools made are copied to the boot partition.
func ensureCard(cache, qemu string, logf func(string, ...any)) (*card, error) {
	if c, err := loadCard(cache); err == nil {
		logf("card image from the cache %s (Debian %s arm64, kernel %s, built %s)", cache, c.Suite, c.Kernel, c.Built.Format(time.DateOnly))
		return c, nil
	}
	stage, err := cachedir.Stage(cache)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	c := &card{Dir: filepath.Join(stage, "card"), Suite: suite, BuildTook: map[string]string{}}
	if err := os.Mkdir(c.Dir, 0o755); err != nil {
		return nil, err
	}
	step := func(name string, f func() error) error {
		t0 := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d := time.Since(t0).Round(time.Second)
		c.BuildTook[name] = d.String()
		logf("card: %s done in %s", name, d)
		return nil
	}
	root := filepath.Join(stage, "root")
	logf("card: debootstrap --foreign --arch=arm64 --variant=minbase %s (%s)", suite, strings.Join(packages, ","))
	if err := step("debootstrap --foreign", func() error {
		return runCmd("debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
			"--include="+strings.Join(packages, ","), suite, root, mirror)
	}); err != nil {
		return nil, err
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-system", "-f", c.key()).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	stage1 := filepath.Join(stage, "stage1.cpio.gz")
	var kernel string
	if err := step("first-boot initramfs", func() error {
		var err error
		kernel, err = buildStage1(stage, root, c.key()+".pub", stage1)
		return err
	}); err != nil {
		return nil, err
	}
	if err := step("card layout (sfdisk, mkfs.vfat, mkfs.ext4 -d)", func() error {
		return layCard(stage, root, c.image())
	}); err != nil {
		return nil, err
	}
	logf("card: first boot: debootstrap --second-stage inside the arm64 guest (TCG; several minutes)")
	if err := step("second stage in the guest", func() error {
		return secondStage(qemu, kernel, stage1, c.image(), filepath.Join(stage, "stage2.log"))
	}); err != nil {
		return nil, err
	}
	if err := step("kernel to the boot partition", func() error {
		return kernelToBoot(c, stage)
	}); err != nil {
		return nil, err
	}
	c.Built = time.Now().UTC()
	if err := cachedir.Commit(c.Dir, cache, cardManifest, c); err != nil {
		return nil, err
	}
	c.Dir = cache
	return c, nil
}

// buildStage1 writes the first boot's initramfs: the arm64 busybox and the
// modules that reach the root partition, both unpacked from the .debs
// debootstrap downloaded into the root, and an init that runs the second
// stage, configures the gateway and powers off. It returns the kernel to
// boot it with.
func buildStage1(stage, root, pubKey, out string) (string, error) {
	debs := filepath.Join(root, "var/cache/apt/archives")
	unpack := func(glob, dir string) error {
		m, _ := filepath.Glob(filepath.Join(debs, glob))
		if len(m) != 1 {
			return fmt.Errorf("want one %s in %s, found %d", glob, debs, len(m))
		}
		return runCmd("dpkg", "-x", m[0], dir)
	}
	kdir, bdir := filepath.Join(stage, "kernel"), filepath.Join(stage, "busybox")
	if err := unpack("linux-image-[0-9]*_arm64.deb", kdir); err != nil {
		return "", err
	}
	if err := unpack("busybox-static_*_arm64.deb", bdir); err != nil {
		return "", err
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return "", fmt.Errorf("want one vmlinuz in the kernel package, found %d", len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	ird := filepath.Join(stage, "initramfs")
	for _, d := range []string{"bin", "m", "dev", "proc", "sys", "newroot", "setup"} {
		if err := os.MkdirAll(filepath.Join(ird, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := copyFile(filepath.Join(bdir, "bin", "busybox"), filepath.Join(ird, "bin", "busybox"), 0o755); err != nil {
		return "", err
	}
	modRoot := filepath.Join(kdir, "lib", "modules", release)
	for _, m := range stage1Modules {
		var found string
		_ = filepath.WalkDir(modRoot, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == m+".ko" {
				found = p
			}
			return nil
		})
		if found == "" {
			return "", fmt.Errorf("no %s.ko in %s (Debian's kernel changed: update stage1Modules)", m, modRoot)
		}
		if err := copyFile(found, filepath.Join(ird, "m", m+".ko"), 0o644); err != nil {
			return "", err
		}
	}
	// The guest's initramfs-tools, configured before the second stage
	// installs the kernel: only the modules that reach the root partition
	// (Pi OS boots without an initramfs at all), gzipped. With the
	// defaults (MODULES=most, zstd -19) making it had not finished after
	// 15 minutes of the second stage under TCG.
	for p, body := range map[string]string{
		"etc/initramfs-tools/conf.d/edge-system":          "MODULES=list\nCOMPRESS=gzip\n",
		"usr/share/initramfs-tools/modules.d/edge-system": strings.Join(stage1Modules, "\n") + "\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	if err := copyFile(pubKey, filepath.Join(ird, "setup", "authorized_keys"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(ird, "init"), []byte(stage1Init(stage1Modules)), 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1 > "+shq(out))
	cmd.Dir = ird
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cpio: %v: %s", err, b)
	}
	return vmlinuz[0], nil
}

// stage1Init is the first boot's /init: debootstrap's second stage in a
// chroot of the root partition, then what turns the Debian root into the
// gateway's card. Every line it must see is echoed with a SYSTEM- prefix
// for the host.
func stage1Init(mods []string) string {
	return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in ` + strings.Join(mods, " ") + `; do insmod /m/$m.ko || echo "SYSTEM-FAIL insmod $m"; done
i=0; while [ ! -b /dev/vda2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fail() { echo "SYSTEM-FAIL $*"; sync; poweroff -f; }
mount -t ext4 /dev/vda2 /newroot || fail "mount /dev/vda2"
for d in proc sys dev; do mount --bind /$d /newroot/$d; done
echo SYSTEM-STAGE2
chroot /newroot /debootstrap/debootstrap --second-stage || { tail -n 40 /newroot/debootstrap/debootstrap.log; fail "debootstrap --second-stage"; }
R=/newroot
# A fixed machine id: systemd's first-boot prompts stay away and the
# journal is persistent in one directory.
chroot $R systemd-machine-id-setup >/dev/null || fail machine-id
echo edge-gw > $R/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tedge-gw\n' > $R/etc/hosts
# As Pi OS bookworm: the boot partition at /boot/firmware.
mkdir -p $R/boot/firmware
printf '/dev/vda2\t/\text4\tdefaults,noatime\t0\t1\n/dev/vda1\t/boot/firmware\tvfat\tdefaults,nofail\t0\t2\n' > $R/etc/fstab
mkdir -p $R/etc/systemd/network
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > $R/etc/systemd/network/50-dhcp.network
chroot $R systemctl enable systemd-networkd.service >/dev/null 2>&1 ||
	ln -sf /lib/systemd/system/systemd-networkd.service $R/etc/systemd/system/multi-user.target.wants/
mkdir -p $R/var/log/journal
mkdir -p -m 700 $R/root/.ssh && cp /setup/authorized_keys $R/root/.ssh/authorized_keys && chmod 600 $R/root/.ssh/authorized_keys
chroot $R apt-get clean
ls $R/boot/initrd.img-* >/dev/null 2>&1 || fail "no initramfs from initramfs-tools"
for d in proc sys dev; do umount /newroot/$d; done
sync; umount /newroot || fail "umount"; sync
echo SYSTEM-STAGE2-OK
poweroff -f
`
}

// layCard writes the partitioned image: a dos label with FAT32 (type c)
// and Linux (83) as Pi OS has, the root file system made from root with
// mkfs.ext4 -d (no mount needed).
func layCard(stage, root, img string) error {
	total := int64(rootStart)*512 + rootBytes
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(img, total); err != nil {
		return err
	}
	table := fmt.Sprintf("label: dos\nstart=%d, size=%d, type=c\nstart=%d, type=83\n", bootStart, bootSize, rootStart)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(table)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v: %s", err, b)
	}
	bootp, rootp := filepath.Join(stage, "boot.part"), filepath.Join(stage, "root.part")
	if err := os.WriteFile(bootp, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(bootp, bootSize*512); err != nil {
		return err
	}
	if err := runCmd("mkfs.vfat", "-F", "32", "-n", "BOOTFS", bootp); err != nil {
		return err
	}
	if err := os.WriteFile(rootp, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(rootp, rootBytes); err != nil {
		return err
	}
	if err := runCmd("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", root, rootp); err != nil {
		return err
	}
	if err := runCmd("dd", "if="+bootp, "of="+img, "bs=512", fmt.Sprint("seek=", bootStart), "conv=notrunc,sparse", "status=none"); err != nil {
		return err
	}
	return runCmd("dd", "if="+rootp, "of="+img, "bs=1M", fmt.Sprint("seek=", rootStart*512>>20), "conv=notrunc,sparse", "status=none")
}

// secondStage boots the card with the first-boot initramfs and waits for
// its verdict on the console.
func secondStage(qemu, kernel, initrd, img, logFile string) error {
	args := []string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
		"-display", "none", "-monitor", "none", "-serial", "file:" + logFile, "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyAMA0 panic=-1 quiet",
		"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + img,
		"-device", "virtio-blk-pci,drive=d0",
	}
	cmd := exec.Command(qemu, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", qemu, err, b)
	}
	b, _ := os.ReadFile(logFile)
	log := string(b)
	if !strings.Contains(log, "SYSTEM-STAGE2-OK") {
		return fmt.Errorf("the first boot did not finish (console log %s):\n%s", logFile, tailLines(log, 30))
	}
	return nil
}

// kernelToBoot copies the kernel and the initramfs the guest's
// initramfs-tools made from the root partition (mounted read-only on a
// loop device) to the boot partition (mtools: the FAT is not mounted), as
// a Pi OS card carries them, and to the cache for QEMU's -kernel/-initrd.
// It reads the guest sshd's host key on the way.
func kernelToBoot(c *card, stage string) error {
	mnt := filepath.Join(stage, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return err
	}
	off := fmt.Sprint(rootStart * 512)
	out, err := exec.Command("losetup", "-f", "--show", "-r", "-o", off, "--sizelimit", fmt.Sprint(rootBytes), c.image()).Output()
	if err != nil {
		return fmt.Errorf("losetup: %w", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	if err := runCmd("mount", "-o", "ro", loop, mnt); err != nil {
		return err
	}
	defer exec.Command("umount", mnt).Run()
	vmlinuz, _ := filepath.Glob(filepath.Join(mnt, "boot", "vmlinuz-*"))
	initrd, _ := filepath.Glob(filepath.Join(mnt, "boot", "initrd.img-*"))
	if len(vmlinuz) != 1 || len(initrd) != 1 {
		return fmt.Errorf("want one vmlinuz and one initrd.img in the root's /boot, found %d and %d", len(vmlinuz), len(initrd))
	}
	c.Kernel = strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	if err := copyFile(vmlinuz[0], c.vmlinuz(), 0o644); err != nil {
		return err
	}
	if err := copyFile(initrd[0], c.initrd(), 0o644); err != nil {
		return err
	}
	hk, err := os.ReadFile(filepath.Join(mnt, "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return fmt.Errorf("the guest's sshd host key: %w", err)
	}
	f := strings.Fields(string(hk))
	if len(f) < 2 {
		return fmt.Errorf("the guest's sshd host key: %q", hk)
	}
	c.HostKey = f[0] + " " + f[1]
	// Pi OS names them kernel8.img and initramfs8; the names do not
	// matter to QEMU, which is handed the files.
	fat := fmt.Sprintf("%s@@%d", c.image(), bootStart*512)
	if err := runCmd("mcopy", "-o", "-i", fat, c.vmlinuz(), "::/kernel8.img"); err != nil {
		return err
	}
	return runCmd("mcopy", "-o", "-i", fat, c.initrd(), "::/initramfs8")
}

// runCmd runs a command and returns its output's tail in the error.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tailLines(string(out), 10))
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
