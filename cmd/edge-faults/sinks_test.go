package main

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
)

func TestParseSinkLine(t *testing.T) {
	at := time.Now()
	for _, c := range []struct {
		line string
		seq  uint64
		want string
	}{
		{"12 sinks-msg-0000011", 12, "sinks-msg-0000011"},
		{`13 sinks-bin-0000003:\x00\x01\n\"\\\xff`, 13, "sinks-bin-0000003:\x00\x01\n\"\\\xff"},
		{"x y", 0, "x y"},
		{"nospace", 0, "nospace"},
	} {
		d := parseSinkLine([]byte(c.line), at)
		if d.seq != c.seq || string(d.payload) != c.want {
			t.Errorf("parseSinkLine(%q) = %d %q, want %d %q", c.line, d.seq, d.payload, c.seq, c.want)
		}
	}
}

func records(payloads ...string) []control.Record {
	var out []control.Record
	for i, p := range payloads {
		b := base64.StdEncoding.EncodeToString([]byte(p))
		out = append(out, control.Record{Seq: uint64(i + 1), PayloadB64: &b})
	}
	return out
}

func TestCheckSink(t *testing.T) {
	recs := records("a", "b", "c", "d")
	acked := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	t0 := time.Now()
	d := func(seq uint64, p string, at time.Duration) delivery {
		return delivery{seq: seq, payload: []byte(p), at: t0.Add(at)}
	}
	// Killed at 3 s after delivering 1..3 (2 and 3 in its last second);
	// the next run repeats 2 and 3.
	ds := []delivery{d(1, "a", 0), d(2, "b", 2500*time.Millisecond), d(3, "c", 2900*time.Millisecond),
		d(2, "b", 4*time.Second), d(3, "c", 4*time.Second), d(4, "d", 4*time.Second)}
	kills := []sinkKill{{at: t0.Add(3 * time.Second), marks: map[string]int{"s": 3}}}
	c := checkSink("s", ds, kills, recs, acked)
	if len(c.failures) > 0 || c.distinct != 4 || c.lost != 0 || c.repeats[0] != 2 || c.bounds[0] != 2 {
		t.Errorf("a good log: %+v", c)
	}

	// Repeating 1 too is over the bound: it was delivered 3 s before the kill.
	bad := append([]delivery{}, ds[:3]...)
	bad = append(bad, d(1, "a", 4*time.Second))
	bad = append(bad, ds[3:]...)
	if c := checkSink("s", bad, kills, recs, acked); len(c.failures) != 1 || !strings.Contains(c.failures[0], "over the bound") {
		t.Errorf("a repeat beyond the bound: %q", c.failures)
	}

	// Out of order, a lost record, a wrong payload.
	for _, tc := range []struct {
		name string
		ds   []delivery
		want string
	}{
		{"order", []delivery{d(1, "a", 0), d(3, "c", 0), d(2, "b", 0), d(4, "d", 0)}, "first delivered after"},
		{"lost", []delivery{d(1, "a", 0), d(2, "b", 0), d(4, "d", 0)}, "never delivered"},
		{"payload", []delivery{d(1, "a", 0), d(2, "x", 0), d(3, "c", 0), d(4, "d", 0)}, "payload"},
	} {
		c := checkSink("s", tc.ds, nil, recs, acked)
		if len(c.failures) == 0 || !strings.Contains(strings.Join(c.failures, "\n"), tc.want) {
			t.Errorf("%s: failures %q, want %q", tc.name, c.failures, tc.want)
		}
	}
}
