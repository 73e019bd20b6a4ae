package fault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"os"
	"strings"
	"syscall"
)

// Sentinel errors that callers branch on. The API maps them to HTTP status
// codes in one place (statusFor in api.go); Code maps them to the
// stable codes of the API's error_code (docs/API.md, "Error codes").
var (
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("not allowed in the current state")
	ErrBadInput         = errors.New("bad input")
	ErrChecksumMismatch = errors.New("checksum mismatch")
	ErrStalled          = errors.New("connection stalled: no data received")

	errBadURL       = errors.New("invalid URL")
	ErrRedirectLoop = errors.New("too many redirects (a redirect loop?)")

	// What a registry said no to, for error codes the UI explains.
	ErrModelNotFound   = errors.New("model not found")
	ErrRegistryRefused = errors.New("refused by the registry")
	ErrRegistryAuth    = errors.New("the registry needs credentials")
	ErrBadManifest     = errors.New("invalid manifest")
	ErrNoPlatform      = errors.New("no manifest for this platform")
	ErrBadZip          = errors.New("invalid model zip")

	// ErrTransport marks a request that failed below HTTP (the connection,
	// TLS, the proxy): what Code cannot name more precisely is then
	// "network", not "unknown".
	ErrTransport = errors.New("network failure")
)

// inputError is a message for a person about what they typed or sent. It
// matches ErrBadInput so the API answers 400 and the CLI exits 2, but its
// text is only the message, without a "bad input:" prefix.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func (e *inputError) Is(target error) bool { return target == ErrBadInput }

// BadInputf returns an error matching ErrBadInput with a formatted message.
func BadInputf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// conflictError refuses an action the current state does not allow (a
// download already finished, a full queue). It matches ErrConflict (HTTP
// 409) and its text is only the reason, for the person who asked.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

func (e *conflictError) Is(target error) bool { return target == ErrConflict }

// Conflictf returns an error matching ErrConflict with a formatted message.
func Conflictf(format string, args ...any) error {
	return &conflictError{msg: fmt.Sprintf(format, args...)}
}

// BadURLf is BadInputf for a URL that cannot be fetched; it also matches
// errBadURL, so its error code is bad_url.
func BadURLf(format string, args ...any) error {
	return WithKind(errBadURL, BadInputf(format, args...))
}

// kindError is err that also matches kind, with err's text unchanged.
type kindError struct{ err, kind error }

func (e *kindError) Error() string { return e.err.Error() }

func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// WithKind makes errors.Is(err, kind) hold without changing err's message:
// how a failure is classified (Code) without a second noun in its text.
func WithKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{err: err, kind: kind}
}

// StatusError is an HTTP answer we did not want. URL is already redacted;
// the message leaves it out because callers wrap it with what they fetched.
type StatusError struct {
	Code int
	URL  string
	Body string // first bytes of the response body, for the person reading

	RetryAfter string // the server's Retry-After header, if any
}

func (e *StatusError) Error() string {
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

// OneLine returns err, or err as one line when its text has line breaks.
func OneLine(err error) error {
	if err == nil || !strings.ContainsAny(err.Error(), "\r\n") {
		return err
	}
	return &oneLineError{err}
}

// Code is the stable code of a failure (docs/API.md, "Error codes"):
// what the API reports as error_code next to the raw error, and what the
// web page turns into a sentence in its language. "" for no error.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var (
		space  *disk.SpaceError
		status *StatusError
		proxy  *ProxyError
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
	case errors.Is(err, disk.ErrNoSpace) || disk.IsNoSpace(err):
		return "disk_full"
	case errors.Is(err, ErrModelNotFound):
		return "model_not_found"
	case errors.Is(err, ErrRegistryAuth):
		return "registry_auth"
	case errors.Is(err, ErrRegistryRefused):
		return "registry_refused"
	case errors.Is(err, ErrBadManifest):
		return "bad_manifest"
	case errors.Is(err, ErrNoPlatform):
		return "platform"
	case errors.Is(err, ErrBadZip):
		return "bad_zip"
	case errors.Is(err, ErrChecksumMismatch):
		return "checksum"
	case errors.Is(err, ErrStalled):
		return "stalled"
	case errors.Is(err, ErrRedirectLoop):
		return "redirect_loop"
	case errors.As(err, &proxy):
		if proxy.Code == http.StatusProxyAuthRequired {
			return "proxy_auth"
		}
		return "proxy"
	case IsProxyFailure(err):
		return "proxy"
	case errors.As(err, &status):
		return httpStatusCode(status.Code)
	case errors.As(err, &dns):
		return "dns"
	case IsErrno(err, syscall.ECONNREFUSED, 10061): // WSAECONNREFUSED
		return "refused"
	case IsTLSFailure(err):
		return "tls"
	case IsTimeout(err):
		return "timeout"
	case isLocalWriteFailure(err):
		return "permission"
	case errors.Is(err, errBadURL), errors.Is(err, ErrBadInput) && strings.Contains(err.Error(), "URL"):
		return "bad_url"
	case errors.Is(err, ErrTransport), errors.As(err, &urlErr), isNetworkFailure(err):
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

// IsErrno reports an operating-system error number: the POSIX one, or the
// Windows Sockets number that Go does not map to it.
func IsErrno(err error, posix syscall.Errno, winsock uintptr) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == posix || uintptr(errno) == winsock)
}

// IsProxyFailure: net/http reports a proxy it could not reach (or whose
// TLS failed) as a "proxyconnect" operation, and a SOCKS5 proxy's refusal
// as a "socks connect" one.
func IsProxyFailure(err error) bool {
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

// IsTLSFailure recognises a certificate that is not trusted or does not
// match, and a TLS handshake the other side broke off.
func IsTLSFailure(err error) bool {
	var (
		verification *tls.CertificateVerificationError
		record       tls.RecordHeaderError
		alert        tls.AlertError
	)
	switch {
	case IsCertificateFailure(err), errors.As(err, &verification), errors.As(err, &record), errors.As(err, &alert):
		return true
	case anyError(err, func(e error) bool { op, ok := e.(*net.OpError); return ok && op.Op == "remote error" }):
		return true // an alert from the server, e.g. "tls: handshake failure"
	}
	return errors.Is(err, ErrTransport) && strings.Contains(Detail(err), "tls: ")
}

// IsTimeout: a connect, TLS handshake or response-header timeout.
func IsTimeout(err error) bool {
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
		IsErrno(err, syscall.ECONNRESET, 10054) || IsErrno(err, syscall.ECONNABORTED, 10053) ||
		IsErrno(err, syscall.ENETUNREACH, 10051) || IsErrno(err, syscall.EHOSTUNREACH, 10065) ||
		errors.Is(err, syscall.EPIPE)
}

// ProxyError is a proxy's refusal to open a tunnel (CONNECT) to Target.
type ProxyError struct {
	Proxy, Target string
	Code          int
}

func (e *ProxyError) Error() string {
	if e.Code == http.StatusProxyAuthRequired {
		return fmt.Sprintf("the proxy %s needs credentials (HTTP 407): give them in the proxy URL, e.g. http://user:pass@host:3128", e.Proxy)
	}
	return fmt.Sprintf("the proxy %s refused to connect to %s: HTTP %d %s", e.Proxy, e.Target, e.Code, http.StatusText(e.Code))
}
