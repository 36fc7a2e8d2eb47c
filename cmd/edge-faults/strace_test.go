package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestParseTrace: both ways strace shows a call killed on entry, and the
// writes left unsynced on the database's descriptor (traces without -y).
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
			k := parseLog(t, tc.log, "")
			if k.phase != tc.phase || count(k.unsynced) != tc.unsynced || k.landed != (tc.phase != "other") {
				t.Fatalf("phase %q unsynced %v landed %v; want %q, %d", k.phase, k.unsynced, k.landed, tc.phase, tc.unsynced)
			}
		})
	}
}

// TestParseTraceTwoFiles: with -y every call names its file, and each
// file's writes are durable only after that file's own sync: a kill in the
// journal leaves the database's unsynced writes unsynced, and the reverse.
func TestParseTraceTwoFiles(t *testing.T) {
	const (
		db = "/tmp/edge-faults-1/power-3/data/edge-agent.db"
		jr = "/tmp/edge-faults-1/power-3/data/edge-agent.journal"
	)
	type ws = map[string][]write
	for _, tc := range []struct {
		name, log, syscall, phase string
		unsynced, interrupted     ws
	}{
		{"journal write", `700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 8192, 16384) = 8192
700 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db>) = 0
700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 4096, 4096) = 4096
700 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db>) = 0
701 pwrite64(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>, ""..., 310, 8192) = ?
701 +++ killed by SIGKILL +++
`, "pwrite64", "journal write", ws{}, ws{jr: {{8192, 310}}}},
		{"journal fsync leaves the database's writes unsynced", `700 pwrite64(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>, ""..., 310, 0) = 310
700 fdatasync(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>) = 0
702 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 12288, 32768) = 12288
701 pwrite64(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>, ""..., 290, 4096) = 290
701 fdatasync(7</tmp/edge-faults-1/power-3/data/edge-agent.journal> <unfinished ...>
702 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db> <unfinished ...>
701 <... fdatasync resumed>) = ?
702 <... fdatasync resumed>) = ?
701 +++ killed by SIGKILL +++
702 +++ killed by SIGKILL +++
`, "fdatasync", "journal fsync", ws{db: {{32768, 12288}}, jr: {{4096, 290}}}, ws{}},
		{"a database sync does not sync the journal", `700 pwrite64(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>, ""..., 310, 0) = 310
700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 4096, 20480) = 4096
700 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db>) = 0
700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 4096, 0) = 4096
700 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db>) = ?
`, "fdatasync", "meta fsync", ws{db: {{0, 4096}}, jr: {{0, 310}}}, ws{}},
		{"zeros ahead through another descriptor of the database", `700 fdatasync(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>) = 0
700 pwrite64(9</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 65536, 1048576) = 65536
700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 4096, 16384) = 4096
700 fdatasync(5</tmp/edge-faults-1/power-3/data/edge-agent.db> <unfinished ...>
701 fsync(8</tmp/edge-faults-1/power-3/data>) = 0
700 <... fdatasync resumed>) = ?
`, "fdatasync", "data fsync", ws{db: {{1048576, 65536}, {16384, 4096}}}, ws{}},
		{"the injected call's phase, not another thread's", `701 fdatasync(7</tmp/edge-faults-1/power-3/data/edge-agent.journal> <unfinished ...>
700 pwrite64(5</tmp/edge-faults-1/power-3/data/edge-agent.db>, ""..., 4096, 4096 <unfinished ...>
701 <... fdatasync resumed>) = ?
700 <... pwrite64 resumed>) = ?
700 +++ killed by SIGKILL +++
`, "pwrite64", "meta write", ws{}, ws{db: {{4096, 4096}}}},
		{"another file", `700 pwrite64(7</tmp/edge-faults-1/power-3/data/edge-agent.journal>, ""..., 310, 0) = 310
700 fdatasync(11</tmp/edge-faults-1/power-3/sink.log>) = ?
`, "fdatasync", "other", ws{jr: {{0, 310}}}, ws{}},
		{"a path with a space", `700 pwrite64(7</tmp/a b/edge-agent.journal>, ""..., 310, 12288) = 310
700 fdatasync(7</tmp/a b/edge-agent.journal>) = ?
`, "fdatasync", "journal fsync", ws{"/tmp/a b/edge-agent.journal": {{12288, 310}}}, ws{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := parseLog(t, tc.log, tc.syscall)
			if !k.landed || k.phase != tc.phase {
				t.Fatalf("landed %v phase %q; want %q", k.landed, k.phase, tc.phase)
			}
			if !reflect.DeepEqual(k.unsynced, tc.unsynced) {
				t.Errorf("unsynced %v; want %v", k.unsynced, tc.unsynced)
			}
			if !reflect.DeepEqual(k.interrupted, tc.interrupted) {
				t.Errorf("interrupted %v; want %v", k.interrupted, tc.interrupted)
			}
		})
	}
}

// TestTearFiles: a power cut tears each file's own writes, at their
// offsets, and nothing else.
func TestTearFiles(t *testing.T) {
	dir := t.TempDir()
	db, jr := filepath.Join(dir, "edge-agent.db"), filepath.Join(dir, "edge-agent.journal")
	for _, f := range []string{db, jr} {
		if err := os.WriteFile(f, make([]byte, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The trace names the files by another path (another data dir): the
	// tear goes to the store's files in dir.
	cut := map[string][]write{
		"/elsewhere/edge-agent.db":      {{16384, 8192}},
		"/elsewhere/edge-agent.journal": {{4096, 300}},
	}
	n, err := tearFiles(dir, cut, rand.New(rand.NewPCG(1, 2)))
	if err != nil || n != 2 {
		t.Fatalf("tearFiles = %d, %v; want 2 writes torn", n, err)
	}
	changed := func(path string) [][2]int {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var runs [][2]int
		for i := 0; i < len(b); i++ {
			if b[i] == 0 {
				continue
			}
			j := i
			for j < len(b) && b[j] != 0 {
				j++
			}
			runs = append(runs, [2]int{i, j})
			i = j
		}
		return runs
	}
	// Garbage bytes may be zero, so check only that nothing outside the
	// torn sectors changed and that each torn sector changed.
	within := func(runs [][2]int, sectors [][2]int) bool {
		for _, r := range runs {
			ok := false
			for _, s := range sectors {
				if r[0] >= s[0] && r[1] <= s[1] {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		for _, s := range sectors {
			hit := false
			for _, r := range runs {
				if r[0] < s[1] && r[1] > s[0] {
					hit = true
				}
			}
			if !hit {
				return false
			}
		}
		return true
	}
	if r := changed(db); !within(r, [][2]int{{16384, 16384 + 512}, {16384 + 8192 - 512, 16384 + 8192}}) {
		t.Errorf("database changed at %v; want its write's first and last sector", r)
	}
	// A write shorter than a sector: one sector from its start.
	if r := changed(jr); !within(r, [][2]int{{4096, 4096 + 512}}) {
		t.Errorf("journal changed at %v; want one sector at its write", r)
	}
	if _, err := tearFiles(dir, map[string][]write{"fd 5": {{0, 4096}}}, rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Error("a trace without file names was torn somewhere")
	}
}

func parseLog(t *testing.T, log, syscall string) commitKill {
	t.Helper()
	f := filepath.Join(t.TempDir(), "trace")
	if err := os.WriteFile(f, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := parseTrace(f, syscall)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func count(m map[string][]write) int {
	n := 0
	for _, ws := range m {
		n += len(ws)
	}
	return n
}
