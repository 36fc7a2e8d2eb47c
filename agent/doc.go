// Package agent is the edge-agent daemon: it holds the MQTT-over-TLS session,
// hands every received notification to the store and acknowledges it only
// after the store has it on disk, and reports its own health.
//
// The promise: a PUBACK leaves this process only for a message whose record
// was committed and fsynced, and PUBACKs leave in the order the messages
// arrived (MQTT 3.1.1 §4.6).
//
// Ownership: the session goroutine owns the paho client; the writer
// goroutine owns the write path to the store; the control server owns its
// listener. Health is shared through the health type, which each of them
// writes only its own fields of.
package agent
