package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// groups order the main table as the issue lists its items; a figure goes
// in the first group one of whose prefixes its key has.
var groups = []struct {
	title    string
	prefixes []string
}{
	{"1. durable ingest", []string{"drain.rate.agent", "drain.conn.agent", "drain.ratio.", "drain.percommit", "flood.rate.agent", "flood.keep.agent", "flood.percommit", "flood.storedp99", "lat."}},
	{"2. commands (the agent's own, then thing-model property sets through a rule)", []string{"cmd."}},
	{"3. footprint", []string{"rss.idle", "rss.peak", "rss.oversize", "cpu.per10k", "startup", "size."}},
	{"4. store scale", []string{"scale.", "bound."}},
	{"5. sinks (the same backlog drain without a sink, with a file sink, with an exec sink)", []string{"sinks."}},
	{"slow disk: the agent's data_dir on a loop ext4 on a card whose every cache flush takes -slow-sync, like an SD card's", []string{"slow."}},
	{"backlog drain, agent builds beside mosquitto_sub (-only drain)", []string{"ab."}},
	{"6. flash wear (bytes reaching the block device per message; each subject on its own loop ext4)", []string{"wear.agent.", "wear.agent0.", "wear.win.", "wear.fdatasync."}},
}

func groupOf(key string) int {
	for i, g := range groups {
		for _, p := range g.prefixes {
			if strings.HasPrefix(key, p) {
				return i
			}
		}
	}
	return -1
}

// gridRow is one row of the baseline table: a label and the figure keys of
// its cells.
type gridRow struct {
	label string
	keys  []string
}

// baselineRows is the second table: the agent beside the old script and
// mosquitto_sub, and the ratios. "=text" is a literal cell.
var baselineRows = []gridRow{
	{"backlog drain, first → last stored", []string{"drain.rate.agent", "drain.rate.script", "drain.rate.sub", "drain.ratio.script", "drain.ratio.sub"}},
	{"backlog drain, process start → all stored", []string{"drain.start.agent", "drain.start.script", "drain.start.sub", "", ""}},
	{"live flood, first → last stored", []string{"flood.rate.agent", "flood.rate.script", "flood.rate.sub", "flood.ratio.script", "flood.ratio.sub"}},
	{"live flood ÷ its publisher's rate", []string{"flood.keep.agent", "flood.keep.script", "flood.keep.sub", "", ""}},
	{"publisher's rate in that flood", []string{"flood.pub.agent", "flood.pub.script", "flood.pub.sub", "", ""}},
	{"CPU seconds per 10,000 messages (drain)", []string{"cpu.agent", "cpu.script", "cpu.sub", "", ""}},
	{"peak RSS (VmHWM) after the drain", []string{"rss.agent", "rss.script", "rss.sub", "", ""}},
	{"on disk before the PUBACK (fsync)", []string{"=yes", "=no (no fsync)", "=no (stdout to a file)", "", ""}},
}

// methods says in a line each how the figures are taken.
var methods = []string{
	"Messages: 150-byte QoS 1 JSON-object notifications without \"method\" (plain, not commands), each carrying its number and send time; each subject on its own topic and persistent session, fresh per run.",
	"Rates: n ÷ (first stored → all n stored), both ends seen by polling every 10 ms: the agent's status (stored_since_start, counted after the commit), the baselines' output file (new lines). The same for every subject. Not from \"connected\": mosquitto pushes a resumed session's queue before the SUBACK, which the agent's since waits for.",
	"Backlog: the subject's persistent session (clean session off, fixed client id) is made, the subject stopped (SIGTERM), n messages published until the broker acknowledged all, then the subject started.",
	"Live flood: subject connected and subscribed; one TLS connection publishes n QoS 1 messages pipelined (1000 in flight); publisher rate = n ÷ (first PUBLISH → n-th PUBACK).",
	"Messages per commit: Δingest.messages ÷ Δingest.commits of the status document over the phase.",
	"publish→stored: 100 msg/s paced; stored = when mosquitto logs the agent's PUBACK (log_type debug switched on by SIGHUP for this phase only, each line stamped as the bench reads it from the broker's log FIFO); the agent acks only after the commit.",
	"publish→received: export received_at (nanoseconds) − the send time in the payload; receive→stored: the agent's ingest.stored_latency_ms p99; their sum is an estimate of the p99, usually above it (not a bound: the exact figure can exceed it when slow deliveries and slow commits coincide).",
	"Commands: relay.set at 100/s alternating on/off, unique ids; reply = arrival on the reply topic (paho subscriber); transition = the agent's \"sim gpio\" log line, stamped as read from its stderr pipe.",
	"Rules: then, from the same agent (its config has the thing-model preset's pump rule), property sets {\"id\",\"version\",\"method\":\"thing.service.property.set\",\"params\":{\"PowerSwitch\":1|0}} at 100/s on /sys/{device}/thing/service/property/set, alternating, unique ids; reply = arrival of the alink reply (code 200) on the topic + \"_reply\"; transition as for commands; the status document's rules.matched is checked to equal the count.",
	"Start-up: process exec → the status document's since (the agent's own stamp of connected, set after the SUBACK); idle RSS: VmRSS at the stated time after start; peak RSS: VmHWM once the drain is done; CPU: utime+stime from /proc/PID/stat between first and last stored.",
	"Scale: stores prefilled through the store package, copied into the agent's data_dir (so in the page cache), drained into with retention above their size; bytes per message = file size ÷ inbox.total afterwards.",
	"Oversize: messages far over max_message_size (the default 1 MiB; mosquitto's defaults let them through), binary, one TLS connection publishing QoS 1 at most two ahead of the agent's ingest.oversize; VmHWM once all are stored as markers, each checked (oversize, its size).",
	"Sinks: the ingest section's backlog drain into three fresh agents, one after another in each run (each run starts with the next): no [[sink]], a file sink (the default line, one fsync per batch, verified to hold every message), an exec sink running /bin/cat per record (the payload on its stdin, its stdout /dev/null); ratio = drain rate with the sink ÷ without, same run. A sink's throughput: its status delivered ÷ (first stored → its cursor at the inbox's last seq), polled every 10 ms; it works beside the drain from the first commit on, and must end with failed and dropped 0.",
	"Wear: each subject's data (the agent's data_dir, the baselines' output file) on a fresh 192 MiB ext4 (4 KiB blocks, inode tables and journal written at mkfs, mounted noatime like Raspberry Pi OS's root) on its own loop device; bytes = the device's sectors-written counter (/sys/block/loopN/stat) from just before the first publish to after the last message is stored and a syncfs; 150-byte messages paced from one publisher (flood: 1000 in flight). At 1/s and 10/s the subjects run side by side (each its own device), at 100/s the agents one by one with publish→stored timed as above, the baselines together. The old script appends without fsync and mosquitto_sub writes to a file: their bytes reach the device by the kernel's writeback or the final syncfs, and nothing they acknowledged is durable. Days = 300 × 32 GB ÷ (bytes per message × rate × 86,400). fdatasync: a 4 KiB overwrite of an allocated block + fdatasync every 10 ms on a fresh loop ext4.",
	"Slow disk: the agent's data_dir on a fresh ext4 on a loop device whose file is served over FUSE by a child process that waits -slow-sync on every fsync (each cache flush ext4 sends: fdatasync, journal commits) and -slow-write on every write request, one request at a time as loop issues them; the image is on this machine's disk and not synced there. fdatasync: a 4 KiB overwrite + fdatasync every 10 ms, each checked to reach the card as a flush. Card flushes per commit: the card's fsync count over the agent's life ÷ the phase's commits.",
	"MB = 10^6 bytes everywhere (RSS too); medians over runs; every published message is checked in the subject's store or file afterwards (a loss fails the bench).",
}

func printReport(w io.Writer, e *env, took time.Duration) {
	fmt.Fprintf(w, "## edge-bench results (%d run%s, %v)\n\n", e.runs, plural(e.runs), took.Round(time.Second))
	figs := slices.Clone(e.rep.figs)
	slices.SortStableFunc(figs, func(a, b *figure) int { return groupOf(a.key) - groupOf(b.key) })
	var rows [][]string
	last := -2
	for _, f := range figs {
		g := groupOf(f.key)
		if g < 0 {
			continue // a baseline figure: second table
		}
		if g != last {
			rows = append(rows, []string{"**" + groups[g].title + "**", "", "", "", ""})
			last = g
		}
		t := f.target
		if t == "" {
			t = "—"
		}
		rows = append(rows, []string{f.label, f.medianCell(), f.rangeCell(), t, f.verdict()})
	}
	table(w, []string{"figure", "median", "range (min–max)", "target", "met?"}, rows)

	if e.sections["ingest"] {
		fmt.Fprintf(w, "\n### baselines (same broker, same run)\n\n")
		var out [][]string
		for _, g := range baselineRows {
			cells := []string{g.label}
			for _, k := range g.keys {
				switch {
				case k == "":
					cells = append(cells, "—")
				case strings.HasPrefix(k, "="):
					cells = append(cells, k[1:])
				default:
					cells = append(cells, e.rep.get(k).compactCell())
				}
			}
			out = append(out, cells)
		}
		table(w, []string{"figure", "agent", "old script", "mosquitto_sub", "agent ÷ old script", "agent ÷ mosquitto_sub"}, out)
	}

	if e.sections["wear"] {
		fmt.Fprintf(w, "\n### flash wear: bytes reaching the device per message (median (min–max))\n\n")
		table(w, []string{"subject", "1/s", "10/s", "100/s", "flood", "bytes per commit at 100/s", "days to 300 × 32 GB at 10/s", "at 100/s"}, wearGrid(e))
		if len(e.windows) > 0 {
			fmt.Fprintf(w, "\n### commit_window at 100/s\n\n")
			table(w, []string{"commit_window", "bytes per message", "messages per commit", "publish→stored p50", "p99", "target", "met?"}, wearWindowRows(e))
		}
	}

	if len(e.noise) > 0 {
		var parts []string
		disturbed := false
		for i, n := range e.noise {
			parts = append(parts, fmt.Sprintf("run %d: %.0f%% (steal %.0f%%)", i+1, n.others*100, n.steal*100))
			disturbed = disturbed || n.others > noisy || n.steal > noisy
		}
		fmt.Fprintf(w, "\nCPU taken by other processes during each run (share of %d CPUs × wall time): %s.\n", runtime.NumCPU(), strings.Join(parts, ", "))
		if disturbed {
			fmt.Fprintf(w, "WARNING: the machine was not idle (above %.0f%%): rates, latencies and their ranges are disturbed; rerun on a quiet machine.\n", noisy*100)
		}
	}
	fmt.Fprintf(w, "\nBroker: %s (mosquitto's defaults: 20 in flight, 1000 queued, Nagle on; with Nagle on, replies alone take tens of ms).\n", strings.Join(e.brokerConf, ", "))
	fmt.Fprintf(w, "\nHow each figure is measured:\n")
	for _, m := range methods {
		fmt.Fprintf(w, "- %s\n", m)
	}
	for _, n := range e.rep.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if m := e.rep.misses(); len(m) > 0 {
		fmt.Fprintf(w, "\nTARGETS MISSED (%d):\n", len(m))
		for _, s := range m {
			fmt.Fprintf(w, "- %s\n", s)
		}
	} else {
		fmt.Fprintf(w, "\nEvery target with a figure is met.\n")
	}
	if len(e.failures) > 0 {
		fmt.Fprintf(w, "\nBENCH FAILED (%d): the figures above are incomplete\n", len(e.failures))
		for _, f := range e.failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
