package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/hw/led"
)

// dataDir reads only data_dir from the configuration, leniently: the CLI
// verbs need nothing else, must work for an operator who may read the
// config but not the secret files it points at, and must find the socket of
// an agent that refused the file and shows its config state. A relative
// data_dir is relative to the file, as run reads it.
func dataDir(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w (pass -config PATH)", err)
	}
	l, err := config.ParseLenient(b, path)
	if err != nil {
		return "", fmt.Errorf("%s: %w (run: edge-agent config check -config %s)", path, err, path)
	}
	return l.DataDir, nil
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

// cmdMetrics prints the daemon's counters in the Prometheus text format
// (docs/design.md#metrics).
func cmdMetrics(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("metrics", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	dir, err := dataDir(*path)
	if err == nil {
		err = control.Call(dir, control.Request{Cmd: control.CmdMetrics}, func(r control.Reply) error {
			_, err := io.WriteString(stdout, r.Text)
			return err
		})
	}
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	return exitOK
}

func printStatus(w io.Writer, st agent.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	if h := control.Hint(st.State); h != "" && st.State != led.StateOK {
		fmt.Fprintf(tw, "check first\t%s\n", h)
	}
	if st.State == led.StateConfig {
		// run refused its configuration: there is no connection, store
		// or relay to show, only the LEDs and why.
		printLEDs(tw, st)
		printLines(tw, "config errors", st.LastError)
		fmt.Fprintf(tw, "version\t%s\n", st.Version)
		return
	}
	conn := "no"
	if st.Connected {
		conn = "yes"
	}
	fmt.Fprintf(tw, "connected\t%s (since %s, %s)\n", conn, st.Since.Format(time.RFC3339), ago(st.Since))
	fmt.Fprintf(tw, "broker\t%s\n", st.Broker)
	fmt.Fprintf(tw, "client id\t%s\n", st.ClientID)
	fmt.Fprintf(tw, "device\t%s\n", st.DeviceID)
	fmt.Fprintf(tw, "inbox\t%d stored, %d pending (last seq %d)\n", st.Inbox.Total, st.Inbox.Pending, st.Inbox.LastSeq)
	fmt.Fprintf(tw, "outbox\t%d pending\n", st.Outbox.Pending)
	if in := st.Ingest; in != nil && in.Commits > 0 {
		lat := ""
		if l := in.StoredLatency; l != nil {
			lat = fmt.Sprintf("; receive→stored p50 %.2f ms, p99 %.2f ms (last %d)", l.P50, l.P99, l.N)
		}
		fmt.Fprintf(tw, "ingest\t%d stored in %d commits (%.1f per commit)%s\n", in.Messages, in.Commits, in.PerCommit, lat)
		if in.Oversize > 0 || in.Refused > 0 {
			fmt.Fprintf(tw, "refused\t%d over max_message_size (kept as markers), %d possible commands refused on arrival\n", in.Oversize, in.Refused)
		}
	}
	sinkNames := make([]string, 0, len(st.Sinks))
	for n := range st.Sinks {
		sinkNames = append(sinkNames, n)
	}
	sort.Strings(sinkNames)
	for _, n := range sinkNames {
		k := st.Sinks[n]
		line := fmt.Sprintf("at seq %d, %d behind; %d delivered, %d failed attempts, %d dropped by retention", k.Cursor, k.Lag, k.Delivered, k.Failed, k.Dropped)
		if k.LastError != "" {
			line += "; last error: " + k.LastError
		}
		fmt.Fprintf(tw, "sink %s\t%s\n", n, control.PrintableLine(line))
	}
	if r := st.Rules; r != nil {
		fmt.Fprintf(tw, "rules\t%d messages acted on, %d on a rule's topic matched no rule\n", r.Matched, r.Unmatched)
	}
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
		until := ""
		if r.Until != nil {
			until = ", until " + r.Until.Format(time.RFC3339)
		}
		fault := ""
		if r.Fault != "" {
			fault = "; FAULT: " + control.PrintableLine(r.Fault)
		}
		fmt.Fprintf(tw, "relay %s\t%s (since %s%s)%s\n", n, on, r.Since.Format(time.RFC3339), until, fault)
	}
	names = names[:0]
	for n := range st.Inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		in := st.Inputs[n]
		state := "inactive"
		if in.Active {
			state = "active"
		}
		fmt.Fprintf(tw, "input %s\t%s (since %s)\n", n, state, in.Since.Format(time.RFC3339))
	}
	printLEDs(tw, st)
	last := st.LastError
	if last == "" {
		last = "-"
	}
	printLines(tw, "last error", last)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
}

func printLEDs(tw io.Writer, st agent.Status) {
	for _, n := range []string{"status", "activity", "fault"} {
		if p, ok := st.LEDs[n]; ok {
			fmt.Fprintf(tw, "led %s\t%s\n", n, p)
		}
	}
}

// printLines writes a value of several lines under its name, each line in
// the value column (escaped: it may quote a file).
func printLines(tw io.Writer, name, value string) {
	for i, line := range strings.Split(value, "\n") {
		if i > 0 {
			name = ""
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, control.PrintableLine(line))
	}
}

// fmtDur writes whole hours and minutes as 1h and 5m, not 1h0m0s.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

const inboxUsage = `usage: edge-agent inbox list|show SEQ|export|follow [-json] [-n N] [-from SEQ] [-config PATH]

  list    the last N records (default 20), one line each
  follow  records as they are stored, like tail -f: from SEQ with -from,
          else only new ones; -json as export; ends on Ctrl-C or when the
          daemon stops
  show    one record, its payload as it is except that control characters
          (ESC, CR, BEL, DEL, U+0080-U+009F) are printed escaped, like \x1b,
          so a payload cannot drive the terminal; newlines and tabs stay. A
          payload that is not UTF-8 is shown as base64. list and show escape
          topics the same way; inbox export gives the exact bytes.
  export  all records, or the last N, as JSON lines, byte-exact
`

func cmdInbox(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, inboxUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("inbox "+sub, stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, inboxUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	path := fs.String("config", defaultConfig, "configuration file")
	asJSON := fs.Bool("json", false, "one JSON object per record")
	n := fs.Int("n", 0, "only the last N records (list: default 20; export: default all)")
	from := fs.Uint64("from", 0, "follow: start at this seq (default: only records stored from now on)")
	var seq uint64
	if sub == "show" {
		// SEQ comes first (show 12 -json), or after the flags.
		var arg string
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			arg, rest = rest[0], rest[1:]
		}
		if fs.Parse(rest) != nil {
			return exitUsage
		}
		if arg == "" && fs.NArg() > 0 {
			arg = fs.Arg(0)
		}
		if arg == "" {
			fs.Usage()
			return exitUsage
		}
		v, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "edge-agent: inbox show: %q is not a sequence number\n", arg)
			return exitUsage
		}
		seq = v
	} else if fs.Parse(rest) != nil {
		return exitUsage
	}
	nSet := false
	fs.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
	if nSet && *n <= 0 {
		fmt.Fprintf(stderr, "edge-agent: inbox %s: -n N must be a positive number of records, not %d\n", sub, *n)
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
	case "follow":
		return followInbox(*path, *from, *asJSON, stdout, stderr)
	default:
		fmt.Fprint(stderr, inboxUsage)
		return exitUsage
	}
	dir, err := dataDir(*path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	enc := json.NewEncoder(jsonControlsEscaper{stdout})
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
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%v\t%s\n", r.Record.Seq, control.PrintableLine(r.Record.ReceivedAt), control.PrintableLine(r.Record.Topic), len(b), r.Record.Dup, control.PayloadPrefix(b, 48))
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

// followInbox is `inbox follow`: each record printed (and so flushed) as it
// arrives, until Ctrl-C or the daemon stops; both end it with exit 0.
func followInbox(path string, from uint64, asJSON bool, stdout, stderr io.Writer) int {
	dir, err := dataDir(path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(jsonControlsEscaper{stdout})
	enc.SetEscapeHTML(false)
	done := make(chan error, 1)
	go func() {
		done <- control.Call(dir, control.Request{Cmd: control.CmdInboxFollow, Seq: from}, func(r control.Reply) error {
			if r.Record == nil {
				return nil
			}
			if asJSON {
				return enc.Encode(r.Record)
			}
			b, _ := r.Record.Bytes()
			_, err := fmt.Fprintf(stdout, "%d  %s  %s  %d  %s\n", r.Record.Seq, control.PrintableLine(r.Record.ReceivedAt),
				control.PrintableLine(r.Record.Topic), len(b), control.PayloadPrefix(b, 48))
			return err
		})
	}()
	select {
	case <-ctx.Done():
		return exitOK
	case err := <-done:
		if err != nil && !errors.Is(err, control.ErrEndedEarly) {
			fmt.Fprintln(stderr, "edge-agent:", err)
			return exitFailure
		}
		return exitOK // the daemon stopped
	}
}

// cmdSink is `sink rewind NAME SEQ`: the sink delivers again from SEQ.
func cmdSink(args []string, stdout, stderr io.Writer) int {
	const u = "usage: edge-agent sink rewind NAME SEQ [-config PATH]\n"
	if len(args) < 3 || args[0] != "rewind" {
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	name := args[1]
	seq, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil || seq == 0 {
		fmt.Fprintf(stderr, "edge-agent: sink rewind: %q is not a sequence number (1 or more)\n%s", args[2], u)
		return exitUsage
	}
	fs := newFlags("sink rewind", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if fs.Parse(args[3:]) != nil {
		return exitUsage
	}
	if code := call(*path, control.Request{Cmd: control.CmdSinkRewind, Name: name, Seq: seq}, stderr, nil); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "sink %s delivers again from seq %d\n", name, seq)
	return exitOK
}

// cmdSim is `sim input NAME active|inactive`: the daemon drives an input of
// the simulated board as its wire would (a button pressed, a door opened).
func cmdSim(args []string, stdout, stderr io.Writer) int {
	const u = "usage: edge-agent sim input NAME active|inactive [-config PATH]\n"
	if len(args) < 3 || args[0] != "input" || (args[2] != "active" && args[2] != "inactive") {
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	name, active := args[1], args[2] == "active"
	fs := newFlags("sim input", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if fs.Parse(args[3:]) != nil {
		return exitUsage
	}
	if code := call(*path, control.Request{Cmd: control.CmdSimInput, Name: name, On: active}, stderr, nil); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "input %s is %s\n", name, args[2])
	return exitOK
}

// printRecord shows one record for a person: the payload and topic with
// their control characters escaped (control.Printable).
func printRecord(w io.Writer, r control.Record) error {
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "seq:         %d\nreceived_at: %s\ntopic:       %s\ndup:         %v\n", r.Seq, control.PrintableLine(r.ReceivedAt), control.PrintableLine(r.Topic), r.Dup)
	if r.Retained {
		fmt.Fprintf(w, "retained:    true (a retained command is never executed)\n")
	}
	if r.Oversize {
		fmt.Fprintf(w, "size:        %d bytes, over max_message_size: only the first %d are stored\n", r.Size, len(b))
	} else {
		fmt.Fprintf(w, "size:        %d bytes\n", len(b))
	}
	if r.Payload != nil {
		fmt.Fprintf(w, "payload:\n%s\n", control.Printable(b))
	} else {
		fmt.Fprintf(w, "payload_b64: %s\n", *r.PayloadB64)
	}
	return nil
}

// jsonControlsEscaper writes encoding/json's output with DEL and the C1
// controls (U+0080-U+009F) as \u escapes: encoding/json escapes only the
// C0 controls, and a terminal may act on the others. A JSON reader decodes
// the same bytes either way. Each Write is one whole JSON text, so a
// two-byte C1 rune is never split across writes; outside strings the text
// is ASCII, so the bytes matched are inside strings.
type jsonControlsEscaper struct{ w io.Writer }

func (e jsonControlsEscaper) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, 0x7f) < 0 && bytes.IndexByte(p, 0xc2) < 0 {
		return e.w.Write(p)
	}
	out := make([]byte, 0, len(p)+32)
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == 0x7f:
			out = append(out, `\u007f`...)
		case p[i] == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f:
			out = fmt.Appendf(out, `\u%04x`, p[i+1])
			i++
		default:
			out = append(out, p[i])
		}
	}
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func cmdRelay(args []string, stdout, stderr io.Writer) int {
	const u = "usage: edge-agent relay set NAME on|off [-for DUR] [-config PATH]\n"
	if len(args) < 3 || args[0] != "set" {
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	name, state := args[1], args[2]
	if state != "on" && state != "off" {
		fmt.Fprintf(stderr, "edge-agent: relay set: %q is neither on nor off\n%s", state, u)
		return exitUsage
	}
	fs := newFlags("relay set", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	dur := fs.Duration("for", 0, "switch off again after this long (with on)")
	if fs.Parse(args[3:]) != nil {
		return exitUsage
	}
	if *dur != 0 && state == "off" {
		fmt.Fprintln(stderr, "edge-agent: relay set: -for goes with on")
		return exitUsage
	}
	forSet := false
	fs.Visit(func(f *flag.Flag) { forSet = forSet || f.Name == "for" })
	if forSet && *dur <= 0 {
		fmt.Fprintf(stderr, "edge-agent: relay set: -for %v: must be positive (like 30s, 5m)\n", *dur)
		return exitUsage
	}
	req := control.Request{Cmd: control.CmdRelaySet, Relay: name, On: state == "on"}
	if *dur > 0 {
		req.For = dur.String()
	}
	var applied *control.RelayApplied
	if code := call(*path, req, stderr, func(r control.Reply) error {
		applied = r.Relay
		return nil
	}); code != exitOK {
		return code
	}
	fmt.Fprintln(stdout, describeApplied(name, *dur, applied))
	return exitOK
}

// describeApplied says what the daemon did, which is not always what was
// asked: max_on caps a longer -for.
func describeApplied(name string, asked time.Duration, a *control.RelayApplied) string {
	if a == nil {
		return fmt.Sprintf("relay %s: done (the daemon did not say what it applied)", name)
	}
	if !a.On {
		return fmt.Sprintf("relay %s off", name)
	}
	if a.Until == nil {
		return fmt.Sprintf("relay %s on", name)
	}
	msg := fmt.Sprintf("relay %s on until %s", name, a.Until.Local().Format(time.RFC3339))
	left := time.Until(*a.Until).Round(time.Second)
	switch {
	case asked > 0 && left < asked-time.Second:
		msg += fmt.Sprintf(" (%v, not the %v asked: its max_on stops it sooner)", left, asked)
	case asked == 0:
		msg += fmt.Sprintf(" (%v: its max_on)", left)
	default:
		msg += fmt.Sprintf(" (%v)", left)
	}
	return msg
}

func cmdLED(args []string, stdout, stderr io.Writer) int {
	const u = "usage: edge-agent led identify [-for DUR] | test [-config PATH]\n"
	if len(args) == 0 || (args[0] != "identify" && args[0] != "test") {
		fmt.Fprint(stderr, u)
		return exitUsage
	}
	fs := newFlags("led "+args[0], stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	dur := fs.Duration("for", 30*time.Second, "how long (identify; at most "+fmtDur(control.MaxIdentify)+")")
	each := fs.Duration("each", 3*time.Second, "how long each pattern plays (test)")
	if fs.Parse(args[1:]) != nil {
		return exitUsage
	}
	if args[0] == "identify" {
		if *dur <= 0 || *dur > control.MaxIdentify {
			fmt.Fprintf(stderr, "edge-agent: led identify: -for %v is out of range: more than 0 and at most %v\n", *dur, fmtDur(control.MaxIdentify))
			return exitUsage
		}
		if code := call(*path, control.Request{Cmd: control.CmdLEDIdentify, For: dur.String()}, stderr, nil); code != exitOK {
			return code
		}
		fmt.Fprintf(stdout, "LEDs blink together for %v\n", *dur)
		return exitOK
	}
	return call(*path, control.Request{Cmd: control.CmdLEDTest, Each: each.String()}, stderr, func(r control.Reply) error {
		if r.State != "" {
			printPattern(stdout, r.State)
		}
		return nil
	})
}

// printPattern says, as led test plays it, how name looks on the LEDs and
// what a technician checks first when it shows.
func printPattern(w io.Writer, name string) {
	fmt.Fprintf(w, "%-11s %s\n", name, led.Look(name))
	if h := control.Hint(name); h != "" {
		fmt.Fprintf(w, "%-11s check first: %s\n", "", h)
	}
}

// call sends one request to the daemon and reports failure on stderr.
func call(path string, req control.Request, stderr io.Writer, fn func(control.Reply) error) int {
	dir, err := dataDir(path)
	if err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	if fn == nil {
		fn = func(control.Reply) error { return nil }
	}
	if err := control.Call(dir, req, fn); err != nil {
		fmt.Fprintln(stderr, "edge-agent:", err)
		return exitFailure
	}
	return exitOK
}
