// Package registry speaks the OCI / Docker v2 registry protocol the way
// `ollama pull` does: model names and their rules (names.go), the Bearer and
// Basic auth challenges (a RoundTripper that adds credentials only for the
// registry's own host), manifests (an index resolved to the -platform's
// manifest, the bytes kept exactly as served) and blobs, fetched through the
// engine, following a 307 to a CDN without the registry's Authorization.
//
// It knows nothing of zips or models folders: package models writes what it
// fetches. Digests are checked (sha256: and 64 hex) before they become file
// names, and every error body is read through a 64 KiB limit.
package registry
