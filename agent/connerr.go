package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// describeConnErr turns a failed or lost connection into a sentence for an
// operator (last_error) and says whether it is a refusal that retrying with
// the same credentials or certificates will not cure (the `auth` state).
// Neither paho's errors nor these sentences carry the password. credKeys
// names what holds the credentials, for a refusal ("mqtt.username and
// mqtt.password_file (…)"; credentialKeys).
func describeConnErr(err error, credKeys string) (cause string, auth bool) {
	if err == nil {
		return "connection lost", false
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		recHdr    tls.RecordHeaderError
		verifyErr *tls.CertificateVerificationError
		subRef    *subscribeRefusedError
	)
	switch {
	// mosquitto answers a wrong password with 5, not 4 (docs/dependencies.md#paho-return-codes-4-and-5): both
	// mean "these credentials are refused".
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "broker refused the credentials (CONNACK 4: bad user name or password); check " + credKeys, true
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return "broker refused the credentials (CONNACK 5: not authorised); check " + credKeys, true
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "broker rejected the client id (CONNACK 2); check mqtt.client_id", true
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return "broker does not speak MQTT 3.1.1 (CONNACK 1)", true
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "broker unavailable (CONNACK 3); it will be retried", false
	case errors.As(err, &subRef):
		return subRef.Error(), true
	case errors.As(err, &unknownCA):
		return "TLS: the broker's certificate is not signed by a trusted CA; check mqtt.ca_file (" + tlsDetail(err) + ")", true
	case errors.As(err, &hostErr):
		return "TLS: the broker's certificate is not valid for this host name; set mqtt.server_name to a name in the certificate (" + tlsDetail(err) + ")", true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "TLS: the broker's certificate is expired or not yet valid; check the gateway's clock (NTP) and the certificate (" + tlsDetail(err) + ")", true
	case errors.As(err, &invalid):
		return "TLS: the broker's certificate is invalid (" + tlsDetail(err) + ")", true
	case errors.As(err, &verifyErr):
		return "TLS: certificate verification failed (" + tlsDetail(err) + ")", true
	// A TLS alert from the broker arrives as the unexported tls.alert in a
	// *net.OpError ("remote error: tls: …"), so only its text tells.
	case strings.Contains(err.Error(), "remote error: tls:"):
		return describeAlert(err.Error()), true
	case errors.As(err, &recHdr):
		return "TLS: the broker did not answer with TLS (is this a plaintext port?)", true
	}
	if errors.Is(err, io.EOF) {
		return "the broker closed the connection", false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connect") {
		return "broker unreachable: " + err.Error(), false
	}
	if errors.Is(err, errTimeout) {
		return "broker did not answer in time", false
	}
	return err.Error(), false
}

// describeAlert names what a TLS alert from the broker most likely means.
func describeAlert(msg string) string {
	switch {
	case strings.Contains(msg, "protocol version"):
		return "TLS: the broker does not offer TLS 1.2 or newer (" + msg + ")"
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"),
		strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "certificate unknown"):
		return "TLS: the broker rejected the client certificate; check mqtt.cert_file and mqtt.key_file (" + msg + ")"
	}
	return fmt.Sprintf("TLS: the broker aborted the handshake (%s)", msg)
}

func tlsDetail(err error) string { return err.Error() }
