package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/control"
)

// dataDir reads only data_dir from the configuration: the CLI verbs need
// nothing else, and must work for an operator who may read the config but
// not the secret files it points at.
func dataDir(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w (pass -config PATH)", err)
	}
	var c struct {
		DataDir string `toml:"data_dir"`
	}
	if err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil {
		return "", fmt.Errorf("%s: %w (run: edge-agent config check -config %s)", path, err, path)
	}
	if c.DataDir == "" {
		c.DataDir = config.DefaultDataDir
	}
	return c.DataDir, nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	asJSON := fs.Bool("json", false, "print the status document as JSON")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	dir, err := dataDir(*path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	var raw json.RawMessage
	err = control.Call(dir, control.Request{Cmd: control.CmdStatus}, func(r control.Reply) error {
		raw = r.Status
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(raw))
		return exitOK
	}
	var st agent.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintln(stderr, "edge-agent: bad status document:", err)
		return exitFailure
	}
	printStatus(stdout, st)
	return exitOK
}

func printStatus(w io.Writer, st agent.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	conn := "no"
	if st.Connected {
		conn = "yes"
	}
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	fmt.Fprintf(tw, "connected\t%s (since %s, %s)\n", conn, st.Since.Format(time.RFC3339), ago(st.Since))
	fmt.Fprintf(tw, "broker\t%s\n", st.Broker)
	fmt.Fprintf(tw, "client id\t%s\n", st.ClientID)
	fmt.Fprintf(tw, "device\t%s\n", st.DeviceID)
	fmt.Fprintf(tw, "inbox\t%d stored, %d pending (last seq %d)\n", st.Inbox.Total, st.Inbox.Pending, st.Inbox.LastSeq)
	fmt.Fprintf(tw, "outbox\t%d pending\n", st.Outbox.Pending)
	names := make([]string, 0, len(st.Relays))
	for n := range st.Relays {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := st.Relays[n]
		on := "off"
		if r.On {
			on = "on"
		}
		fmt.Fprintf(tw, "relay %s\t%s (since %s)\n", n, on, r.Since.Format(time.RFC3339))
	}
	last := st.LastError
	if last == "" {
		last = "-"
	}
	fmt.Fprintf(tw, "last error\t%s\n", last)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func cmdInbox(args []string, stdout, stderr io.Writer) int {
	const u = "usage: edge-agent inbox list|show SEQ|export [-json] [-n N] [-config PATH]\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	var seq uint64
	if sub == "show" {
		if len(rest) == 0 {
			fmt.Fprint(stderr, u)
			return exitUsage
		}
		n, err := strconv.ParseUint(rest[0], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "edge-agent: inbox show: %q is not a sequence number\n", rest[0])
			return exitUsage
		}
		seq, rest = n, rest[1:]
	}
	fs := newFlags("inbox "+sub, stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	asJSON := fs.Bool("json", false, "one JSON object per record")
	n := fs.Int("n", 0, "only the last N records (list: default 20; export: default all)")
	if fs.Parse(rest) != nil {
		return exitUsage
	}
	req := control.Request{N: *n, Seq: seq}
	switch sub {
	case "list":
		req.Cmd = control.CmdInboxList
	case "show":
		req.Cmd = control.CmdInboxShow
	case "export":
		req.Cmd = control.CmdInboxExport
		*asJSON = true // export is JSON lines by definition; -json is accepted for symmetry
	default:
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	dir, err := dataDir(*path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if sub == "list" && !*asJSON {
		fmt.Fprintln(tw, "SEQ\tRECEIVED\tTOPIC\tSIZE\tDUP\tPAYLOAD")
	}
	err = control.Call(dir, req, func(r control.Reply) error {
		if r.Record == nil {
			return nil
		}
		switch {
		case *asJSON:
			return enc.Encode(r.Record)
		case sub == "show":
			return printRecord(stdout, *r.Record)
		default:
			b, _ := r.Record.Bytes()
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%v\t%s\n", r.Record.Seq, r.Record.ReceivedAt, r.Record.Topic, len(b), r.Record.Dup, control.PayloadPrefix(b, 48))
			return nil
		}
	})
	tw.Flush()
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	return exitOK
}

func printRecord(w io.Writer, r control.Record) error {
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "seq:         %d\nreceived_at: %s\ntopic:       %s\ndup:         %v\nsize:        %d bytes\n", r.Seq, r.ReceivedAt, r.Topic, r.Dup, len(b))
	if r.Payload != nil {
		fmt.Fprintf(w, "payload:\n%s\n", *r.Payload)
	} else {
		fmt.Fprintf(w, "payload_b64: %s\n", *r.PayloadB64)
	}
	return nil
}
