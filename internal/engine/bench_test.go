package engine

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchSize is large enough that per-request overhead does not dominate
// and small enough to stay in the page cache of a 2-core CI machine.
const benchSize = 64 << 20

// benchData is incompressible, like model weights and ISO images.
func benchData(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, benchSize)
	r := rand.NewChaCha8([32]byte{1})
	if _, err := io.ReadFull(r, data); err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkSHA256 is the ceiling for verification: Go's hash over memory.
// bench/run.sh compares it with openssl and sha256sum.
func BenchmarkSHA256(b *testing.B) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkHashFile is the verification path of an existing or resumed
// file (hashFile), reading a file that is in the page cache.
func BenchmarkHashFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "data.bin")
	if err := os.WriteFile(path, benchData(b), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := HashFile(b.Context(), path, benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopbackDownload is the whole engine (request, write, hash,
// sync, rename) against an in-process origin on 127.0.0.1.
func BenchmarkLoopbackDownload(b *testing.B) {
	data := benchData(b)
	modified := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "data.bin", modified, bytes.NewReader(data))
	}))
	b.Cleanup(srv.Close)

	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("connections=%d", conns), func(b *testing.B) {
			d := NewDownloader(BuildHTTPClient(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
			dir := b.TempDir()
			b.SetBytes(benchSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				path := filepath.Join(dir, fmt.Sprintf("data-%d.bin", i))
				i++
				res, err := d.Download(b.Context(), Request{URL: srv.URL + "/data.bin", Path: path, Connections: conns, Retries: -1})
				if err != nil {
					b.Fatal(err)
				}
				if res.Size != benchSize {
					b.Fatalf("downloaded %d bytes, want %d", res.Size, benchSize)
				}
				b.StopTimer()
				if err := os.Remove(path); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
