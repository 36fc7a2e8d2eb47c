package bootstrap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Error is what Fetch returns. Its text names the step, the HTTP status if
// there was one, and the URL without its query; it never holds a password,
// its MD5, a token or a value from a URL's query.
//
// Unreachable, Refused and TLSFailed sort it for the status LED. One that
// is none of them (a malformed answer, HTTP 404, a redirect) means the
// configuration or the service is wrong; one from a cancelled context
// matches errors.Is(err, context.Canceled).
type Error struct {
	Step     string // StepLogin or StepLoadBalance
	URL      string // the step's URL without user info, query or fragment
	Status   int    // HTTP status of the answer (200 for a malformed one); 0 = none came
	Msg      string // what went wrong, free of secrets
	Attempts int    // requests made for this step

	err  error // the cause, for errors.Is/As (never a *url.Error: it quotes the query)
	kind kind
}

type kind int

const (
	kindAnswer      kind = iota // 2xx but not what was expected: not tried again
	kindHTTP                    // another status (3xx, 400, 404, …): not tried again
	kindUnreachable             // network error, timeout, 408, 429, 5xx: tried again
	kindRefused                 // 401, 403, or the answer says the login failed
	kindTLS                     // the service's certificate or TLS version is refused
	kindCancelled               // the caller's context ended
)

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("bootstrap: ")
	b.WriteString(e.Step)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.URL != "" || e.Attempts > 1 {
		b.WriteString(" (")
		b.WriteString(e.URL)
		if e.Attempts > 1 {
			if e.URL != "" {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(e.Attempts))
			b.WriteString(" attempts")
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the cause: a net, TLS, x509 or JSON error, or the
// context's error when Fetch was cancelled.
func (e *Error) Unwrap() error { return e.err }

// Unreachable reports that the service could not be asked: a network error,
// a timeout, or HTTP 408, 429 or 5xx (status state "bootstrap"). Fetch has
// already tried again; the caller tries later.
func (e *Error) Unreachable() bool { return e.kind == kindUnreachable }

// Refused reports that the service refused the credentials: HTTP 401 or
// 403, or an answer without what was asked for that says it failed (status
// state "auth"). Trying again with the same configuration will not help.
func (e *Error) Refused() bool { return e.kind == kindRefused }

// TLSFailed reports that TLS to the service failed in a way trying again
// will not cure: its certificate is not trusted, not for this host, expired
// (or the gateway's clock is wrong), or it does not speak TLS 1.2 (status
// state "auth", as docs/design.md#status-leds puts TLS failures).
func (e *Error) TLSFailed() bool { return e.kind == kindTLS }

// transportError describes a request that got no HTTP answer. ctx is the
// caller's context, rctx the request's (with the timeout).
func (c *Client) transportError(ctx, rctx context.Context, err error, prefix string) *Error {
	// net/http wraps its errors in *url.Error, whose text quotes the whole
	// URL, query and app secret included: keep only what it wraps.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return &Error{Msg: "cancelled", err: ctx.Err(), kind: kindCancelled}
	}
	if rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Msg: fmt.Sprintf("%sno answer within %s", prefix, c.o.Timeout), err: err, kind: kindUnreachable}
	}
	if m, ok := describeTLS(err); ok {
		return &Error{Msg: m, err: err, kind: kindTLS}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Msg: fmt.Sprintf("%sno answer in time: %v", prefix, err), err: err, kind: kindUnreachable}
	}
	return &Error{Msg: fmt.Sprintf("%sservice unreachable: %v", prefix, err), err: err, kind: kindUnreachable}
}

// describeTLS names a TLS failure that trying again will not cure.
func describeTLS(err error) (string, bool) {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recHdr    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("TLS: the service's certificate is not signed by a trusted CA; check bootstrap.ca_file (%v)", err), true
	case errors.As(err, &hostErr):
		return fmt.Sprintf("TLS: the service's certificate is not valid for this host name (%v)", err), true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("TLS: the service's certificate is expired or not yet valid; check the gateway's clock (NTP) (%v)", err), true
	case errors.As(err, &invalid), errors.As(err, &verifyErr):
		return fmt.Sprintf("TLS: the service's certificate is invalid (%v)", err), true
	case errors.As(err, &recHdr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "TLS: the service did not answer with TLS (is the URL's port a plain-http one?)", true
	// A TLS alert arrives as the unexported tls.alert: only its text tells.
	case strings.Contains(err.Error(), "remote error: tls:"), strings.Contains(err.Error(), "tls: protocol version"):
		return fmt.Sprintf("TLS: the handshake with the service failed (%v)", err), true
	}
	return "", false
}

// redactor holds the secrets a message must not carry.
type redactor []string

// minSecret: shorter strings are not redacted, as they turn up in any text
// ("HTTP 401") and so give nothing away.
const minSecret = 4

// add returns r with ss added; the result never shares r's array, so one
// Fetch's token cannot leak into another's list.
func (r redactor) add(ss ...string) redactor {
	out := make(redactor, len(r), len(r)+len(ss))
	copy(out, r)
	for _, s := range ss {
		if len(s) >= minSecret {
			out = append(out, s)
		}
	}
	return out
}

func (r redactor) clean(s string) string {
	for _, sec := range r {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

func upper(s string) string { return strings.ToUpper(s) }

// serviceMessage returns the explanation a JSON answer gives, quoted,
// redacted, and cut to a readable length; "" if it gives none.
func serviceMessage(root any, red redactor) string {
	for _, name := range []string{"msg", "message", "error_description", "error", "errMsg", "detail", "desc"} {
		v, ok := lookup(root, []string{name}, true)
		if !ok {
			v, ok = lookup(root, []string{"data", name}, true)
		}
		s, isStr := v.(string)
		if !ok || !isStr || strings.TrimSpace(s) == "" {
			continue
		}
		s = red.clean(s) // before cutting: a cut secret would no longer match
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, s)
		if rs := []rune(s); len(rs) > 200 {
			s = string(rs[:200]) + "…"
		}
		return strconv.Quote(s)
	}
	return ""
}

// failure reads a JSON answer that lacks what was asked for: does it say
// it failed, and how? A service may answer HTTP 200 with
// {"code":401,"msg":"wrong password"}.
func failure(root any) (failed, transient bool) {
	if v, ok := lookup(root, []string{"success"}, true); ok {
		if b, isBool := v.(bool); isBool && !b {
			failed = true
		}
	}
	for _, name := range []string{"code", "errcode", "resultCode", "status"} {
		v, ok := lookup(root, []string{name}, true)
		if !ok {
			continue
		}
		s := strings.ToLower(strings.TrimSpace(fmt.Sprint(v)))
		switch s {
		case "", "0", "200", "ok", "success", "true":
			continue
		}
		failed = true
		if n, err := strconv.Atoi(s); err == nil && n >= 500 && n <= 599 {
			transient = true
		}
	}
	return failed, transient
}
