// Package mirror is `serve-models`: a read-only registry that stock Ollama
// hosts on the LAN pull from (mirror.go), serving the models in this tool's
// zips and folders (sources.go), and with -upstream a pull-through cache
// (cache.go) that fetches each missing blob once however many hosts ask for
// it (fetch.go), keeps within -cache-max (evict.go), answers only the
// addresses -allow lets in (allow.go) and counts what it served (stats.go).
//
// Stock Ollama fetches blobs only through a redirect, so a blob GET answers
// 307 to a second name of this server (alternateHost).
//
// Invariants: nothing is written outside the cache folder; a blob is served
// only once verified; a manifest is served byte for byte as it was pulled.
package mirror
