package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestInputErrorMatchesBadInput(t *testing.T) {
	err := fmt.Errorf("adding download: %w", BadInputf("retries must be 0-100, got %d", 500))
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("errors.Is(%v, ErrBadInput) = false", err)
	}
	if got, want := err.Error(), "adding download: retries must be 0-100, got 500"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *StatusError
		want string
	}{
		{"without body", &StatusError{Code: 404, URL: "https://h/x"}, "HTTP 404 Not Found"},
		{"with body", &StatusError{Code: 412, URL: "https://h/v2/", Body: "please upgrade"}, "HTTP 412 Precondition Failed: please upgrade"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	joined := errors.Join(errors.New("first"), ErrChecksumMismatch)
	err := OneLine(joined)
	if got, want := err.Error(), "first; checksum mismatch"; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Error("oneLine lost the wrapped error")
	}
	plain := errors.New("fine")
	if OneLine(plain) != plain {
		t.Error("a one-line error was wrapped")
	}
}
