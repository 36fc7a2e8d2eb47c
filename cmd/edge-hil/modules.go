package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// guestModules are the kernel modules the guest loads: Debian's arm64
// kernel builds these as modules (=m), the rest of what the guest needs
// (virtio-pci, the PL061 driver and its character device, PL011, PL031,
// devtmpfs) is built in. crc32c_generic is ext4's soft dependency
// ("softdep=pre: crypto-crc32c"): without it a metadata_csum file system
// (mkfs.ext4's default) does not mount, and the guest has no modprobe to
// resolve the alias.
var guestModules = []string{"virtio_net", "virtio_blk", "crc32c_generic", "ext4"}

// modName is a module's name from its file name: "ext4.ko.xz" → "ext4";
// dashes and underscores are the same to the kernel ("gpio-sim" is
// gpio_sim).
func modName(file string) string {
	base := file[strings.LastIndexByte(file, '/')+1:]
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(base, ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	return strings.ReplaceAll(base, "-", "_")
}

// parseModinfo reads the key=value strings of a module's .modinfo section
// (NUL-separated) and returns the modules it depends on ("depends=a,b").
func parseModinfo(sec []byte) (depends []string) {
	for _, kv := range bytes.Split(sec, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok || k != "depends" {
			continue
		}
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				depends = append(depends, strings.ReplaceAll(d, "-", "_"))
			}
		}
	}
	return depends
}

// loadOrder returns roots and everything they depend on, each after its
// dependencies (the order insmod needs, as modules.dep would give it), each
// once. deps maps a module to its direct dependencies; a module missing
// from deps or a cycle is an error.
func loadOrder(roots []string, deps map[string][]string) ([]string, error) {
	var out []string
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(m string, path []string) error
	visit = func(m string, path []string) error {
		switch state[m] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(path, m), " → "))
		}
		d, ok := deps[m]
		if !ok {
			if len(path) == 0 {
				return fmt.Errorf("module %s not found in the kernel package", m)
			}
			return fmt.Errorf("module %s (needed by %s) not found in the kernel package", m, path[len(path)-1])
		}
		state[m] = 1
		for _, x := range d {
			if err := visit(x, append(path, m)); err != nil {
				return err
			}
		}
		state[m] = 2
		out = append(out, m)
		return nil
	}
	for _, r := range roots {
		if err := visit(r, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// moduleDeps reads the depends= of a decompressed module file.
func moduleDeps(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	return parseModinfo(b), nil
}

// decompress returns a module's bytes. busybox insmod takes only plain
// .ko files, and Debian compresses its modules (xz in 6.12), so they are
// unpacked here on the host, once, into the cache.
func decompress(path string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(path, ".ko"):
		tool = "cat"
	case strings.HasSuffix(path, ".xz"):
		tool = "xz"
	case strings.HasSuffix(path, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(path, ".gz"):
		tool = "gzip"
	default:
		return nil, fmt.Errorf("%s: unknown module compression", path)
	}
	args := []string{"-dc", path}
	if tool == "cat" {
		args = []string{path}
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(tool, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", tool, path, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// kernelPackage matches Debian's versioned arm64 kernel image packages,
// signed ("linux-image-6.12.117+deb12-arm64") and unsigned (…-unsigned);
// not the 16k, cloud or rt flavours, nor -dbg.
var kernelPackage = regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb(\d+)-arm64(-unsigned)?$`)

// kernelCandidates orders the kernel image packages among names newest
// first (by upstream patch level, then Debian revision), the signed image
// before the unsigned one of the same version: both hold the same kernel,
// and whichever the archive has will do.
func kernelCandidates(names []string) []string {
	type cand struct {
		name       string
		patch, deb int
		unsigned   bool
	}
	var cs []cand
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		m := kernelPackage.FindStringSubmatch(n)
		if m == nil || seen[n] {
			continue
		}
		seen[n] = true
		p, _ := strconv.Atoi(m[1])
		d, _ := strconv.Atoi(m[2])
		cs = append(cs, cand{name: n, patch: p, deb: d, unsigned: m[3] != ""})
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.patch != b.patch {
			return a.patch > b.patch
		}
		if a.deb != b.deb {
			return a.deb > b.deb
		}
		return !a.unsigned && b.unsigned
	})
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}
