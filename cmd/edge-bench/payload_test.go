package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, c := range []struct {
		tag string
		i   int
		ts  int64
	}{
		{"bench-x-r1-drain-agent", 0, 0},
		{"t", 99999, 1795765981321625962},
		{"bench-abcdef-r3-paced", 1234567, 1},
	} {
		p := makePayload(c.tag, c.i, c.ts)
		if len(p) != payloadSize {
			t.Errorf("len(makePayload(%q, %d, %d)) = %d, want %d", c.tag, c.i, c.ts, len(p), payloadSize)
		}
		if !json.Valid(p) || bytes.Contains(p, []byte("method")) || bytes.Contains(p, []byte(`\u`)) {
			t.Errorf("payload %q is not a plain JSON notification (the agent would store it pending)", p)
		}
		tag, i, ts, ok := parsePayload(p)
		if !ok || tag != c.tag || i != c.i || ts != c.ts {
			t.Errorf("parsePayload(%q) = %q, %d, %d, %v; want %q, %d, %d", p, tag, i, ts, ok, c.tag, c.i, c.ts)
		}
	}
}

func TestParsePayloadInLine(t *testing.T) {
	p := makePayload("tag", 42, 7)
	// The old script's log line wraps the payload.
	line := fmt.Sprintf("Received `%s` from `bench/x` topic", p)
	tag, i, ts, ok := parsePayload([]byte(line))
	if !ok || tag != "tag" || i != 42 || ts != 7 {
		t.Errorf("parsePayload(script line) = %q, %d, %d, %v", tag, i, ts, ok)
	}
}

func TestParsePayloadRejects(t *testing.T) {
	for _, s := range []string{
		"probe",
		"",
		`{"src":"edge-bench","tag":`,
		`{"src":"edge-bench","tag":"t"}`,
		`{"src":"edge-bench","tag":"t","n":x,"ts":1,"pad":""}`,
		`{"src":"edge-bench","tag":"t","n":-1,"ts":1,"pad":""}`,
		`{"src":"edge-bench","tag":7,"n":1,"ts":2,"pad":""}`,
	} {
		if _, _, _, ok := parsePayload([]byte(s)); ok {
			t.Errorf("parsePayload(%q) accepted", s)
		}
	}
}

func TestCoverage(t *testing.T) {
	c := newCoverage(5)
	for _, i := range []int{0, 1, 1, 3, 4, 4, 4} {
		c.add("s", makePayload("s", i, 0))
	}
	c.add("s", makePayload("other", 2, 0)) // another stream does not count
	c.add("s", []byte("probe"))
	c.add("s", makePayload("s", 9, 0)) // beyond n
	lost, dups, first := c.result()
	if lost != 1 || dups != 3 || first != 2 || c.foreign != 3 {
		t.Errorf("lost, dups, first, foreign = %d, %d, %d, %d; want 1, 3, 2, 3", lost, dups, first, c.foreign)
	}
	if lost, dups, first := newCoverage(0).result(); lost != 0 || dups != 0 || first != -1 {
		t.Errorf("empty coverage = %d, %d, %d", lost, dups, first)
	}
}
