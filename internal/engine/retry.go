package engine

import (
	"cmp"
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
	"ollama-model-downloader/internal/units"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DescribeNetError turns a transport error into a sentence that says
// what failed in plain words (a host that does not resolve, often a
// blocked CDN; a refused connection; an untrusted certificate; the proxy),
// marked ErrTransport for fault.Code. Go's own text ("dial tcp …: connect:
// connection refused") stays in the chain for fault.Detail, not in the
// message: the cause is named once (issue 22).
func DescribeNetError(target string, err error) error {
	// *url.Error repeats the whole URL, signed query string included.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, fault.ErrRedirectLoop) {
		return err
	}
	host := target
	if u, perr := url.Parse(target); perr == nil && u.Host != "" {
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
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		what = fmt.Sprintf("cannot resolve host %q: no such host (check the name, the DNS or the proxy)", dnsErr.Name)
	case errors.As(err, &dnsErr):
		what = fmt.Sprintf("cannot resolve host %q: the DNS did not answer (is the network down?)", dnsErr.Name)
	default:
		words, known := connectionWords(err)
		if !known {
			return fault.WithKind(fault.ErrTransport, fmt.Errorf("connecting to %s: %w", host, err)) // its own words are all there is
		}
		what = "connecting to " + host + words
	}
	return fault.WithKind(fault.ErrTransport, fault.Quiet(what, err))
}

// connectionWords says how a connection failed, after "connecting to
// host" or "connection lost at byte N": ": the connection was refused…";
// known is false for a failure it has no words for.
func connectionWords(err error) (words string, known bool) {
	switch {
	case fault.IsErrno(err, syscall.ECONNREFUSED, 10061):
		return ": the connection was refused (no server listening there?)", true
	case fault.IsErrno(err, syscall.ECONNRESET, 10054):
		return ": the connection was reset", true
	case fault.IsErrno(err, syscall.ENETUNREACH, 10051), fault.IsErrno(err, syscall.EHOSTUNREACH, 10065):
		return ": the network is unreachable", true
	case fault.IsCertificateFailure(err):
		return ": the server's certificate was not accepted (not trusted, or not for this name)", true
	case fault.IsTLSFailure(err):
		return ": secure connection (TLS) failed", true
	case fault.IsTimeout(err):
		return ": no answer in time", true
	case err == io.EOF, err == io.ErrUnexpectedEOF: // Go's own, not an EOF our code wrapped (a token body cut short)
		return ": the server closed the connection", true
	}
	return "", false
}

// connectionLost is the error of a body that stopped arriving at byte pos.
func connectionLost(pos int64, err error) error {
	words, known := connectionWords(err)
	if !known {
		return fault.WithKind(fault.ErrTransport, fmt.Errorf("connection lost at byte %d: %w", pos, err))
	}
	return fault.WithKind(fault.ErrTransport, fault.Quiet(fmt.Sprintf("connection lost at byte %d%s", pos, words), err))
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

func (e *retryNowError) Transient() bool { return true }

// diskError is a local write failure: retrying the network does not help,
// so it is not retried; the .part is kept for later.
type diskError struct{ err error }

func (e *diskError) Error() string { return e.err.Error() }

func (e *diskError) Unwrap() error { return e.err }

func (e *diskError) Transient() bool { return false }

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
// with err moved the download forward: its failure starts no wait and
// counts against no budget. A stall never does, or a trickle would be
// retried at once forever.
func (d *Downloader) madeProgress(n int64, err error) bool {
	return n >= d.progressBytes && !errors.Is(err, fault.ErrStalled)
}

// Wait is what an operation waiting out a failure reports (Request.Waiting):
// the failure, the attempt that comes next and when. The zero Wait says
// the wait is over.
type Wait struct {
	Err     error
	Attempt int       // the next attempt's number: 2 for the first retry
	Next    time.Time // when it starts, unless woken earlier
	Since   time.Time // when this run of failures began (the outage's start)
}

// Signal wakes whoever waits on it, as often as it fires; the zero Signal
// is ready to use. A "try now" button fires one download's; the
// downloader fires its own when a transfer recovers, so that every
// download waiting out the same outage goes on together.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C is closed at the next Fire.
func (s *Signal) C() <-chan struct{} {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes everyone waiting on C now.
func (s *Signal) Fire() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Retrier follows the failures of one operation (a transfer, a manifest
// fetch) under the downloader's policy (issue 22). A permanent failure
// (fault.Transient) ends it at once. A transient one is waited out with
// capped, jittered backoff, or as long as a Retry-After asks, and tried
// again, for as long as the operation is wanted, until either budget runs
// out: Retries failed attempts in a row that moved nothing (< 0: no
// count), or RetryFor without progress (0: no time limit). An attempt that
// moved the operation forward is no failure: the next one starts at once.
type Retrier struct {
	d       *Downloader
	retries int
	waiting func(Wait)
	tryNow  *Signal

	attempt  int       // attempts that failed so far
	failures int       // failed attempts in a row that moved nothing
	since    time.Time // when that run began; zero while the operation moves
	moved    bool      // some attempt moved it: a host that stops resolving is the network's doing
	outage   atomic.Bool
}

// NewRetrier starts following one operation: retries is its failure
// budget (< 0: the downloader's Retries), waiting (optional) hears of
// each wait and its end, tryNow (optional) ends a wait early.
func (d *Downloader) NewRetrier(retries int, waiting func(Wait), tryNow *Signal) *Retrier {
	if retries < 0 {
		retries = d.Retries
	}
	return &Retrier{d: d, retries: retries, waiting: waiting, tryNow: tryNow}
}

// Failed is told of a failed attempt and whether it moved the operation
// forward. It waits until the next attempt is due and returns nil, or
// returns the error to end with: err itself when it is permanent, err with
// a note when a budget ran out, the context's cause when ctx ended.
func (r *Retrier) Failed(ctx context.Context, err error, moved bool) error {
	r.attempt++
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if !r.transient(err) {
		return err
	}
	now := time.Now()
	if moved {
		r.failures, r.since, r.moved = 0, time.Time{}, true
	} else {
		r.failures++
		if r.since.IsZero() {
			r.since = now
		}
	}
	if r.retries >= 0 && r.failures > r.retries {
		return &givenUpError{err: err, note: "gave up after " + attemptsText(r.failures)}
	}
	if r.d.RetryFor > 0 && !r.since.IsZero() && now.Sub(r.since) >= r.d.RetryFor {
		return &givenUpError{err: err, note: fmt.Sprintf("gave up after %s of failures (%s)", units.Duration(now.Sub(r.since)), attemptsText(r.attempt))}
	}
	delay := r.d.retryDelay(r.failures, err)
	if delay <= 0 {
		return nil
	}
	r.d.log.Info("waiting to retry", "after", delay.Round(time.Millisecond), "attempt", r.attempt+1, "error", err)
	r.outage.Store(true)
	if r.waiting != nil {
		r.waiting(Wait{Err: err, Attempt: r.attempt + 1, Next: now.Add(delay), Since: cmp.Or(r.since, now)})
		defer r.waiting(Wait{})
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	case <-timer.C:
	case <-r.tryNow.C():
	case <-r.d.recovered.C():
	}
	return nil
}

// transient is fault.Transient, except that a host that stops resolving
// after the operation has moved is an outage (a VPN or a DNS that went
// away), not a typo.
func (r *Retrier) transient(err error) bool {
	var dns *net.DNSError
	if r.moved && errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	return fault.Transient(err)
}

// Alive is told that the operation moved (bytes arrived, an answer came):
// when it was waiting out an outage, every other operation of the
// downloader that waits is woken to try again now. Safe for concurrent use.
func (r *Retrier) Alive() {
	if r.outage.Load() && r.outage.CompareAndSwap(true, false) {
		r.d.recovered.Fire()
	}
}

// givenUpError is a transient failure whose retry budget ran out.
type givenUpError struct {
	err  error
	note string
}

func (e *givenUpError) Error() string { return e.err.Error() + "; " + e.note }

func (e *givenUpError) Unwrap() error { return e.err }

func (e *givenUpError) Transient() bool { return false }

// retryDelay is exponential backoff with jitter after failures failed
// attempts in a row (none: no wait), or the server's Retry-After when it
// gave one (429/503), capped.
func (d *Downloader) retryDelay(failures int, err error) time.Duration {
	var now *retryNowError
	if errors.As(err, &now) && failures <= 1 {
		return 0 // the state is mended: once at once, then as any failure
	}
	var se *fault.StatusError
	if errors.As(err, &se) && se.RetryAfter != "" {
		if wait, ok := parseRetryAfter(se.RetryAfter, time.Now()); ok {
			return min(wait, d.MaxRetryAfter)
		}
	}
	if failures <= 0 {
		return 0
	}
	delay := d.Backoff << min(failures-1, 20)
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
