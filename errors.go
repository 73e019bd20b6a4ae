package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// Sentinel errors that callers branch on. The API maps them to HTTP status
// codes in one place (statusFor in api.go); errorCode maps them to the
// stable codes of the API's error_code (docs/API.md, "Error codes").
var (
	errNotFound         = errors.New("not found")
	errConflict         = errors.New("not allowed in the current state")
	errBadInput         = errors.New("bad input")
	errChecksumMismatch = errors.New("checksum mismatch")
	errStalled          = errors.New("connection stalled: no data received")

	errBadURL       = errors.New("invalid URL")
	errRedirectLoop = errors.New("too many redirects (a redirect loop?)")

	// What a registry said no to, for error codes the UI explains.
	errModelNotFound   = errors.New("model not found")
	errRegistryRefused = errors.New("refused by the registry")
	errRegistryAuth    = errors.New("the registry needs credentials")
	errBadManifest     = errors.New("invalid manifest")
	errNoPlatform      = errors.New("no manifest for this platform")
	errBadZip          = errors.New("invalid model zip")

	// errTransport marks a request that failed below HTTP (the connection,
	// TLS, the proxy): what errorCode cannot name more precisely is then
	// "network", not "unknown".
	errTransport = errors.New("network failure")
)

// inputError is a message for a person about what they typed or sent. It
// matches errBadInput so the API answers 400 and the CLI exits 2, but its
// text is only the message, without a "bad input:" prefix.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == errBadInput }

// badInputf returns an error matching errBadInput with a formatted message.
func badInputf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// conflictError refuses an action the current state does not allow (a
// download already finished, a full queue). It matches errConflict (HTTP
// 409) and its text is only the reason, for the person who asked.
type conflictError struct{ msg string }

func (e *conflictError) Error() string        { return e.msg }
func (e *conflictError) Is(target error) bool { return target == errConflict }

// conflictf returns an error matching errConflict with a formatted message.
func conflictf(format string, args ...any) error {
	return &conflictError{msg: fmt.Sprintf(format, args...)}
}

// badURLf is badInputf for a URL that cannot be fetched; it also matches
// errBadURL, so its error code is bad_url.
func badURLf(format string, args ...any) error {
	return withKind(errBadURL, badInputf(format, args...))
}

// kindError is err that also matches kind, with err's text unchanged.
type kindError struct{ err, kind error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// withKind makes errors.Is(err, kind) hold without changing err's message:
// how a failure is classified (errorCode) without a second noun in its text.
func withKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{err: err, kind: kind}
}

// statusError is an HTTP answer we did not want. URL is already redacted;
// the message leaves it out because callers wrap it with what they fetched.
type statusError struct {
	Code int
	URL  string
	Body string // first bytes of the response body, for the person reading

	retryAfter string // the server's Retry-After header, if any
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// oneLineError is err with its line breaks replaced: a failure is one line
// in the CLI, the API and the history (errors.Join, for one, makes several).
type oneLineError struct{ err error }

func (e *oneLineError) Error() string {
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(e.err.Error())
}
func (e *oneLineError) Unwrap() error { return e.err }

// oneLine returns err, or err as one line when its text has line breaks.
func oneLine(err error) error {
	if err == nil || !strings.ContainsAny(err.Error(), "\r\n") {
		return err
	}
	return &oneLineError{err}
}

// errorCode is the stable code of a failure (docs/API.md, "Error codes"):
// what the API reports as error_code next to the raw error, and what the
// web page turns into a sentence in its language. "" for no error.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var (
		space  *diskSpaceError
		status *statusError
		proxy  *proxyError
		dns    *net.DNSError
		urlErr *url.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &space):
		if space.Need <= 0 {
			return "disk_full"
		}
		return "no_space"
	case errors.Is(err, errNoSpace) || isNoSpace(err):
		return "disk_full"
	case errors.Is(err, errModelNotFound):
		return "model_not_found"
	case errors.Is(err, errRegistryAuth):
		return "registry_auth"
	case errors.Is(err, errRegistryRefused):
		return "registry_refused"
	case errors.Is(err, errBadManifest):
		return "bad_manifest"
	case errors.Is(err, errNoPlatform):
		return "platform"
	case errors.Is(err, errBadZip):
		return "bad_zip"
	case errors.Is(err, errChecksumMismatch):
		return "checksum"
	case errors.Is(err, errStalled):
		return "stalled"
	case errors.Is(err, errRedirectLoop):
		return "redirect_loop"
	case errors.As(err, &proxy):
		if proxy.Code == http.StatusProxyAuthRequired {
			return "proxy_auth"
		}
		return "proxy"
	case isProxyFailure(err):
		return "proxy"
	case errors.As(err, &status):
		return httpStatusCode(status.Code)
	case errors.As(err, &dns):
		return "dns"
	case isErrno(err, syscall.ECONNREFUSED, 10061): // WSAECONNREFUSED
		return "refused"
	case isTLSFailure(err):
		return "tls"
	case isTimeout(err):
		return "timeout"
	case isLocalWriteFailure(err):
		return "permission"
	case errors.Is(err, errBadURL), errors.Is(err, errBadInput) && strings.Contains(err.Error(), "URL"):
		return "bad_url"
	case errors.Is(err, errTransport), errors.As(err, &urlErr), isNetworkFailure(err):
		return "network"
	}
	return "unknown"
}

// httpStatusCode is the error code of an HTTP answer we did not want (after
// the retries it deserved).
func httpStatusCode(code int) string {
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return "not_found"
	case code == http.StatusForbidden:
		return "forbidden"
	case code == http.StatusUnauthorized:
		return "unauthorized"
	case code == http.StatusProxyAuthRequired:
		return "proxy_auth"
	case code == http.StatusTooManyRequests:
		return "rate_limited"
	case code >= 500:
		return "server_error"
	}
	return "http_error"
}

// isErrno reports an operating-system error number: the POSIX one, or the
// Windows Sockets number that Go does not map to it.
func isErrno(err error, posix syscall.Errno, winsock uintptr) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == posix || uintptr(errno) == winsock)
}

// isProxyFailure: net/http reports a proxy it could not reach (or whose
// TLS failed) as a "proxyconnect" operation, and a SOCKS5 proxy's refusal
// as a "socks connect" one.
func isProxyFailure(err error) bool {
	return anyError(err, func(e error) bool {
		op, ok := e.(*net.OpError)
		return ok && (op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks"))
	})
}

// anyError reports whether match holds for err or for anything it wraps
// (errors.As stops at the first error of a type; this looks at them all).
func anyError(err error, match func(error) bool) bool {
	if err == nil {
		return false
	}
	if match(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return anyError(u.Unwrap(), match)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if anyError(e, match) {
				return true
			}
		}
	}
	return false
}

// isTLSFailure recognises a certificate that is not trusted or does not
// match, and a TLS handshake the other side broke off.
func isTLSFailure(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		roots            x509.SystemRootsError
		verification     *tls.CertificateVerificationError
		record           tls.RecordHeaderError
		alert            tls.AlertError
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &roots), errors.As(err, &verification), errors.As(err, &record), errors.As(err, &alert):
		return true
	case anyError(err, func(e error) bool { op, ok := e.(*net.OpError); return ok && op.Op == "remote error" }):
		return true // an alert from the server, e.g. "tls: handshake failure"
	}
	return errors.Is(err, errTransport) && strings.Contains(err.Error(), "tls: ")
}

// isTimeout: a connect, TLS handshake or response-header timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isLocalWriteFailure: the output folder or file cannot be written (no
// permission, a read-only file system, a file where a folder must be).
// A network operation refused by a firewall is not one.
func isLocalWriteFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return false
	}
	var pathErr *fs.PathError
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) ||
		(errors.As(err, &pathErr) && errors.Is(err, syscall.ENOTDIR))
}

// isNetworkFailure: the connection broke (reset, closed mid-transfer) or
// the host could not be reached.
func isNetworkFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		isErrno(err, syscall.ECONNRESET, 10054) || isErrno(err, syscall.ECONNABORTED, 10053) ||
		isErrno(err, syscall.ENETUNREACH, 10051) || isErrno(err, syscall.EHOSTUNREACH, 10065) ||
		errors.Is(err, syscall.EPIPE)
}
