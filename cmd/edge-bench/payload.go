package main

import (
	"bytes"
	"strconv"
	"strings"
)

// payloadSize is the "~150-byte" notification.
const payloadSize = 150

// payloadPrefix starts every bench notification: a JSON object, as a
// cloud's notifications are, without "method" (or a \u escape), so the
// agent stores it as a plain notification, not a possible command
// (agent/command.go, mayBeCommand).
const payloadPrefix = `{"src":"edge-bench","tag":`

// makePayload is notification i of the stream tag, sent at unix nanos ts,
// padded to payloadSize bytes:
// {"src":"edge-bench","tag":"TAG","n":I,"ts":TS,"pad":"xxxx…"}. The
// number and timestamp let a receiver's copy be matched and timed.
func makePayload(tag string, i int, ts int64) []byte {
	b := make([]byte, 0, payloadSize)
	b = append(b, payloadPrefix...)
	b = strconv.AppendQuote(b, tag)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < payloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// parsePayload finds a bench notification in s (a whole payload, or a line
// that contains one, like the old script's "Received `…` from …") and
// returns its tag, number and send time.
func parsePayload(s []byte) (tag string, i int, ts int64, ok bool) {
	k := bytes.Index(s, []byte(payloadPrefix))
	if k < 0 {
		return "", 0, 0, false
	}
	rest := string(s[k+len(payloadPrefix):])
	// "TAG","n":I,"ts":TS,"pad":"…"}
	if !strings.HasPrefix(rest, `"`) {
		return "", 0, 0, false
	}
	end := strings.IndexByte(rest[1:], '"')
	if end < 0 {
		return "", 0, 0, false
	}
	tag, rest = rest[1:1+end], rest[2+end:]
	nStr, ok1 := between(rest, `,"n":`, ",")
	tsStr, ok2 := between(rest, `,"ts":`, ",")
	if !ok1 || !ok2 {
		return "", 0, 0, false
	}
	n, err1 := strconv.Atoi(nStr)
	t, err2 := strconv.ParseInt(tsStr, 10, 64)
	if err1 != nil || err2 != nil || n < 0 {
		return "", 0, 0, false
	}
	return tag, n, t, true
}

// between is the text of s after the first pre and before the next post.
func between(s, pre, post string) (string, bool) {
	i := strings.Index(s, pre)
	if i < 0 {
		return "", false
	}
	s = s[i+len(pre):]
	j := strings.Index(s, post)
	if j < 0 {
		return "", false
	}
	return s[:j], true
}

// coverage counts, for the numbers 0..n-1 of stream tag, how many are
// missing from seen and how many extra copies there are.
type coverage struct {
	n       int
	counts  []int
	foreign int // lines of another stream, or not bench payloads
}

func newCoverage(n int) *coverage { return &coverage{n: n, counts: make([]int, n)} }

// add counts one received payload (or line) of stream tag.
func (c *coverage) add(tag string, line []byte) {
	t, i, _, ok := parsePayload(line)
	if !ok || t != tag || i >= c.n {
		c.foreign++
		return
	}
	c.counts[i]++
}

// result is how many of 0..n-1 never arrived (lost), how many arrived more
// than once (duplicates, which QoS 1 allows), and the first lost number.
func (c *coverage) result() (lost, dups, firstLost int) {
	firstLost = -1
	for i, k := range c.counts {
		switch {
		case k == 0:
			lost++
			if firstLost < 0 {
				firstLost = i
			}
		case k > 1:
			dups += k - 1
		}
	}
	return lost, dups, firstLost
}
