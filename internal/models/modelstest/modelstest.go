// Package modelstest builds registry clients and model pullers for the
// tests of the packages above models (the queue, the server, the mirror,
// the command line): short delays, no proxies, and this machine's own
// Ollama folders left alone when a test says so.
package modelstest

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
)

// Config is what a test may change before NewPuller builds a puller: the
// registry client's configuration and the puller's knobs.
type Config struct {
	registry.Config
	ReuseModelsDirs []string                // nil: the machine's Ollama folder; empty: none
	FSType          func(dir string) string // pretend a file system ("vfat")
}

// NewRegistryClient is a client for registryURL with millisecond backoffs;
// mods change its configuration before it is built.
func NewRegistryClient(t testing.TB, registryURL string, mods ...func(*registry.Config)) *registry.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	log := slog.New(slog.DiscardHandler)
	files := engine.NewDownloader(&http.Client{Transport: tr}, log)
	files.Backoff, files.MaxBackoff = time.Millisecond, 5*time.Millisecond
	files.StallTimeout = 10 * time.Second
	cfg := registry.Config{Registry: registryURL, Concurrency: 2, Files: files, Client: &http.Client{Transport: tr}, Log: log}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	return c
}

// NewPuller is NewRegistryClient's client inside a model puller.
func NewPuller(t testing.TB, registryURL string, mods ...func(*Config)) *models.Puller {
	t.Helper()
	var cfg Config
	c := NewRegistryClient(t, registryURL, func(rc *registry.Config) {
		cfg.Config = *rc
		for _, m := range mods {
			m(&cfg)
		}
		*rc = cfg.Config
	})
	p := models.NewPuller(c)
	p.ReuseModelsDirs = cfg.ReuseModelsDirs
	if cfg.FSType != nil {
		p.FSType = cfg.FSType
	}
	return p
}

// NoReuse keeps a test's pulls away from this machine's own models.
func NoReuse(cfg *Config) { cfg.ReuseModelsDirs = []string{} }

// FixedClock makes two pulls of one model write byte-identical zips.
func FixedClock(p *models.Puller) {
	at := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	p.Now = func() time.Time { return at }
}
