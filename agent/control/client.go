package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("edge-agent is not running")

// Call sends req to the daemon whose data_dir is dir and calls fn for each
// reply line until the answer ends. A reply carrying an error is returned as
// the error.
func Call(dir string, req Request, fn func(Reply) error) error {
	path := filepath.Join(dir, SocketName)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: no control socket at %s (start it: edge-agent run, or systemctl start edge-agent)", ErrNotRunning, path)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("cannot open %s: permission denied (run as root or as a member of the agent's group)", path)
		}
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer c.Close()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64*1024), 64<<20) // a record line holds a whole payload
	for sc.Scan() {
		var r Reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("control socket: bad reply: %w", err)
		}
		if r.Error != "" {
			return errors.New(r.Error)
		}
		if r.Done {
			return nil
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return errors.New("control socket: the answer ended early (did the daemon stop?)")
}
