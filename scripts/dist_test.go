package scripts

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Each binary is static, for its architecture, stamped, and runs `version`
// on its CPU: the armv6 one on the Pi Zero's ARM1176, where one ARMv7
// instruction would kill it (the armv7 build dies there, which shows the
// check has teeth).
func TestDistBinaries(t *testing.T) {
	need(t, "qemu-user-static", "qemu-arm-static", "qemu-aarch64-static")
	d := dist(t)
	if out, err := runIn(d, "sha256sum", "-c", "SHA256SUMS"); err != nil {
		t.Fatalf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(d, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(strings.Split(strings.TrimSpace(string(sums)), "\n")); got != len(distArches) {
		t.Errorf("SHA256SUMS has %d lines, want %d:\n%s", got, len(distArches), sums)
	}

	for _, tc := range []struct {
		arch    string
		machine elf.Machine
		class   elf.Class
		goarch  string
		goarm   string
		run     []string // emulator and CPU; empty = this machine
	}{
		{"armv6", elf.EM_ARM, elf.ELFCLASS32, "arm", "6", []string{"qemu-arm-static", "-cpu", "arm1176"}},
		{"armv7", elf.EM_ARM, elf.ELFCLASS32, "arm", "7", []string{"qemu-arm-static", "-cpu", "cortex-a7"}},
		{"arm64", elf.EM_AARCH64, elf.ELFCLASS64, "arm64", "", []string{"qemu-aarch64-static", "-cpu", "cortex-a53"}},
		{"amd64", elf.EM_X86_64, elf.ELFCLASS64, "amd64", "", nil},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			bin := filepath.Join(d, "edge-agent-linux-"+tc.arch)
			fi, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.2f MB", filepath.Base(bin), float64(fi.Size())/1e6)

			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != tc.machine || f.Class != tc.class {
				t.Errorf("ELF %v %v, want %v %v", f.Class, f.Machine, tc.class, tc.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has a %v program header: not static", p.Type)
				}
			}

			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			want := map[string]string{"-trimpath": "true", "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": tc.goarch, "GOARM": tc.goarm}
			for k, v := range want {
				if settings[k] != v {
					t.Errorf("build setting %s = %q, want %q", k, settings[k], v)
				}
			}
			for k := range settings {
				if strings.HasPrefix(k, "vcs") {
					t.Errorf("build setting %s: VCS stamping makes the bytes depend on the checkout", k)
				}
			}
			if f.Section(".symtab") != nil {
				t.Error("has a symbol table: not stripped (-s -w)")
			}

			args := append(append([]string(nil), tc.run...), bin, "version")
			out, err := runIn("", args[0], args[1:]...)
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
			}
			wantOut := "edge-agent " + testVersion + " (commit " + testCommit + ", " + goVersion + ", linux/" + tc.goarch + ")\n"
			if out != wantOut {
				t.Errorf("%s:\n got %q\nwant %q", strings.Join(args, " "), out, wantOut)
			}
		})
	}

	t.Run("armv7 on arm1176 dies", func(t *testing.T) {
		out, err := runIn("", "qemu-arm-static", "-cpu", "arm1176", filepath.Join(d, "edge-agent-linux-armv7"), "version")
		if err == nil {
			t.Fatalf("the armv7 build ran on an ARM1176 (%q): the armv6 check proves nothing", out)
		}
	})
}

// Two builds give the same bytes: a second copy of the tree at another
// path, built with an empty build cache so nothing is replayed from the
// first, matches byte for byte, SHA256SUMS included.
func TestDistReproducible(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// Both from one snapshot of the tree (others may be editing it).
	a, b := filepath.Join(tmp, "a", "edge-agent"), filepath.Join(tmp, "elsewhere", "b", "src")
	snapshot(t, repoRoot, a)
	snapshot(t, a, b)
	outA, outB := filepath.Join(tmp, "dist-a"), filepath.Join(tmp, "dist-b")
	if out, err := makeDist(a, outA); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	// The cold build is the heaviest thing in make test: niced, so the
	// other packages' timing-sensitive tests keep their CPU.
	if out, err := makeDistNice(10, b, outB, "GOCACHE="+filepath.Join(tmp, "empty-cache")); err != nil {
		t.Fatalf("make dist (empty cache): %v\n%s", err, out)
	}
	for _, name := range append(distNames(), "SHA256SUMS") {
		ba, err := os.ReadFile(filepath.Join(outA, name))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(outB, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			t.Errorf("%s differs between the two builds (%d and %d bytes)", name, len(ba), len(bb))
		}
	}
	// The Go module cache is written read-only; the empty cache too.
	_ = exec.Command("chmod", "-R", "u+w", tmp).Run()
}

func distNames() []string {
	var names []string
	for _, a := range distArches {
		names = append(names, "edge-agent-linux-"+a)
	}
	return names
}

// snapshot copies the module's source files (what git tracks or would
// track, as they are now) from src to dst.
func snapshot(t *testing.T, src, dst string) {
	t.Helper()
	var files []string
	if out, err := runIn(src, "git", "ls-files", "-co", "--exclude-standard", "-z"); err == nil {
		for _, f := range strings.Split(out, "\x00") {
			if f != "" {
				files = append(files, f)
			}
		}
	} else {
		err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if d.IsDir() && (rel == ".git" || rel == "bin" || rel == "dist") {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(src, f))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		copyFile(t, filepath.Join(src, f), filepath.Join(dst, f), fi.Mode().Perm())
	}
}

// runIn runs a command in dir (the current directory if "") and returns its
// combined output.
func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}
