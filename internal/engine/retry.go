package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// describeNetError turns a transport error into a sentence that says
// what failed in plain words (a host that does not resolve, often a
// blocked CDN; a refused connection; an untrusted certificate; the proxy),
// marked ErrTransport for fault.Code.
func describeNetError(target string, err error) error {
	// *url.Error repeats the whole URL, signed query string included.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, fault.ErrRedirectLoop) {
		return err
	}
	host := target
	if u, perr := url.Parse(target); perr == nil {
		host = u.Host
	}
	var (
		dnsErr *net.DNSError
		proxy  *fault.ProxyError
		what   string
	)
	switch {
	case errors.As(err, &proxy):
		return fault.WithKind(fault.ErrTransport, err) // it says it all
	case fault.IsProxyFailure(err):
		what = fmt.Sprintf("connecting to %s through the proxy: the proxy cannot be reached or failed", host)
	case errors.As(err, &dnsErr):
		what = fmt.Sprintf("cannot resolve host %q (check the network, DNS or proxy)", dnsErr.Name)
	case fault.IsErrno(err, syscall.ECONNREFUSED, 10061):
		what = fmt.Sprintf("connecting to %s: the connection was refused (no server listening there?)", host)
	case fault.IsTLSFailure(err):
		what = fmt.Sprintf("connecting to %s: secure connection (TLS) failed", host)
	case fault.IsTimeout(err):
		what = fmt.Sprintf("connecting to %s: no answer in time", host)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		what = fmt.Sprintf("connecting to %s: the server closed the connection without an answer", host)
	default:
		what = fmt.Sprintf("connecting to %s", host)
	}
	return fault.WithKind(fault.ErrTransport, fmt.Errorf("%s: %w", what, err))
}

// StatusErrorFrom reads a little of an unwanted answer for the person.
func StatusErrorFrom(resp *http.Response) *fault.StatusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	text := strings.Join(strings.Fields(string(body)), " ")
	if strings.Contains(resp.Header.Get("Content-Type"), "html") {
		text = "" // an error page's markup helps nobody on a terminal
	}
	if len(text) > 300 {
		text = strings.ToValidUTF8(text[:300], "") + "…"
	}
	return &fault.StatusError{
		Code:       resp.StatusCode,
		URL:        RedactURL(resp.Request.URL.String()),
		Body:       text,
		RetryAfter: resp.Header.Get("Retry-After"),
	}
}

// retryNowError is a failure that is worth retrying at once (the state was
// already repaired, e.g. the .part was reset).
type retryNowError struct{ err error }

func (e *retryNowError) Error() string { return e.err.Error() }

func (e *retryNowError) Unwrap() error { return e.err }

// diskError is a local write failure: retrying the network does not help,
// so it is not retried; the .part is kept for later.
type diskError struct{ err error }

func (e *diskError) Error() string { return e.err.Error() }

func (e *diskError) Unwrap() error { return e.err }

// writeFailure is the error of a failed write, sync or preallocation of
// path's .part: a full disk is the one-line diskFullError (errNoSpace),
// anything else a diskError. Neither is retried.
func writeFailure(err error, path, doing string) error {
	if disk.IsNoSpace(err) {
		return disk.FullError(err, path)
	}
	return &diskError{fmt.Errorf("%s %s: %w", doing, PartPath(path), err)}
}

// attemptsText is "1 attempt", "3 attempts".
func attemptsText(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

// madeProgress says whether an attempt that fetched n bytes before failing
// with err earned a fresh set of retries.
func madeProgress(n int64, err error) bool {
	return n >= 64<<10 && !errors.Is(err, fault.ErrStalled)
}

// Retryable says whether another attempt may succeed.
func Retryable(err error) bool {
	var now *retryNowError
	if errors.As(err, &now) {
		return true
	}
	var diskErr *diskError
	if errors.As(err, &diskErr) || errorsIsAny(err, fault.ErrBadInput, fault.ErrConflict, fault.ErrChecksumMismatch, disk.ErrNoSpace, fault.ErrRedirectLoop) {
		return false
	}
	var proxy *fault.ProxyError
	if errors.As(err, &proxy) {
		return proxy.Code >= 500 // a tunnel the proxy could not open may open later; a 403/407 will not
	}
	var se *fault.StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusRequestTimeout, http.StatusTooManyRequests:
			return true
		}
		return se.Code >= 500
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	return true // network errors, dropped connections, stalls
}

// retryDelay is exponential backoff with jitter, or the server's
// Retry-After when it gave one (429/503), capped.
func (d *Downloader) retryDelay(attempt int, err error) time.Duration {
	var now *retryNowError
	if errors.As(err, &now) {
		return 0
	}
	var se *fault.StatusError
	if errors.As(err, &se) && se.RetryAfter != "" {
		if wait, ok := parseRetryAfter(se.RetryAfter, time.Now()); ok {
			return min(wait, d.MaxRetryAfter)
		}
	}
	delay := d.Backoff << min(attempt-1, 20)
	if delay > d.MaxBackoff || delay <= 0 {
		delay = d.MaxBackoff
	}
	// Full jitter over the upper half keeps many clients from retrying in step.
	return delay/2 + rand.N(delay/2+1)
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
