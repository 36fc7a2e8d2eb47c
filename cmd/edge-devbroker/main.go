// Command edge-devbroker runs an MQTT broker with TLS and passwords for
// `make demo` and local development. It is not for production: its CA key
// lies next to its certificates, sessions live in memory only, and every
// authenticated client may use every topic.
//
//	edge-devbroker -dir DIR [-user U -pass P] [-addr 127.0.0.1:0]
//
// It makes a test PKI in DIR (or reuses the one there), starts an
// in-process mochi-mqtt broker with the PKI's server certificate, prints one
// line of JSON to stdout once it listens,
//
//	{"url":"tls://127.0.0.1:PORT","ca_file":"DIR/ca.pem"}
//
// logs to stderr and runs until SIGINT or SIGTERM. Without -user any
// client may connect.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // could not make the PKI or start the broker
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// ready is the line printed to stdout once the broker listens.
type ready struct {
	URL    string `json:"url"`
	CAFile string `json:"ca_file"`
}

// run is the whole command, until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge-devbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the test PKI (made if missing; reused if valid)")
	user := fs.String("user", "", "user name clients must give (default: anonymous clients allowed)")
	pass := fs.String("pass", "", "password for -user")
	addr := fs.String("addr", "127.0.0.1:0", "TLS listen address (port 0 = a free port)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "edge-devbroker: %s\n", msg)
		fs.Usage()
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected arguments")
	case *dir == "":
		return usage("-dir is required")
	case (*user == "") != (*pass == ""):
		return usage("-user and -pass go together")
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, log, *dir, *user, *pass, *addr, stdout); err != nil {
		log.Error("edge-devbroker", "error", err)
		return exitError
	}
	return exitOK
}

func serve(ctx context.Context, log *slog.Logger, dir, user, pass, addr string, stdout io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	pki, err := agenttest.LoadOrNewPKI(abs)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	var users map[string]string
	if user != "" {
		users = map[string]string{user: pass}
	}
	b, err := agenttest.StartMochiAddr(pki, users, log.With("component", "mochi"), addr)
	if err != nil {
		return err
	}
	defer b.Close()

	line, err := json.Marshal(ready{URL: b.URL, CAFile: pki.CAFile})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	log.Info("listening", "url", b.URL, "ca_file", pki.CAFile, "client_cert", pki.ClientCert,
		"client_key", pki.ClientKey, "auth", user != "")

	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	return nil
}
