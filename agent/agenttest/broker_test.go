package agenttest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

const (
	testUser = "agent"
	testPass = "s3cret pass" // a space, to check the password file quoting
	wait     = 5 * time.Second
)

var testUsers = map[string]string{testUser: testPass, "other": "other-pass"}

// brokerUnderTest is what the conformance test needs of a broker.
type brokerUnderTest struct {
	name  string
	start func(t *testing.T, pki *PKI) (url string)
}

var brokers = []brokerUnderTest{
	{"mosquitto", func(t *testing.T, pki *PKI) string {
		return MustMosquitto(t, MosquittoOptions{PKI: pki, Users: testUsers}).URL
	}},
	{"mosquitto mutual TLS", func(t *testing.T, pki *PKI) string {
		return MustMosquitto(t, MosquittoOptions{PKI: pki, Users: testUsers, RequireCertificate: true}).URL
	}},
	{"mochi", func(t *testing.T, pki *PKI) string {
		return MustMochi(t, pki, testUsers).URL
	}},
}

// TestBrokers is the conformance test: every broker of this package does
// TLS + passwords, QoS 1 round trips, refuses a wrong password with code 5
// and keeps a persistent session's messages while its client is away.
func TestBrokers(t *testing.T) {
	pki := MustPKI(t)
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.start(t, pki)

			t.Run("QoS 1 round trip", func(t *testing.T) {
				sub, msgs := subscribe(t, url, pki, "rt-sub", true, "rt/#")
				defer sub.Disconnect(100)
				pub := mustPublisher(t, url, pki, "rt-pub")
				for i := range 3 {
					if err := PublishQoS1(pub, "rt/x", fmt.Appendf(nil, "m%d", i), wait); err != nil {
						t.Fatal(err)
					}
				}
				msgs.expect(t, "m0", "m1", "m2")
			})

			t.Run("wrong password", func(t *testing.T) {
				for _, c := range []struct{ user, pass string }{
					{testUser, "wrong"},
					{"nobody", testPass},
					{testUser, ""},
				} {
					o, err := ClientOptions(url, pki, c.user, c.pass, "wrong-pw")
					if err != nil {
						t.Fatal(err)
					}
					cl := mqtt.NewClient(o)
					tok := cl.Connect()
					if !tok.WaitTimeout(wait) {
						t.Fatalf("%s/%q: connect did not finish", c.user, c.pass)
					}
					if got := tok.(*mqtt.ConnectToken).ReturnCode(); got != packets.ErrRefusedNotAuthorised {
						t.Errorf("%s/%q: return code = %d, want %d (not authorised)", c.user, c.pass, got, packets.ErrRefusedNotAuthorised)
					}
					if err := tok.Error(); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
						t.Errorf("%s/%q: connect error = %v, want %v", c.user, c.pass, err, packets.ErrorRefusedNotAuthorised)
					}
					if cl.IsConnected() {
						t.Errorf("%s/%q: client connected", c.user, c.pass)
					}
				}
			})

			t.Run("persistent session", func(t *testing.T) {
				sub, msgs := subscribe(t, url, pki, "ps-sub", false, "ps/#")
				sub.Disconnect(100)

				pub := mustPublisher(t, url, pki, "ps-pub")
				for _, p := range []string{"away1", "away2", "away3"} {
					if err := PublishQoS1(pub, "ps/x", []byte(p), wait); err != nil {
						t.Fatal(err)
					}
				}
				// Reconnect without subscribing: the session has the subscription.
				sub = reconnect(t, url, pki, "ps-sub", msgs)
				defer sub.Disconnect(100)
				msgs.expect(t, "away1", "away2", "away3")
			})
		})
	}
}

func mustPublisher(t *testing.T, url string, pki *PKI, id string) mqtt.Client {
	t.Helper()
	c, err := Publisher(url, pki, testUser, testPass, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// subscribe connects client id and subscribes to filter at QoS 1. Payloads
// arrive in the returned inbox, which reconnect reuses.
func subscribe(t *testing.T, url string, pki *PKI, id string, clean bool, filter string) (mqtt.Client, *inbox) {
	t.Helper()
	msgs := newInbox()
	c := connectSub(t, url, pki, id, clean, msgs)
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	if got := tok.(*mqtt.SubscribeToken).Result()[filter]; got != 1 {
		t.Fatalf("SUBACK for %s = %#x, want QoS 1", filter, got)
	}
	return c, msgs
}

// reconnect connects client id again with clean session false.
func reconnect(t *testing.T, url string, pki *PKI, id string, msgs *inbox) mqtt.Client {
	t.Helper()
	return connectSub(t, url, pki, id, false, msgs)
}

func connectSub(t *testing.T, url string, pki *PKI, id string, clean bool, msgs *inbox) mqtt.Client {
	t.Helper()
	o, err := ClientOptions(url, pki, testUser, testPass, id)
	if err != nil {
		t.Fatal(err)
	}
	o.SetCleanSession(clean)
	// Before Connect: a session's queued messages arrive before any SUBACK
	// (docs/dependencies.md#paho-default-handler-before-connect).
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		msgs.ch <- string(m.Payload())
	})
	c, err := Connect(o)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// inbox collects what a test subscriber receives.
type inbox struct {
	ch   chan string
	seen map[string]bool // every payload expect has taken, for redeliveries
}

func newInbox() *inbox {
	return &inbox{ch: make(chan string, 100), seen: map[string]bool{}}
}

// expect waits until every payload of want has arrived. QoS 1 may deliver
// a message again, also one an earlier expect took: a PUBACK still queued
// in paho when the client disconnects is lost and the broker resends the
// message on the next connect (mosquitto_sub -C quits before its last PUBACKs). So repeats are allowed;
// any other payload is an error.
func (in *inbox) expect(t *testing.T, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	wanted := maps.Clone(missing)
	timeout := time.After(wait)
	for len(missing) > 0 {
		select {
		case got := <-in.ch:
			if !wanted[got] && !in.seen[got] {
				t.Errorf("received %q, want only %q (or a repeat)", got, want)
			}
			in.seen[got] = true
			delete(missing, got)
		case <-timeout:
			m := slices.Sorted(maps.Keys(missing))
			t.Fatalf("after %v still missing %s", wait, strings.Join(m, ", "))
		}
	}
}
