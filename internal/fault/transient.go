package fault

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"ollama-model-downloader/internal/disk"
	"strings"
)

// Transient reports whether a failure may go away by itself — the network
// comes back, the server recovers, the rate limit passes — so that waiting
// and trying again is worth it (issue 22): a refused, reset or timed-out
// connection, a DNS lookup that could not be made, a TLS handshake that
// did not finish, a proxy that failed, HTTP 408, 429 and 5xx, a stall.
//
// What waiting cannot mend is permanent: 400/401/403/404/410 and the other
// 4xx answers, a checksum mismatch, a manifest the tool refuses, a full
// disk or an unwritable folder, a certificate that is not trusted, a name
// the DNS says does not exist, bad input, a redirect loop. An error in the
// chain that has a Transient() bool method decides for itself.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var own interface{ Transient() bool }
	if errors.As(err, &own) {
		return own.Transient()
	}
	for _, permanent := range []error{ErrBadInput, ErrConflict, ErrChecksumMismatch, disk.ErrNoSpace, ErrRedirectLoop,
		ErrBadManifest, ErrModelNotFound, ErrRegistryAuth, ErrRegistryRefused, ErrNoPlatform, ErrBadZip, ErrNotFound} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var (
		proxy  *ProxyError
		status *StatusError
		dns    *net.DNSError
	)
	switch {
	case disk.IsNoSpace(err), isLocalWriteFailure(err), IsCertificateFailure(err):
		return false
	case errors.As(err, &proxy):
		return proxy.Code >= 500 // a tunnel the proxy could not open may open later; a 403/407 will not
	case errors.As(err, &status):
		return status.Code == http.StatusRequestTimeout || status.Code == http.StatusTooManyRequests || status.Code >= 500
	case errors.As(err, &dns):
		return !dns.IsNotFound // "no such host" from a DNS that answered; the caller may know better
	}
	return true // connections refused, reset or dropped, timeouts, stalls
}

// IsCertificateFailure: the server's certificate is not trusted or does
// not match the name. Waiting does not change a certificate.
func IsCertificateFailure(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		roots            x509.SystemRootsError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &roots)
}

// quietError says what failed in words; the error it wraps (Go's own
// text, "dial tcp 127.0.0.1:1: connect: connection refused") stays in the
// chain for errors.Is and errors.As, and for Detail, but not in the text.
type quietError struct {
	msg   string
	cause error
}

func (e *quietError) Error() string { return e.msg }

func (e *quietError) Unwrap() error { return e.cause }

// Quiet returns an error whose text is msg alone and which wraps cause: a
// failure named once, in words (issue 22), with the raw error kept for -v
// and the web page's details (Detail).
func Quiet(msg string, cause error) error {
	return &quietError{msg: msg, cause: cause}
}

// Detail is err's text followed by the raw errors its Quiet parts hide,
// for -v and the page's folded details: "connecting to h: the connection
// was refused [dial tcp 127.0.0.1:1: connect: connection refused]".
func Detail(err error) string {
	if err == nil {
		return ""
	}
	text := err.Error()
	var hidden []string
	anyError(err, func(e error) bool {
		if q, ok := e.(*quietError); ok && q.cause != nil {
			if raw := q.cause.Error(); !strings.Contains(text, raw) {
				hidden = append(hidden, raw)
			}
		}
		return false
	})
	if len(hidden) == 0 {
		return text
	}
	return text + " [" + strings.Join(hidden, "; ") + "]"
}
