package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeDaemon answers every connection with answer, after reading the
// request line.
func fakeDaemon(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := bufio.NewReader(c).ReadBytes('\n'); err != nil {
					return
				}
				answer(c)
				<-stop // hold the connection open: only the client's deadline ends it
			}()
		}
	}()
	t.Cleanup(func() { close(stop); ln.Close() })
	return dir
}

func TestCallDeadlines(t *testing.T) {
	const reply = 400 * time.Millisecond
	to := Timeouts{Reply: reply}
	record := func(seq int) string {
		return fmt.Sprintf(`{"record":{"seq":%d,"received_at":"x","topic":"t","dup":false,"payload":"p"}}`+"\n", seq)
	}
	noAnswer := func(t *testing.T, err error, stream bool, start time.Time) {
		t.Helper()
		var na *NoAnswerError
		if !errors.As(err, &na) {
			t.Fatalf("err %v, want a NoAnswerError", err)
		}
		if na.After != reply || na.Stream != stream {
			t.Errorf("%+v, want After %v, Stream %v", na, reply, stream)
		}
		if d := time.Since(start); d < reply || d > reply+2*time.Second {
			t.Errorf("gave up after %v, want about %v", d, reply)
		}
		t.Log(err)
	}

	t.Run("silent", func(t *testing.T) {
		dir := fakeDaemon(t, func(net.Conn) {})
		start := time.Now()
		err := CallTimeouts(dir, Request{Cmd: CmdStatus}, to, func(Reply) error { return nil })
		noAnswer(t, err, false, start)
	})
	t.Run("one reply, trickled past its deadline", func(t *testing.T) {
		// The deadline bounds the whole answer, not each read.
		dir := fakeDaemon(t, func(c net.Conn) {
			for _, b := range []byte(`{"status":{"a":1}}` + "\n" + `{"done":true}` + "\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(reply / 8)
			}
		})
		start := time.Now()
		err := CallTimeouts(dir, Request{Cmd: CmdStatus}, to, func(Reply) error { return nil })
		noAnswer(t, err, false, start)
	})
	t.Run("cut off mid-line", func(t *testing.T) {
		dir := fakeDaemon(t, func(c net.Conn) { c.Write([]byte(`{"status":{"a"`)); c.Close() })
		err := CallTimeouts(dir, Request{Cmd: CmdStatus}, to, func(Reply) error { return nil })
		if !errors.Is(err, errEndedEarly) {
			t.Fatalf("err %v, want %v", err, errEndedEarly)
		}
	})
	t.Run("stream longer than its deadline", func(t *testing.T) {
		// A record every reply/4 for 3×reply: the deadline is renewed as
		// records arrive.
		dir := fakeDaemon(t, func(c net.Conn) {
			for i := 1; i <= 12; i++ {
				if _, err := c.Write([]byte(record(i))); err != nil {
					return
				}
				time.Sleep(reply / 4)
			}
			c.Write([]byte(`{"done":true}` + "\n"))
		})
		n := 0
		start := time.Now()
		err := CallTimeouts(dir, Request{Cmd: CmdInboxExport}, to, func(Reply) error { n++; return nil })
		if err != nil || n != 12 {
			t.Fatalf("after %v: %d records, err %v; want 12, nil", time.Since(start), n, err)
		}
	})
	t.Run("stream that stops", func(t *testing.T) {
		dir := fakeDaemon(t, func(c net.Conn) { c.Write([]byte(record(1))) })
		n := 0
		start := time.Now()
		err := CallTimeouts(dir, Request{Cmd: CmdInboxList}, to, func(Reply) error { n++; return nil })
		noAnswer(t, err, true, start)
		if n != 1 {
			t.Errorf("%d records before the silence, want 1", n)
		}
	})
}

func TestReplyTimeoutDefaults(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want time.Duration
	}{
		{Request{Cmd: CmdStatus}, 10 * time.Second},
		{Request{Cmd: CmdInboxExport}, 10 * time.Second},
		{Request{Cmd: CmdLEDIdentify, For: "1h"}, 10 * time.Second},
		{Request{Cmd: CmdRelaySet}, 15 * time.Second},
		{Request{Cmd: CmdLEDTest}, 13 * time.Second},
		{Request{Cmd: CmdLEDTest, Each: "1m"}, 70 * time.Second},
	} {
		if got := replyTimeout(tc.req); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.req, got, tc.want)
		}
	}
}
