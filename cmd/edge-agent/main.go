// Command edge-agent is the gateway daemon and its command-line tools.
//
// It is thin on purpose: it parses flags, loads the configuration, wires the
// parts and maps errors to exit codes. The logic lives in agent, store and
// hw. See docs/design.md#command-line for the verbs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
)

// Stamped by the Makefile (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

const defaultConfig = "/etc/edge-agent/config.toml"

// Exit codes: 0 fine, 1 failure (including an invalid configuration), 2 usage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: edge-agent <verb> [flags]

  run     [-config PATH]                     the daemon
  status  [-config PATH] [-json]             ask the running daemon
  inbox   list|show SEQ|export [-json] [-n N] [-config PATH]
  relay   set NAME on|off [-for DUR]         switch a relay through the daemon
  led     identify [-for DUR] | test         blink all LEDs / play every pattern
  config  check [-config PATH]               validate, print what is wrong
  rules   test [-config PATH] [-topic T] FILE|-   which rules a payload matches, without acting
  inbox   follow [-from SEQ] [-json]         records as they are stored, like tail -f
  sink    rewind NAME SEQ                    a sink delivers again from SEQ
  sim     input NAME active|inactive         sim backend only: drive an input as its wire would
  metrics [-config PATH]                     the daemon's counters, Prometheus text format
  version

The default config is ` + defaultConfig + `.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "run":
		return cmdRun(rest, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "inbox":
		return cmdInbox(rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "relay":
		return cmdRelay(rest, stdout, stderr)
	case "led":
		return cmdLED(rest, stdout, stderr)
	case "sink":
		return cmdSink(rest, stdout, stderr)
	case "sim":
		return cmdSim(rest, stdout, stderr)
	case "metrics":
		return cmdMetrics(rest, stdout, stderr)
	case "rules":
		return cmdRules(rest, os.Stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "edge-agent %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "edge-agent: unknown verb %q\n\n%s", verb, usage)
	return exitUsage
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edge-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// startProfile starts a CPU profile of `run` and returns what stops it; a
// no-op unless built with -tags pprof (pprof.go).
var startProfile = func() (stop func()) { return func() {} }

// failpoint returns the test hook agent.Options.Failpoint; nil unless built
// with -tags faults (failpoint.go), so release binaries have none.
var failpoint = func() func() { return nil }

func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent: refusing to start, the configuration is invalid:\n%v\n", err)
		// Stay up blinking the status LED if there is one, so a technician
		// sees it, and answer status on the control socket meanwhile; exit
		// 1 either way. Without a status LED there is nothing to stay up
		// for: the exit and the message above are what systemd shows.
		opts := agent.Options{Version: version, Logger: log}
		withSystemd(&opts, log)
		if err := agent.ShowConfigState(ctx, *path, configProblems(*path, err), opts); err != nil && !errors.Is(err, agent.ErrNoConfigLED) {
			log.Error("cannot show the config state on the LEDs", "err", err)
		}
		return exitFailure
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	opts := agent.Options{Version: version, Logger: log}
	withSystemd(&opts, log) // READY=1 and watchdog pings under systemd; nothing without it
	opts.Failpoint = failpoint()
	defer startProfile()()
	err = agent.Run(ctx, cfg, opts)
	if err != nil {
		log.Error("edge-agent stopped", "err", err)
		return exitFailure
	}
	return exitOK
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, "usage: edge-agent config check [-config PATH]\n")
		return exitUsage
	}
	fs := newFlags("config check", stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if fs.Parse(args[1:]) != nil {
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stdout, configProblems(*path, err))
		return exitFailure
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

// configProblems is what config check prints about a file Load refused:
// one line per problem (none holds a secret), or the file's name and why
// it could not be read. A refused run serves the same text as its status.
func configProblems(path string, err error) string {
	var probs *config.Errors
	if errors.As(err, &probs) {
		return err.Error()
	}
	return fmt.Sprintf("%s: %v", path, err)
}
