package sinks

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// Cursors are committed in batches: every commitMax deliveries (and never
// more than that uncommitted), not per record.
func TestCursorCommittedEvery1000(t *testing.T) {
	db := openStore(t, nil)
	st := &countingStore{DB: db}
	const n = 5500
	for i := 0; i < n; i += 500 {
		appendMsgs(t, db, "t", numbered("r", i+1, 500)...)
	}
	path := filepath.Join(t.TempDir(), "out")
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{seq}"}}, st)
	m.commitEvery = time.Hour // only the count bound commits while it runs
	stop := start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "f").Cursor == n })
	stop()
	var got []uint64
	for _, c := range st.commitList() {
		got = append(got, c["f"])
	}
	// 1000, 2000, … 5000 at the bound, 5500 on the way out.
	if want := []uint64{1000, 2000, 3000, 4000, 5000, 5500}; !slices.Equal(got, want) {
		t.Errorf("committed cursors %v, want %v", got, want)
	}
	if lines := readLines(t, path); len(lines) != n {
		t.Errorf("%d lines, want %d", len(lines), n)
	}
}

// At a trickle, the cursor is committed within commitEvery of a delivery,
// once for many records, all sinks in one transaction.
func TestCursorCommittedWithinInterval(t *testing.T) {
	db := openStore(t, nil)
	st := &countingStore{DB: db}
	dir := t.TempDir()
	m, _ := newManager(t, []Config{
		{Name: "a", Type: TypeFile, Path: filepath.Join(dir, "a")},
		{Name: "b", Type: TypeFile, Path: filepath.Join(dir, "b")},
	}, st)
	m.commitEvery = 200 * time.Millisecond
	start(t, m)
	for i := 1; i <= 20; i++ {
		m.Stored(appendMsgs(t, db, "t", []byte("x")))
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "both cursors stored", func() bool {
		c, _ := db.SinkCursors()
		return c["a"] == 20 && c["b"] == 20
	})
	commits := st.commitList()
	if len(commits) > 4 {
		t.Errorf("%d commits for 20 records, want a few: %v", len(commits), commits)
	}
	both := false
	for _, c := range commits {
		both = both || len(c) == 2
	}
	if !both {
		t.Errorf("no commit carried both sinks: %v", commits)
	}
}

// After a SIGKILL the sink repeats at most what it delivered since its
// cursor's last commit, at most commitMax records: when commits stop
// reaching the file (the process is about to be killed), the sink stops
// delivering at commitMax uncommitted records.
func TestRepeatsAfterKillBounded(t *testing.T) {
	db := openStore(t, nil)
	const n = 2700
	appendMsgs(t, db, "t", numbered("r", 1, n)...)
	st := &countingStore{DB: db}
	path := filepath.Join(t.TempDir(), "out")
	cfg := []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{seq}"}}

	m, _ := newManager(t, cfg, st)
	m.commitEvery = time.Hour
	stop := start(t, m)
	waitFor(t, "first commit", func() bool { return len(st.commitList()) >= 1 })
	st.mu.Lock()
	st.fail = errors.New("killed") // from here on nothing reaches the file
	st.mu.Unlock()
	waitFor(t, "the sink to stop at the bound (or the end)", func() bool {
		s := status(m, "f")
		return s.Failed > 0 || s.Cursor == n
	})
	stop()
	c, _ := db.SinkCursors()
	delivered := len(readLines(t, path))
	if uncommitted := delivered - int(c["f"]); uncommitted > commitMax || uncommitted <= 0 {
		t.Fatalf("delivered %d with %d stored: %d uncommitted, want 1 to %d", delivered, c["f"], uncommitted, commitMax)
	}

	// A new agent on the same store repeats exactly those, then goes on.
	m2, _ := newManager(t, cfg, db)
	stop2 := start(t, m2)
	waitFor(t, "resume", func() bool { return status(m2, "f").Cursor == n })
	stop2()
	lines := readLines(t, path)
	if repeats := len(lines) - n; repeats != delivered-int(c["f"]) {
		t.Errorf("%d repeats, want %d", repeats, delivered-int(c["f"]))
	}
	if lines[len(lines)-1] != fmt.Sprint(n) || lines[delivered] != fmt.Sprint(c["f"]+1) {
		t.Errorf("the second run did not resume after the stored cursor %d", c["f"])
	}
}

// A restarted Manager on the same store goes on after the stored cursor:
// no repeat after a clean stop.
func TestRestartResumesAfterCursor(t *testing.T) {
	dir := t.TempDir()
	db := openStoreAt(t, dir, nil)
	path := filepath.Join(t.TempDir(), "out")
	cfg := []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{payload}"}}
	appendMsgs(t, db, "t", numbered("a", 1, 100)...)
	m, _ := newManager(t, cfg, db)
	stop := start(t, m)
	waitFor(t, "first run", func() bool { return status(m, "f").Cursor == 100 })
	stop()
	db.Close()

	db = openStoreAt(t, dir, nil)
	appendMsgs(t, db, "t", numbered("a", 101, 50)...)
	m2, _ := newManager(t, cfg, db)
	if st := status(m2, "f"); st.Cursor != 100 || st.Lag != 50 {
		t.Errorf("before Run: %+v, want cursor 100, lag 50", st)
	}
	stop2 := start(t, m2)
	waitFor(t, "second run", func() bool { return status(m2, "f").Cursor == 150 })
	stop2()
	lines := readLines(t, path)
	if want := numbered("a", 1, 150); len(lines) != 150 || lines[0] != string(want[0]) || lines[149] != string(want[149]) {
		t.Errorf("%d lines (%q … %q), want a-1 … a-150 once each", len(lines), lines[0], lines[len(lines)-1])
	}
	if st := status(m2, "f"); st.Delivered != 50 {
		t.Errorf("second run delivered %d, want 50", st.Delivered)
	}
}

// Records retention dropped before the sink had them are counted, logged
// with their range, and the sink goes on.
func TestDroppedCounted(t *testing.T) {
	db := openStore(t, &store.Options{RetainRecords: 10})
	if err := db.SetSinkCursors(map[string]uint64{"f": 0}); err != nil {
		t.Fatal(err)
	}
	appendMsgs(t, db, "t", numbered("r", 1, 30)...) // keeps 21…30
	path := filepath.Join(t.TempDir(), "out")
	m, lb := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{seq}"}}, db)
	start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "f").Cursor == 30 })
	if st := status(m, "f"); st.Dropped != 20 || st.Delivered != 10 {
		t.Errorf("status %+v, want 20 dropped, 10 delivered", st)
	}
	if lines := readLines(t, path); len(lines) != 10 || lines[0] != "21" {
		t.Errorf("lines %q", lines)
	}
	if log := lb.String(); !strings.Contains(log, "from=1 to=20 count=20") {
		t.Errorf("log does not name the range:\n%s", log)
	}

	// A sink new to the store starts at the oldest stored record: nothing
	// dropped.
	m2, _ := newManager(t, []Config{{Name: "new", Type: TypeFile, Path: filepath.Join(t.TempDir(), "o"), Format: "{seq}"}}, db)
	if st := status(m2, "new"); st.Cursor != 20 || st.Lag != 10 {
		t.Errorf("new sink: %+v, want cursor 20, lag 10", st)
	}
}

func TestRewindReplays(t *testing.T) {
	db := openStore(t, &store.Options{RetainRecords: 30})
	path := filepath.Join(t.TempDir(), "out")
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{seq}"}, {Name: "g", Type: TypeExec, Command: []string{"true"}}}, db)
	start(t, m)
	m.Stored(appendMsgs(t, db, "t", numbered("r", 1, 20)...))
	waitFor(t, "delivery", func() bool { return status(m, "f").Cursor == 20 })

	if err := m.Rewind("f", 5); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.SinkCursors(); c["f"] < 4 {
		t.Errorf("stored cursor after Rewind = %d, want ≥ 4", c["f"])
	}
	waitFor(t, "replay", func() bool { return len(readLines(t, path)) == 36 })
	lines := readLines(t, path)
	if lines[20] != "5" || lines[35] != "20" {
		t.Errorf("replay: %q", lines[20:])
	}
	waitFor(t, "cursor back at 20", func() bool { return status(m, "f").Cursor == 20 })

	// Forward, skipping records: allowed up to the newest + 1.
	if err := m.Rewind("f", 21); err != nil {
		t.Fatal(err)
	}
	m.Stored(appendMsgs(t, db, "t", numbered("r", 21, 20)...)) // retention keeps 11…40
	waitFor(t, "cursor 40", func() bool { return status(m, "f").Cursor == 40 })
	// Before the oldest stored record: the replay starts at it.
	if err := m.Rewind("f", 1); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.SinkCursors(); c["f"] < 10 {
		t.Errorf("rewound before the oldest: stored cursor %d, want ≥ 10", c["f"])
	}
	waitFor(t, "cursor 40 again", func() bool { return status(m, "f").Cursor == 40 })
	if st := status(m, "f"); st.Dropped != 0 {
		t.Errorf("dropped %d after a rewind past the oldest record, want 0", st.Dropped)
	}

	for _, tt := range []struct {
		name string
		seq  uint64
		want string
	}{
		{"nope", 1, `no sink named "nope"; the sinks are f, g`},
		{"f", 0, "seq starts at 1"},
		{"f", 42, "no record 42 yet: the newest is 40"},
	} {
		if err := m.Rewind(tt.name, tt.seq); err == nil || err.Error() != tt.want {
			t.Errorf("Rewind(%q, %d) = %v, want %q", tt.name, tt.seq, err, tt.want)
		}
	}
	m0, _ := newManager(t, nil, db)
	if err := m0.Rewind("f", 1); err == nil || !strings.Contains(err.Error(), "no sinks are configured") {
		t.Errorf("Rewind without sinks: %v", err)
	}
}

// A sink that keeps failing holds back only itself: the others deliver
// everything, and Stored never waits.
func TestFailingSinkDoesNotStopOthers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	db := openStore(t, nil)
	dir := t.TempDir()
	m, _ := newManager(t, []Config{
		{Name: "broken", Type: TypeHTTP, URL: srv.URL},
		{Name: "hung", Type: TypeExec, Command: []string{"sleep", "60"}, Timeout: time.Minute},
		{Name: "log", Type: TypeFile, Path: filepath.Join(dir, "out"), Format: "{seq}"},
	}, db)
	start(t, m)
	for i := 1; i <= 50; i++ {
		seq := appendMsgs(t, db, "t", []byte("x"))
		t0 := time.Now()
		for range 1000 {
			m.Stored(seq)
		}
		if d := time.Since(t0); d > 100*time.Millisecond {
			t.Errorf("1000 Stored calls took %v", d)
		}
	}
	waitFor(t, "the file sink", func() bool { return status(m, "log").Cursor == 50 })
	waitFor(t, "failures", func() bool { return status(m, "broken").Failed >= 2 })
	st := m.Status()
	if st["broken"].Cursor != 0 || st["broken"].Lag != 50 || st["hung"].Cursor != 0 || st["hung"].Lag != 50 {
		t.Errorf("status %+v", st)
	}
	if len(readLines(t, filepath.Join(dir, "out"))) != 50 {
		t.Error("the file sink missed records")
	}
}

// Run returns promptly when its context ends, even with a command and a
// request in flight, and stores the cursors on the way out.
func TestRunStopsPromptly(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	db := openStore(t, nil)
	appendMsgs(t, db, "t", []byte("x"))
	m, _ := newManager(t, []Config{
		{Name: "h", Type: TypeHTTP, URL: srv.URL, Timeout: time.Minute},
		{Name: "x", Type: TypeExec, Command: []string{"sleep", "60"}, Timeout: time.Minute},
		{Name: "f", Type: TypeFile, Path: filepath.Join(t.TempDir(), "o")},
	}, db)
	stop := start(t, m)
	waitFor(t, "the file sink", func() bool { return status(m, "f").Cursor == 1 })
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	stop()
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Run took %v to return", d)
	}
	if c, _ := db.SinkCursors(); c["f"] != 1 || c["h"] != 0 || c["x"] != 0 {
		t.Errorf("stored cursors %v", c)
	}
	if st := m.Status(); st["h"].Failed != 0 || st["x"].Failed != 0 {
		t.Errorf("stopping counted as a failure: %+v", st)
	}
}

// While the store cannot take the cursors, a sink stops at commitMax
// uncommitted deliveries, and goes on once it can.
func TestCommitFailureHoldsSink(t *testing.T) {
	db := openStore(t, nil)
	st := &countingStore{DB: db, fail: errors.New("disk full")}
	appendMsgs(t, db, "t", numbered("r", 1, 1500)...)
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: filepath.Join(t.TempDir(), "o"), Format: "{seq}"}}, st)
	m.commitEvery = time.Hour
	start(t, m)
	waitFor(t, "the bound", func() bool { return status(m, "f").Failed > 0 })
	if s := status(m, "f"); s.Cursor != 1000 || !strings.Contains(s.LastError, "disk full") {
		t.Errorf("status %+v, want held at 1000 by the store", s)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	waitFor(t, "the rest", func() bool { return status(m, "f").Cursor == 1500 })
}

func TestNewRefuses(t *testing.T) {
	db := openStore(t, nil)
	for _, tt := range []struct {
		cfgs []Config
		want string
	}{
		{[]Config{{Type: TypeFile, Path: "p"}}, "no name"},
		{[]Config{{Name: "a", Type: TypeFile, Path: "p"}, {Name: "a", Type: TypeExec, Command: []string{"x"}}}, `two sinks are named "a"`},
		{[]Config{{Name: "a", Type: "syslog"}}, `unknown sink type "syslog"`},
		{[]Config{{Name: "a", Type: TypeFile}}, "needs a path"},
		{[]Config{{Name: "a", Type: TypeFile, Path: "p", Format: "{payload}\n"}}, "one line"},
		{[]Config{{Name: "a", Type: TypeFile, Path: "p", Format: "{payloud}"}}, `unknown placeholder "{payloud}"`},
		{[]Config{{Name: "a", Type: TypeFile, Path: "p", Topics: []string{"a/#/b"}}}, "'#'"},
		{[]Config{{Name: "a", Type: TypeExec}}, "needs a command"},
		{[]Config{{Name: "a", Type: TypeHTTP}}, "needs a url"},
		{[]Config{{Name: "a", Type: TypeMQTT}}, "needs a broker"},
		{[]Config{{Name: "a", Type: TypeMQTT, Broker: "tcp://127.0.0.1:1883", Topic: "x/{topic}/{payload}"}}, `unknown placeholder "{payload}"`},
	} {
		if _, err := New(tt.cfgs, db, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfgs, err, tt.want)
		}
	}
}

func TestTemplate(t *testing.T) {
	r := store.Record{Seq: 42, Topic: "a/b", Payload: []byte("p\n"), ReceivedAt: t0}
	for _, tt := range []struct{ format, want string }{
		{DefaultFormat, "Received `p\\n` from `a/b` topic"},
		{"{seq}:{received_at}", "42:" + t0.Format(time.RFC3339Nano)},
		{"{} {x {seq", "{} {x {seq"},
	} {
		tp, err := parseTemplate(tt.format, FormatFields)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(tp.appendTo(nil, &r, true)); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.format, got, tt.want)
		}
	}
	if got := headerSafe("ok/é"); got != "ok/é" {
		t.Errorf("headerSafe changed %q", got)
	}
	if got := fmt.Sprint(headerSafe("a%\x7f\t")); got != "a%25%7F%09" {
		t.Errorf("headerSafe = %q", got)
	}
}
