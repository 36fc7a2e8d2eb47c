// Command edge-demo is `make demo`: it shows edge-agent doing its job with no
// hardware and nothing from outside. It starts an in-process TLS broker
// (mochi-mqtt, certificates it generates), writes a config for the simulated
// GPIO backend, runs the real edge-agent binary, publishes sample
// notifications — text, JSON, binary, and some while the agent is stopped —
// shows them stored, sends commands and a thing-model platform's property
// sets (through the rules of scripts/rules/thing-model.toml) that switch the
// simulated relays, and stops by itself. It is a development tool, not part
// of what ships.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

const (
	deviceID = "demo-0001"
	user     = "gw-demo-0001"
	pass     = "demo-secret-not-for-production"
	topic    = "/sys/" + deviceID + "/thing/push/notify"
	// propTopic is where a thing-model platform sets properties; the
	// rules answer on propTopic + "_reply".
	propTopic = "/sys/" + deviceID + "/thing/service/property/set"
)

func main() {
	bin := flag.String("agent", "bin/edge-agent", "the edge-agent binary to run")
	keep := flag.Bool("keep", false, "keep the demo's temporary directory")
	flag.Parse()
	if err := run(*bin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) {
	fmt.Printf("\n\033[1m== "+format+"\033[0m\n", a...)
}

func run(bin string, keep bool) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "edge-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("demo files kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	step("1. a local MQTT broker with TLS and a password (in-process mochi-mqtt, throw-away CA)")
	pki, err := agenttest.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	broker, err := agenttest.StartMochi(pki, map[string]string{user: pass, "publisher": "pub-pass"}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer broker.Close()
	fmt.Println("broker listening on", broker.URL)

	step("2. a config for the simulated GPIO backend, checked with `edge-agent config check`")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(filepath.Join(dir, "mqtt.pass"), []byte(pass+"\n"), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`device_id = %q
data_dir  = %q

[mqtt]
broker        = %q
username      = %q
password_file = "mqtt.pass"
ca_file       = %q

[hw]
backend = "sim"

[leds]
status   = "GPIO27"
activity = "GPIO22"
fault    = "GPIO24"

[[relay]]
name      = "pump"
pin       = "GPIO17"
interlock = "water"
max_on    = "10m"

[[relay]]
name      = "drain"
pin       = "GPIO18"
interlock = "water"

[[relay]]
name     = "lamp"
pin      = "GPIO23"
power_on = "restore"

# A push button to ground on GPIO5: each press toggles the lamp, broker or
# not; every change is an event on /sys/{device_id}/thing/event.
[[input]]
name       = "button"
pin        = "GPIO5"
pull       = "up"
active_low = true
toggles    = "lamp"

# The thing-model preset (scripts/rules/thing-model.toml): a platform's
# property set drives a relay; the answer goes to the topic + "_reply".
[[rule]]
name   = "pump"
topic  = "/sys/{device_id}/thing/service/property/set"
match  = { method = "thing.service.property.set" }
action = "relay.set"
relay  = "pump"
on     = "params.PowerSwitch"
for    = "params.PowerSwitchDuration"

[[rule]]
name   = "lamp"
topic  = "/sys/{device_id}/thing/service/property/set"
match  = { method = "thing.service.property.set" }
action = "relay.set"
relay  = "lamp"
on     = "params.LightSwitch"
`, deviceID, filepath.Join(dir, "data"), broker.URL, user, pki.CAFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Print(indent(cfg))
	if err := show(bin, "config", "check", "-config", cfgPath); err != nil {
		return err
	}

	pub, err := agenttest.Publisher(broker.URL, pki, "publisher", "pub-pass", "demo-cloud")
	if err != nil {
		return err
	}
	defer pub.Disconnect(100)

	step("3. start the agent (its log is prefixed with 'agent |')")
	agent, err := startAgent(bin, cfgPath)
	if err != nil {
		return err
	}
	if err := waitConnected(bin, cfgPath, 10*time.Second); err != nil {
		agent.stop()
		return err
	}

	step("4. the cloud publishes notifications (QoS 1); each is on disk before the agent acknowledges it")
	samples := [][]byte{
		[]byte("hello from the cloud"),
		[]byte(`{"event":"firmware_available","version":"2.4.1"}`),
		[]byte(`{"id":"c-1","method":"agent.ping"}`),
		{0x00, 0x01, 0xfe, 0xff, 'b', 'i', 'n'},
	}
	if err := publishAll(pub, samples); err != nil {
		agent.stop()
		return err
	}
	if err := waitStored(bin, cfgPath, len(samples), 5*time.Second); err != nil {
		agent.stop()
		return err
	}

	step("5. stop the agent (SIGTERM), publish two more while it is away")
	if err := agent.stop(); err != nil {
		return err
	}
	away := [][]byte{[]byte("sent while the gateway was offline #1"), []byte("sent while the gateway was offline #2")}
	if err := publishAll(pub, away); err != nil {
		return err
	}

	step("6. start it again: the broker kept them for its persistent session")
	agent, err = startAgent(bin, cfgPath)
	if err != nil {
		return err
	}
	defer agent.stop()
	if err := waitStored(bin, cfgPath, len(samples)+len(away), 10*time.Second); err != nil {
		return err
	}

	step("7. commands from the cloud switch relays; each gets a reply on the reply topic")
	replies := make(chan string, 16)
	if tok := pub.Subscribe("/sys/"+deviceID+"/thing/push/reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		replies <- string(m.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe replies: %v", tok.Error())
	}
	commands := []string{
		`{"id":"c-100","method":"relay.set","params":{"relay":"pump","on":true,"for":"3s"}}`,
		`{"id":"c-101","method":"relay.set","params":{"relay":"drain","on":true}}`,
		`{"id":"c-102","method":"relay.toggle","params":{"relay":"lamp"}}`,
		`{"id":"c-103","method":"relay.set","params":{"relay":"pumpp","on":true}}`,
		`{"id":"c-100","method":"relay.set","params":{"relay":"pump","on":true,"for":"3s"}}`,
		`{"id":"c-104","method":"agent.ping"}`,
	}
	for _, c := range commands {
		if err := agenttest.PublishQoS1(pub, topic, []byte(c), 5*time.Second); err != nil {
			return err
		}
		fmt.Printf("command  %s\n", c)
		select {
		case r := <-replies:
			fmt.Printf("reply    %s\n", r)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("no reply to %s", c)
		}
	}
	fmt.Println("(drain is refused: it shares the interlock group \"water\" with pump, which is on;")
	fmt.Println(" the repeated id c-100 is not executed again: its first reply is sent again)")
	if err := show(bin, "status", "-config", cfgPath); err != nil {
		return err
	}
	step("8. `edge-agent relay set lamp off`, and the pump's 3 s run ends by itself")
	if err := show(bin, "relay", "set", "lamp", "off", "-config", cfgPath); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	if err := show(bin, "status", "-config", cfgPath); err != nil {
		return err
	}

	step("9. a thing-model platform sets properties: the rules switch relays and answer on %s_reply", propTopic)
	if err := propertySets(bin, cfgPath, pub); err != nil {
		return err
	}

	step("10. `edge-agent inbox list` (the property sets are stored too)")
	if err := show(bin, "inbox", "list", "-config", cfgPath); err != nil {
		return err
	}
	step("11. `edge-agent inbox export -json -n 2` (a non-UTF-8 payload comes as payload_b64)")
	if err := show(bin, "inbox", "export", "-json", "-n", "2", "-config", cfgPath); err != nil {
		return err
	}
	step("12. the broker goes away: the status LED turns to slow blinking (connecting)")
	broker.Close()
	if err := waitState(bin, cfgPath, "connecting", 10*time.Second); err != nil {
		return err
	}
	if err := show(bin, "status", "-config", cfgPath); err != nil {
		return err
	}
	step("13. with no broker, a technician presses the lamp's button (`edge-agent sim input button active`, then inactive): the lamp toggles; the events wait in the outbox")
	for _, state := range []string{"active", "inactive"} {
		if err := show(bin, "sim", "input", "button", state, "-config", cfgPath); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond) // past the 20 ms debounce
	}
	if err := show(bin, "status", "-config", cfgPath); err != nil {
		return err
	}
	step("14. stop")
	if err := agent.stop(); err != nil {
		return err
	}
	fmt.Println("\ndemo finished: notifications received over TLS and stored before they were acknowledged;")
	fmt.Println("commands and the platform's property sets (through rules) switched the simulated relays and got")
	fmt.Println("replies; a button toggled a relay with no broker; the status LED followed the connection.")
	return nil
}

// propertySets is step 9: what the rules would make of a property set
// (`rules test`, nothing done), then the platform's property sets, each
// with the alink reply it gets, and the relays and rule counts after.
func propertySets(bin, cfg string, pub mqtt.Client) error {
	replies := make(chan string, 4)
	if tok := pub.Subscribe(propTopic+"_reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		replies <- string(m.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe %s_reply: %v", propTopic, tok.Error())
	}
	set := func(id, params string) string {
		return `{"id":"` + id + `","version":"1.0","method":"thing.service.property.set","params":` + params + `}`
	}
	on := set("123", `{"PowerSwitch":1}`)
	fmt.Printf("$ echo '%s' | edge-agent rules test -config %s -\n", on, cfg)
	test := exec.Command(bin, "rules", "test", "-config", cfg, "-")
	test.Stdin, test.Stdout, test.Stderr = strings.NewReader(on), os.Stdout, os.Stderr
	if err := test.Run(); err != nil {
		return fmt.Errorf("rules test: %w", err)
	}
	for _, p := range []string{on, set("124", `{"PowerSwitch":2}`)} {
		if err := agenttest.PublishQoS1(pub, propTopic, []byte(p), 5*time.Second); err != nil {
			return err
		}
		fmt.Printf("property set  %s\n", p)
		select {
		case r := <-replies:
			fmt.Printf("alink reply   %s\n", r)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("no alink reply to %s", p)
		}
	}
	fmt.Println("(2 is neither on nor off: refused with the thing model's 460, and the pump is left as it was)")
	st, err := status(bin, cfg)
	if err != nil {
		return err
	}
	var relays []string
	for _, n := range []string{"pump", "drain", "lamp"} {
		state := "off"
		if st.Relays[n].On {
			state = "on"
		}
		relays = append(relays, n+" "+state)
	}
	fmt.Printf("$ edge-agent status -json -config %s   (relays and rules)\n", cfg)
	fmt.Printf("relays  %s\n", strings.Join(relays, ", "))
	if st.Rules == nil {
		return fmt.Errorf("status has no rules object")
	}
	fmt.Printf("rules   %d matched, %d unmatched\n", st.Rules.Matched, st.Rules.Unmatched)
	if !st.Relays["pump"].On {
		return fmt.Errorf("the pump is not on after PowerSwitch 1")
	}
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func publishAll(c mqtt.Client, payloads [][]byte) error {
	for _, p := range payloads {
		if err := agenttest.PublishQoS1(c, topic, p, 5*time.Second); err != nil {
			return err
		}
		fmt.Printf("published %q\n", p)
	}
	return nil
}

// show runs an edge-agent CLI verb with its output on the terminal.
func show(bin string, args ...string) error {
	fmt.Printf("$ edge-agent %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

type agentProc struct {
	cmd  *exec.Cmd
	done chan error
}

func startAgent(bin, cfg string) (*agentProc, error) {
	cmd := exec.Command(bin, "run", "-config", cfg)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	go prefixLines(r, "agent | ")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &agentProc{cmd: cmd, done: make(chan error, 1)}
	go func() { err := cmd.Wait(); w.Close(); p.done <- err }()
	return p, nil
}

func (p *agentProc) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("agent exited: %w", err)
		}
		time.Sleep(50 * time.Millisecond) // let the log lines drain
		fmt.Println("agent exited cleanly (status 0)")
		return nil
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("agent did not stop within 10s of SIGTERM")
	}
}

func prefixLines(r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Println(prefix + sc.Text())
	}
}

type statusDoc struct {
	Connected bool              `json:"connected"`
	State     string            `json:"state"`
	LastError string            `json:"last_error"`
	LEDs      map[string]string `json:"leds"`
	Inbox     struct {
		Total int `json:"total"`
	} `json:"inbox"`
	Relays map[string]struct {
		On bool `json:"on"`
	} `json:"relays"`
	Rules *struct {
		Matched   uint64 `json:"matched"`
		Unmatched uint64 `json:"unmatched"`
	} `json:"rules"`
}

func status(bin, cfg string) (statusDoc, error) {
	var st statusDoc
	out, err := exec.Command(bin, "status", "-json", "-config", cfg).Output()
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(out, &st)
}

func waitFor(d time.Duration, what string, ok func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	last := ""
	for {
		done, why := ok()
		if done {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %v (%s)", what, d, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitConnected(bin, cfg string, d time.Duration) error {
	return waitFor(d, "agent connected", func() (bool, string) {
		st, err := status(bin, cfg)
		if err != nil {
			return false, err.Error()
		}
		return st.Connected, st.State + ": " + st.LastError
	})
}

func waitStored(bin, cfg string, n int, d time.Duration) error {
	return waitFor(d, fmt.Sprintf("%d notifications stored", n), func() (bool, string) {
		st, err := status(bin, cfg)
		if err != nil {
			return false, err.Error()
		}
		return st.Inbox.Total >= n, fmt.Sprintf("%d stored", st.Inbox.Total)
	})
}

func waitState(bin, cfg, state string, d time.Duration) error {
	return waitFor(d, "state "+state, func() (bool, string) {
		st, err := status(bin, cfg)
		if err != nil {
			return false, err.Error()
		}
		return st.State == state && st.LEDs["status"] == state, st.State
	})
}
