package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/cachedir"
)

// guestFiles are what the guest is made of, all from Debian's arm64
// archive, kept in the cache directory between runs: the kernel image, the
// modules the guest loads (decompressed, in load order) and a static arm64
// busybox. The host's busybox-static is x86-64 and no use to the guest.
type guestFiles struct {
	Dir     string   `json:"-"`
	Release string   `json:"release"` // uname -r, "6.12.117+deb12-arm64"
	Kernel  string   `json:"kernel"`  // package and version it came from
	Busybox string   `json:"busybox"`
	Modules []string `json:"modules"` // load order
}

const manifestName = "edge-hil-cache.json"

func (g *guestFiles) vmlinuz() string { return filepath.Join(g.Dir, "vmlinuz") }
func (g *guestFiles) busybox() string { return filepath.Join(g.Dir, "busybox") }
func (g *guestFiles) module(name string) string {
	return filepath.Join(g.Dir, "modules", name+".ko")
}

// Files are what must be in the cache for it to be complete.
func (g *guestFiles) Files() []string {
	files := []string{g.vmlinuz(), g.busybox()}
	for _, m := range g.Modules {
		files = append(files, g.module(m))
	}
	return files
}

// loadCache returns the guest files in dir if a complete set is there.
func loadCache(dir string) (*guestFiles, error) {
	g := &guestFiles{Dir: dir}
	if err := cachedir.Load(dir, manifestName, g); err != nil {
		return nil, err
	}
	return g, nil
}

// ensureGuest returns the cached guest files, fetching them first if the
// cache has no complete set: Debian's arm64 kernel image package and
// busybox-static, downloaded with apt-get download and unpacked with dpkg
// -x (never installed), of which only vmlinuz, the modules the guest loads
// and busybox are kept. A second run downloads nothing.
func ensureGuest(cache string, logf func(string, ...any)) (*guestFiles, error) {
	if g, err := loadCache(cache); err == nil {
		logf("guest kernel %s from the cache %s (%s; %s)", g.Release, cache, g.Kernel, g.Busybox)
		return g, nil
	}
	t0 := time.Now()
	// Built beside the cache and renamed into place, so an interrupted
	// fetch never leaves a cache that looks complete.
	stage, err := cachedir.Stage(cache)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	// apt-get download drops to user _apt, which must reach the directory.
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, err
	}
	if err := ensureArm64Arch(logf); err != nil {
		return nil, err
	}
	logf("apt-get update (arm64 package lists)")
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get update: %w: %s", err, tailLines(string(out), 5))
	}
	pkg, err := pickKernelPackage()
	if err != nil {
		return nil, err
	}
	dl := filepath.Join(stage, "deb")
	if err := os.Mkdir(dl, 0o755); err != nil {
		return nil, err
	}
	logf("apt-get download %s:arm64 busybox-static:arm64 (about 95 MB)", pkg)
	cmd := exec.Command("apt-get", "download", "-q", pkg+":arm64", "busybox-static:arm64")
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s:arm64 busybox-static:arm64: %w: %s", pkg, err, tailLines(string(out), 5))
	}
	g := &guestFiles{Dir: filepath.Join(stage, "files")}
	if err := os.MkdirAll(filepath.Join(g.Dir, "modules"), 0o755); err != nil {
		return nil, err
	}
	logf("dpkg -x the kernel and busybox; keeping vmlinuz, busybox and the modules %s with their dependencies",
		strings.Join(guestModules, ", "))
	if err := unpackKernel(dl, stage, g); err != nil {
		return nil, err
	}
	if err := unpackBusybox(dl, stage, g); err != nil {
		return nil, err
	}
	if err := cachedir.Commit(g.Dir, cache, manifestName, g); err != nil {
		return nil, err
	}
	g.Dir = cache
	logf("guest kernel %s cached in %s (%s)", g.Release, cache, time.Since(t0).Round(100*time.Millisecond))
	return g, nil
}

// ensureArm64Arch adds arm64 to dpkg's foreign architectures if it is not
// there yet, so that apt knows the arm64 packages (nothing arm64 is ever
// installed).
func ensureArm64Arch(logf func(string, ...any)) error {
	out, err := exec.Command("dpkg", "--print-foreign-architectures").Output()
	if err != nil {
		return fmt.Errorf("dpkg --print-foreign-architectures: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "arm64" {
			return nil
		}
	}
	logf("dpkg --add-architecture arm64")
	if out, err := exec.Command("dpkg", "--add-architecture", "arm64").CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg --add-architecture arm64: %w: %s", err, out)
	}
	return nil
}

// pickKernelPackage asks apt-cache for the newest 6.12 arm64 kernel image
// package the archive has (signed or unsigned).
func pickKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "pkgnames", "linux-image-6.12.").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache pkgnames linux-image-6.12.: %w", err)
	}
	cands := kernelCandidates(strings.Split(string(out), "\n"))
	for _, c := range cands {
		// pkgnames lists names from every architecture and version ever
		// seen in the lists; show says whether arm64 has it now.
		if exec.Command("apt-cache", "show", "--no-all-versions", c+":arm64").Run() == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no linux-image-6.12.*-arm64 package in the apt lists (%d names looked at): is the arm64 architecture added and apt-get update done?", len(cands))
}

// unpackKernel unpacks the kernel package into stage/kernel and copies
// vmlinuz and the guest's modules (with their dependencies, decompressed)
// into g.Dir.
func unpackKernel(dl, stage string, g *guestFiles) error {
	debs, _ := filepath.Glob(filepath.Join(dl, "linux-image-*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("want one linux-image .deb in %s, found %d", dl, len(debs))
	}
	root := filepath.Join(stage, "kernel")
	if out, err := exec.Command("dpkg", "-x", debs[0], root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg -x %s: %w: %s", debs[0], err, out)
	}
	g.Kernel = debDescription(debs[0])
	imgs, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(imgs) != 1 {
		return fmt.Errorf("want one boot/vmlinuz-* in %s, found %d", debs[0], len(imgs))
	}
	g.Release = strings.TrimPrefix(filepath.Base(imgs[0]), "vmlinuz-")
	if err := copyFile(imgs[0], g.vmlinuz(), 0o644); err != nil {
		return err
	}
	modDir := ""
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		if p := filepath.Join(root, d, g.Release); isDir(p) {
			modDir = p
		}
	}
	if modDir == "" {
		return fmt.Errorf("no modules directory for %s in %s", g.Release, debs[0])
	}
	paths := map[string]string{} // module name → file
	err := filepath.WalkDir(modDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			paths[modName(p)] = p
		}
		return err
	})
	if err != nil {
		return err
	}
	// Read the dependencies of the modules reachable from guestModules
	// (the package has no modules.dep: depmod makes it at install).
	deps := map[string][]string{}
	data := map[string][]byte{}
	queue := append([]string(nil), guestModules...)
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if _, done := deps[m]; done {
			continue
		}
		p, ok := paths[m]
		if !ok {
			continue // loadOrder names what is missing
		}
		ko, err := decompress(p)
		if err != nil {
			return err
		}
		d, err := moduleDeps(ko)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		deps[m], data[m] = d, ko
		queue = append(queue, d...)
	}
	order, err := loadOrder(guestModules, deps)
	if err != nil {
		return err
	}
	for _, m := range order {
		if err := os.WriteFile(g.module(m), data[m], 0o644); err != nil {
			return err
		}
	}
	g.Modules = order
	return nil
}

func unpackBusybox(dl, stage string, g *guestFiles) error {
	debs, _ := filepath.Glob(filepath.Join(dl, "busybox-static_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("want one busybox-static .deb in %s, found %d", dl, len(debs))
	}
	root := filepath.Join(stage, "busybox")
	if out, err := exec.Command("dpkg", "-x", debs[0], root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg -x %s: %w: %s", debs[0], err, out)
	}
	g.Busybox = debDescription(debs[0])
	return copyFile(filepath.Join(root, "bin", "busybox"), g.busybox(), 0o755)
}

// debDescription is "package version" of a .deb.
func debDescription(deb string) string {
	out, err := exec.Command("dpkg-deb", "--showformat=${Package} ${Version}", "-W", deb).Output()
	if err != nil {
		return filepath.Base(deb)
	}
	return strings.TrimSpace(string(out))
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
