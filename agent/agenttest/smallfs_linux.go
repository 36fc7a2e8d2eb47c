package agenttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SmallFS mounts a fresh ext4 file system of size bytes on a loop device
// and returns its mount point; it is unmounted at cleanup. Without root or
// the tools the test is skipped, except in CI (CI set), where it fails: the
// disk-full guarantee must be shown there.
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("disk-full test cannot run in CI: "+format, args...)
		}
		t.Skipf("disk-full test skipped: "+format, args...)
	}
	if os.Geteuid() != 0 {
		unavailable("needs root to mount a loop file system")
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable("%s not found (Debian package e2fsprogs / mount)", tool)
		}
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "fs.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		unavailable("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		unavailable("mount -o loop: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}
