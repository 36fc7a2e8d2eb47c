// Package agenttest provides real brokers and real certificates for the
// agent's tests and for the demo: a throw-away PKI made with crypto/x509, a
// mosquitto child process with TLS and passwords, an in-process mochi-mqtt
// broker, and a paho client to publish and subscribe with.
//
// It is not a test-only package: cmd/edge-devbroker uses it too, so every
// constructor returns an error. The Must… helpers wrap them for tests and
// register the cleanup with t.Cleanup.
//
// What it promises: every broker listens on 127.0.0.1 only; every process it
// starts is stopped by Stop/Kill (and, on Linux, killed with the test binary
// if that dies first); the PKI's server certificate verifies for 127.0.0.1,
// ::1 and localhost, and the "broken" certificates (expired, wrong host,
// other CA) fail verification for exactly the reason their name says.
//
// Persistence across a broker restart: mosquitto writes its database on a
// clean shutdown (Stop, Restart) and every autosave_interval seconds; after
// Kill it has only what it last saved. Tests that kill -9 and expect the
// queue back set Extra: []string{"autosave_interval 1", "autosave_on_changes true"}.
package agenttest
