package sinks

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFileSinkWritesEveryRecordInOrder(t *testing.T) {
	db := openStore(t, nil)
	path := filepath.Join(t.TempDir(), "log", "notify.log")
	// 600 records: several batches; every third on a topic the sink
	// does not take.
	var want []string
	for i := 1; i <= 600; i++ {
		topic := "/sys/gw/thing/push/notify"
		if i%3 == 0 {
			topic = "/sys/gw/other"
		} else {
			want = append(want, fmt.Sprintf("Received `n-%d` from `%s` topic", i, topic))
		}
		appendMsgs(t, db, topic, fmt.Appendf(nil, "n-%d", i))
	}
	m, _ := newManager(t, []Config{{Name: "log", Type: TypeFile, Path: path, Topics: []string{"/sys/+/thing/#"}}}, db)
	stop := start(t, m)
	m.Stored(600)
	waitFor(t, "cursor 600", func() bool { return status(m, "log").Cursor == 600 })
	stop()

	if got := readLines(t, path); !slices.Equal(got, want) {
		t.Errorf("file has %d lines, want %d; first %q", len(got), len(want), got[:min(3, len(got))])
	}
	st := status(m, "log")
	if st.Delivered != 400 || st.Lag != 0 || st.Failed != 0 || st.Dropped != 0 || st.LastError != "" {
		t.Errorf("status = %+v, want 400 delivered, nothing else", st)
	}
	if c, _ := db.SinkCursors(); c["log"] != 600 {
		t.Errorf("stored cursor = %d, want 600", c["log"])
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}

// One record is one line, whatever its payload: invalid UTF-8 and
// non-printable characters are written as %q writes them.
func TestFileSinkEscapes(t *testing.T) {
	db := openStore(t, nil)
	path := filepath.Join(t.TempDir(), "out")
	payloads := [][]byte{
		[]byte("plain text, with `quotes\" and \\ backslashes"),
		[]byte("two\nlines\r\n"),
		{0x00, 0x01, 0xfe, 0xff, 'b', 'i', 'n'},
		[]byte("tab\there and é ü 温度 🙂"),
		[]byte("line\u2028separator"),
		{},
	}
	appendMsgs(t, db, "a/b", payloads...)
	appendMsgs(t, db, "top\nic", []byte("x"))
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{seq} {received_at} {topic} [{payload}]"}}, db)
	stop := start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "f").Cursor == 7 })
	stop()
	ts := func(i int) string { return t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano) }
	want := []string{
		"1 " + ts(0) + " a/b [plain text, with `quotes\" and \\ backslashes]",
		"2 " + ts(1) + ` a/b [two\nlines\r\n]`,
		"3 " + ts(2) + ` a/b [\x00\x01\xfe\xffbin]`,
		"4 " + ts(3) + ` a/b [tab\there and é ü 温度 🙂]`,
		"5 " + ts(4) + ` a/b [line\u2028separator]`,
		"6 " + ts(5) + " a/b []",
		"7 " + ts(0) + ` top\nic [x]`,
	}
	got := readLines(t, path)
	if !slices.Equal(got, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The escaped form is Go's: strconv.Unquote gives the bytes back.
	for i, p := range payloads[1:3] {
		line := got[i+1]
		inner := line[strings.IndexByte(line, '[')+1 : len(line)-1]
		back, err := strconv.Unquote(`"` + inner + `"`)
		if err != nil || back != string(p) {
			t.Errorf("unquote %q = %q, %v; want %q", inner, back, err, p)
		}
	}
}

func TestFileSinkRotates(t *testing.T) {
	db := openStore(t, nil)
	path := filepath.Join(t.TempDir(), "out.log")
	// Lines are "n-NNN\n": 6 bytes; 10 fit in 64.
	const n = 150
	for i := 100; i < 100+n; i++ {
		appendMsgs(t, db, "t", fmt.Appendf(nil, "n-%d", i))
	}
	// A stale file beyond keep is left as it is; path.2 is replaced.
	os.WriteFile(path+".2", []byte("old\n"), 0o600)
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{payload}", MaxSize: 64, Keep: 2}}, db)
	stop := start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "f").Cursor == n })
	stop()

	var all []string
	for _, p := range []string{path + ".2", path + ".1", path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 64 {
			t.Errorf("%s is %d bytes, over max_size 64", p, fi.Size())
		}
		all = append(all, readLines(t, p)...)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("%s.3 exists with keep = 2", path)
	}
	// The three files hold the newest lines, in order, without a gap.
	if len(all) != 30 {
		t.Fatalf("the files hold %d lines, want 30 (3 files of 10): %q", len(all), all)
	}
	for i, l := range all {
		if want := fmt.Sprintf("n-%d", 100+n-30+i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}

	// keep = 0: no old file at all.
	path0 := filepath.Join(t.TempDir(), "out.log")
	m0, _ := newManager(t, []Config{{Name: "z", Type: TypeFile, Path: path0, Format: "{payload}", MaxSize: 64}}, db)
	stop0 := start(t, m0)
	waitFor(t, "delivery", func() bool { return status(m0, "z").Cursor == n })
	stop0()
	if got := readLines(t, path0); len(got) != 10 || got[9] != fmt.Sprintf("n-%d", 100+n-1) {
		t.Errorf("keep 0: file holds %q", got)
	}
	if matches, _ := filepath.Glob(path0 + ".*"); len(matches) != 0 {
		t.Errorf("keep 0 left %v", matches)
	}
}

// A file moved away (logrotate) or removed is made again.
func TestFileSinkRecreatesMovedFile(t *testing.T) {
	db := openStore(t, nil)
	path := filepath.Join(t.TempDir(), "out.log")
	m, _ := newManager(t, []Config{{Name: "f", Type: TypeFile, Path: path, Format: "{payload}"}}, db)
	start(t, m)
	m.Stored(appendMsgs(t, db, "t", []byte("one")))
	waitFor(t, "one", func() bool { return status(m, "f").Cursor == 1 })
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	m.Stored(appendMsgs(t, db, "t", []byte("two")))
	waitFor(t, "two", func() bool { return status(m, "f").Cursor == 2 })
	if got := readLines(t, path); !slices.Equal(got, []string{"two"}) {
		t.Errorf("new file holds %q, want [two]", got)
	}
	if got := readLines(t, path+".moved"); !slices.Equal(got, []string{"one"}) {
		t.Errorf("moved file holds %q, want [one]", got)
	}
}
