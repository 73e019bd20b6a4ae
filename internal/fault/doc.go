// Package fault names what went wrong, for every layer: the sentinel errors
// callers branch on (ErrNotFound, ErrConflict, ErrBadInput,
// ErrChecksumMismatch, ErrStalled, and the registry's refusals), the
// message-only errors a person reads (BadInputf, Conflictf), the HTTP answer
// nobody wanted (StatusError) and a proxy's refusal (ProxyError).
//
// Code classifies any error into the stable error codes of the API and the
// history (docs/API.md, "Error codes"): the server answers with them, the
// queue records them, and the page turns them into sentences. It lives here,
// at the bottom, because all three need it and the failures it recognises
// come from below (the disk's SpaceError, the network's errors).
//
// Invariants: an error built here is one line (OneLine); WithKind adds a
// classification without changing the text a person reads.
package fault
