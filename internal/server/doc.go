// Package server is the REST API and the web page, from one http.Handler:
// downloads (downloads.go), settings, the library of finished files and
// models (library.go), history and statistics, the LAN mirror's switch
// (mirror.go), the event stream (events.go), the access token and the
// session cookie (auth.go), the page's embedded files (assets.go), and the
// browser extension's pairing (pairing.go) and way in (extension.go).
//
// Every request passes the same checks first (serveHTTP): a Host that is the
// server's own name (DNS rebinding); then either the extension's gate (an
// extension origin or a pairing key: only a paired key from its own origin,
// on the few routes an extension may use) or an Origin that is the page's
// for anything that changes state and the token when one is set; bodies
// under their limit. Handlers read, decode, validate, act, and answer
// with exactly one of writeJSON or writeError; statusFor maps the fault
// package's errors to HTTP codes.
package server
