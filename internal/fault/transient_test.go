package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"ollama-model-downloader/internal/disk"
	"syscall"
	"testing"
)

// permanentErr decides for itself, as the engine's own errors do.
type permanentErr struct{}

func (permanentErr) Error() string   { return "decided" }
func (permanentErr) Transient() bool { return false }

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &netErrno{syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("connecting: %w", refused), true},
		{"connection reset", syscall.ECONNRESET, true},
		{"cut mid-body", io.ErrUnexpectedEOF, true},
		{"stalled", ErrStalled, true},
		{"DNS without an answer", &net.DNSError{Err: "server misbehaving", Name: "h", IsTemporary: true}, true},
		{"no such host", &net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}, false},
		{"408", &StatusError{Code: 408}, true},
		{"429", &StatusError{Code: 429}, true},
		{"500", &StatusError{Code: 500}, true},
		{"503", &StatusError{Code: 503}, true},
		{"400", &StatusError{Code: 400}, false},
		{"401", &StatusError{Code: 401}, false},
		{"403", &StatusError{Code: 403}, false},
		{"404", &StatusError{Code: 404}, false},
		{"410", &StatusError{Code: 410}, false},
		{"proxy 502", &ProxyError{Code: 502}, true},
		{"proxy 407", &ProxyError{Code: 407}, false},
		{"checksum", fmt.Errorf("blob: %w", ErrChecksumMismatch), false},
		{"bad manifest", WithKind(ErrBadManifest, errors.New("manifest larger than 4 MB")), false},
		{"model not found", WithKind(ErrModelNotFound, errors.New("x")), false},
		{"disk full", &disk.SpaceError{Where: "/"}, false},
		{"bad input", BadInputf("no"), false},
		{"canceled", context.Canceled, false},
		{"decides itself", fmt.Errorf("wrapped: %w", permanentErr{}), false},
		{"anything else", errors.New("something odd"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Transient(tc.err); got != tc.want {
				t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// netErrno is a syscall error as the net package wraps it.
type netErrno struct{ errno syscall.Errno }

func (e *netErrno) Error() string { return e.errno.Error() }
func (e *netErrno) Unwrap() error { return e.errno }

func TestQuietAndDetail(t *testing.T) {
	raw := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	err := fmt.Errorf("fetching x: %w", Quiet("connecting to 127.0.0.1:1: the connection was refused", raw))
	if got, want := err.Error(), "fetching x: connecting to 127.0.0.1:1: the connection was refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, raw) {
		t.Error("the raw error left the chain")
	}
	if got, want := Detail(err), "fetching x: connecting to 127.0.0.1:1: the connection was refused [dial tcp 127.0.0.1:1: connect: connection refused]"; got != want {
		t.Errorf("Detail = %q, want %q", got, want)
	}
	if plain := errors.New("plain"); Detail(plain) != "plain" {
		t.Error("Detail changed an error with nothing hidden")
	}
}
