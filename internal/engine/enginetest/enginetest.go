// Package enginetest builds download engines for the tests of the packages
// above the engine: short retry delays and checkpoints, so that a test of a
// failure takes milliseconds.
package enginetest

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"ollama-model-downloader/internal/engine"
)

// NewDownloader is an engine on a client without proxies, with delays
// short enough for tests.
func NewDownloader(t testing.TB) *engine.Downloader {
	t.Helper()
	d := engine.NewDownloader(engine.BuildHTTPClient(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.Backoff = 5 * time.Millisecond
	d.MaxBackoff = 20 * time.Millisecond
	d.MaxRetryAfter = 2 * time.Second
	d.StallTimeout = 2 * time.Second
	d.CheckpointEvery = 10 * time.Millisecond
	d.BufferSize = 16 << 10
	return d
}
