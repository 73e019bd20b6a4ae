package main

import (
	"bytes"
	"context"
	"io"
	"ollama-model-downloader/internal/mirror"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunServeModelsCommand(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 100)
	dir := t.TempDir()
	testkit.WriteTestZip(t, filepath.Join(dir, "tiny-latest.zip"), m.Entries())

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown flag", []string{"-nope"}, 2},
		{"missing source", []string{filepath.Join(dir, "missing")}, 2},
		{"bad listen address", []string{"-listen", "127.0.0.1:99999", dir}, 1},
		{"listen without port", []string{"-listen", "0.0.0.0", dir}, 2},
		{"cache size without upstream", []string{"-cache-max", "5G", dir}, 2},
		{"bad cache size", []string{"-upstream", "http://127.0.0.1:1", "-cache-max", "lots", "-output-dir", dir}, 2},
		{"bad allow", []string{"-allow", "the lan", dir}, 2},
		{"bad upstream", []string{"-upstream", "ftp://registry", "-output-dir", t.TempDir()}, 2},
		{"upstream with a path", []string{"-upstream", "https://registry.ollama.ai/v2", "-output-dir", t.TempDir()}, 2},
		{"bad proxy", []string{"-upstream", "https://registry.ollama.ai", "-proxy", "gopher://x", "-output-dir", t.TempDir()}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runServeModelsCommand(t.Context(), tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit code = %d, want %d: %s", code, tc.code, stderr.String())
			}
		})
	}

	t.Run("serves until canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stdout := &mirrorOutput{}
		done := make(chan int, 1)
		go func() {
			done <- runServeModelsCommand(ctx, []string{"-output-dir", dir, "-listen", "127.0.0.1:0"}, stdout, io.Discard)
		}()
		var addr string
		deadline := time.After(10 * time.Second)
		for addr == "" {
			select {
			case <-deadline:
				t.Fatalf("no banner: %q", stdout.String())
			case <-time.After(10 * time.Millisecond):
			}
			if _, rest, ok := strings.Cut(stdout.String(), "http://"); ok {
				if a, _, ok := strings.Cut(rest, "/v2/"); ok {
					addr = a
				}
			}
		}
		if want := "ollama pull --insecure " + addr + "/library/tiny:latest"; !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
		got := testkit.PullLikeOllama(t, "http://"+addr, "library/tiny", "latest")
		if !bytes.Equal(got["manifest"], m.Manifest.Data) {
			t.Errorf("manifest differs")
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit code = %d, want 0", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve-models did not stop after cancel")
		}
	})
}

// TestServeModelsCache: serve-models -upstream caches into the output
// folder, says so in its banner, and a second one on the same folder is
// refused with a clear message.
func TestServeModelsCache(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr := &mirrorOutput{}, &mirrorOutput{}
	done := make(chan int, 1)
	go func() {
		done <- runServeModelsCommand(ctx, []string{"-output-dir", out, "-listen", "127.0.0.1:0", "-upstream", f.URL, "-cache-max", "1G"}, stdout, stderr)
	}()
	addr := waitBanner(t, stdout)
	for _, want := range []string{"Caching models from " + f.URL, ".ollama-cache", "at most 1.0 GiB", "ollama pull --insecure " + addr + "/library/<model>:<tag>"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	got := testkit.PullLikeOllama(t, "http://"+addr, "library/tiny", "latest")
	if !bytes.Equal(got["manifest"], m.Manifest) {
		t.Error("manifest differs")
	}
	var second, secondErr bytes.Buffer
	if code := runServeModelsCommand(t.Context(), []string{"-output-dir", out, "-listen", "127.0.0.1:0", "-upstream", f.URL}, &second, &secondErr); code != 1 ||
		!strings.Contains(secondErr.String(), "in use by another process") {
		t.Errorf("second cache on the folder: exit %d, %s", code, secondErr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code = %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-models did not stop")
	}
	if code := runVerifyCommand(t.Context(), []string{filepath.Join(out, mirror.CacheFolderName)}, io.Discard, io.Discard); code != 0 {
		t.Errorf("verify of the cache folder: exit %d", code)
	}
}

// waitBanner waits for serve-models' first line and returns its address.
func waitBanner(t *testing.T, stdout *mirrorOutput) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, rest, ok := strings.Cut(stdout.String(), "http://"); ok {
			if a, _, ok := strings.Cut(rest, "/v2/"); ok {
				return a
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no banner: %q", stdout.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// mirrorOutput is a bytes.Buffer safe to read while another goroutine writes.
type mirrorOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *mirrorOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *mirrorOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
