package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestParseTrace: both ways strace shows a call killed on entry, and the
// writes left unsynced on the database's descriptor.
func TestParseTrace(t *testing.T) {
	for _, tc := range []struct {
		name, log, phase string
		unsynced         int
	}{
		{"meta write, one line", `6067  fsync(8)                          = 0
6067  pwrite64(5, ""..., 4096, 16384)   = 4096
6067  fdatasync(5)                      = 0
6067  pwrite64(5, ""..., 4096, 0)       = ?
6067  +++ killed by SIGKILL +++
`, "meta write", 0},
		{"meta write, interleaved", `6469  fdatasync(5)                      = 0
6469  pwrite64(5, ""..., 4096, 8192)    = 4096
6469  fdatasync(5)                      = 0
6469  pwrite64(5, ""..., 4096, 4096 <unfinished ...>
6470  +++ killed by SIGKILL +++
6469  <... pwrite64 resumed>)           = ?
6469  +++ killed by SIGKILL +++
`, "meta write", 0},
		{"data fsync", `16682 pwrite64(5, ""..., 4096, 4096) = 4096
16682 fdatasync(5)                      = 0
16682 pwrite64(5, ""..., 8192, 16384) = 8192
16683 fsync(9)                          = 0
16682 fdatasync(5 <unfinished ...>
16683 +++ killed by SIGKILL +++
16682 <... fdatasync resumed>)          = ?
`, "data fsync", 1},
		{"meta fsync", `1 pwrite64(5, ""..., 4096, 16384) = 4096
1 fdatasync(5) = 0
1 pwrite64(5, ""..., 4096, 0) = 4096
1 fdatasync(5) = ?
`, "meta fsync", 1},
		{"data write", `1 pwrite64(5, ""..., 4096, 16384) = 4096
1 pwrite64(5, ""..., 4096, 65536) = ?
`, "data write", 1},
		{"not landed", `1 pwrite64(5, ""..., 4096, 16384) = 4096
1 +++ killed by SIGKILL +++
`, "other", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "trace")
			if err := os.WriteFile(f, []byte(tc.log), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := parseTrace(f)
			if err != nil {
				t.Fatal(err)
			}
			if k.phase != tc.phase || len(k.unsynced) != tc.unsynced || k.landed != (tc.phase != "other") {
				t.Fatalf("phase %q unsynced %v landed %v; want %q, %d", k.phase, k.unsynced, k.landed, tc.phase, tc.unsynced)
			}
		})
	}
}
