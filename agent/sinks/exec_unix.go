//go:build unix

package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// run runs the command for r: in a process group of its own, stdin the
// payload, stdout /dev/null, stderr kept (its tail) for the error.
func (e *execSink) run(ctx context.Context, r *store.Record) error {
	path, err := lookPath(e.argv[0])
	if err != nil {
		return err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer inR.Close()
	defer inW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer errR.Close()
	defer errW.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	env := append(os.Environ(),
		"EDGE_SEQ="+strconv.FormatUint(r.Seq, 10),
		"EDGE_TOPIC="+r.Topic,
		"EDGE_RECEIVED_AT="+string(appendTime(nil, r.ReceivedAt)))
	if r.Oversize > 0 {
		env = append(env, "EDGE_OVERSIZE="+strconv.FormatInt(r.Oversize, 10))
	}
	// Every other descriptor of the agent is close-on-exec.
	pid, err := spawn(path, e.argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{inR.Fd(), null.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return err
	}
	inR.Close()
	errW.Close()
	go func() {
		inW.Write(r.Payload) // EPIPE when it does not read it all: its business
		inW.Close()
	}()
	var stderr tailBuffer
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(&stderr, errR)
		close(stderrDone)
	}()

	// Past the timeout, or when the agent stops: the whole group, so a
	// shell's children go too.
	timer := time.NewTimer(e.timeout)
	defer timer.Stop()
	exited := make(chan struct{})
	why := make(chan string, 1) // why it was killed; "" = it was not
	go func() {
		r := ""
		select {
		case <-timer.C:
			r = fmt.Sprintf("killed after the %s timeout", e.timeout)
		case <-ctx.Done():
			r = "killed: the agent is stopping"
		case <-exited:
		}
		if r != "" {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		why <- r
	}()
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	close(exited)
	killed := <-why
	// Its stderr ends with it, unless something outside its group holds it.
	select {
	case <-stderrDone:
	case <-time.After(time.Second):
		errR.Close()
		<-stderrDone
	}
	switch {
	case err != nil:
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case killed != "":
		err = errors.New(killed)
	case ws.Exited():
		err = fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		err = fmt.Errorf("signal: %v", ws.Signal())
	default:
		err = fmt.Errorf("wait status %#x", uint32(ws))
	}
	if s := stderr.text(); s != "" {
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}
