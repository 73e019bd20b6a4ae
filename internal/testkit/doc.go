// Package testkit holds what the tests of several packages share: a fake HTTP
// origin with failure knobs (origin.go), an in-process fake registry with a
// Bearer challenge, a token endpoint and a CDN it redirects blobs to
// (registry.go), model zips and folders to verify and install (model.go),
// zip trees to compare, and finders and starters for the real servers the
// end-to-end tests run: Docker Distribution and the stock Ollama.
//
// Only tests import it; it imports nothing of the product, so any
// package's tests can use it.
package testkit
