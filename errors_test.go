package main

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestInputErrorMatchesBadInput(t *testing.T) {
	err := fmt.Errorf("adding download: %w", badInputf("retries must be 0-100, got %d", 500))
	if !errors.Is(err, errBadInput) {
		t.Fatalf("errors.Is(%v, errBadInput) = false", err)
	}
	if got, want := err.Error(), "adding download: retries must be 0-100, got 500"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *statusError
		want string
	}{
		{"without body", &statusError{Code: 404, URL: "https://h/x"}, "HTTP 404 Not Found"},
		{"with body", &statusError{Code: 412, URL: "https://h/v2/", Body: "please upgrade"}, "HTTP 412 Precondition Failed: please upgrade"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

// closedPort is a loopback address where nothing listens: connecting is refused.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
