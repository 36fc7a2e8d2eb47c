package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one run of a subject's process. Its stderr comes through a pipe
// the bench reads, so that a line can be stamped the moment the process
// writes it (the agent's own log timestamps have 1 ms resolution); it is
// copied to a log file as well.
type proc struct {
	cmd     *exec.Cmd
	started time.Time // just before fork/exec
	logPath string

	mu    sync.Mutex
	watch func(line string, at time.Time)
	tail  []string // the last lines, for error messages

	done    chan struct{}
	readers sync.WaitGroup
}

// startProc runs argv with extra environment; stdout goes to stdout (nil:
// /dev/null), stderr to logPath and to watch.
func startProc(argv []string, env []string, stdout *os.File, logPath string, watch func(string, time.Time)) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	// A subject dies with the bench if the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, logPath: logPath, watch: watch, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p.readers.Add(1)
	go p.read(errPipe, logf)
	go func() {
		p.readers.Wait() // cmd.Wait closes the pipe: read it all first
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) read(r io.Reader, logf *os.File) {
	defer p.readers.Done()
	w := bufio.NewWriterSize(logf, 64<<10)
	defer w.Flush()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			at := time.Now()
			_, _ = w.WriteString(line)
			line = strings.TrimRight(line, "\n")
			p.mu.Lock()
			fn := p.watch
			if len(p.tail) == 20 {
				p.tail = p.tail[1:]
			}
			p.tail = append(p.tail, line)
			p.mu.Unlock()
			if fn != nil {
				fn(line, at)
			}
		}
		if err != nil {
			return
		}
	}
}

// setWatch replaces the line watcher.
func (p *proc) setWatch(fn func(string, time.Time)) {
	p.mu.Lock()
	p.watch = fn
	p.mu.Unlock()
}

// lastLines is the end of the process's stderr.
func (p *proc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// term sends SIGTERM and waits up to d, then SIGKILL.
func (p *proc) term(d time.Duration) error {
	if !p.alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s: no exit within %v of SIGTERM", p.cmd.Path, d)
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
