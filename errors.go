package main

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors that callers branch on. The API maps them to HTTP status
// codes in one place (statusFor in api.go).
var (
	errNotFound         = errors.New("not found")
	errConflict         = errors.New("not allowed in the current state")
	errBadInput         = errors.New("bad input")
	errChecksumMismatch = errors.New("checksum mismatch")
	errStalled          = errors.New("connection stalled: no data received")
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
