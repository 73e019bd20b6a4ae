package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

func sha256Hex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// newFileHash is what a transfer feeds its bytes to: SHA-256 when a
// checksum is to be verified (model blobs, -sha256), else nothing. Hashing
// costs a core at 1.7 GB/s, and an unchecked sum would only be thrown away.
func newFileHash(want string) hash.Hash {
	if want == "" {
		return noHash{}
	}
	return sha256.New()
}

// noHash is a hash.Hash that ignores its input; its sum is empty.
type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }

func (noHash) Sum(b []byte) []byte { return b }

func (noHash) Reset() {}

func (noHash) Size() int { return 0 }

func (noHash) BlockSize() int { return sha256.BlockSize }

func IsHex64(s string) bool { _, err := hex.DecodeString(s); return err == nil && len(s) == 64 }

// HashFile returns the SHA-256 of the first n bytes of path.
func HashFile(ctx context.Context, path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(ctxReader{ctx, f}, n)); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return sha256Hex(h), nil
}

// ContextReader is r that stops a long local read (hashing, copying a
// blob) once ctx is cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader stops a long local read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// asyncHasher hashes what was written on another goroutine, so receiving
// and hashing overlap on two cores instead of taking turns. Buffers
// circulate between the reader and the hasher: no copies, bounded memory.
type asyncHasher struct {
	h    hash.Hash
	d    *Downloader
	work chan []byte
	free chan []byte
	done chan struct{}
}

func (d *Downloader) newAsyncHasher(h hash.Hash) *asyncHasher {
	depth := 3
	if _, skip := h.(noHash); skip {
		depth = 0 // nothing to hash: one buffer, no goroutine to hand it to
	}
	a := &asyncHasher{h: h, d: d, work: make(chan []byte, depth), free: make(chan []byte, depth+1), done: make(chan struct{})}
	for range max(depth, 1) {
		a.free <- d.getBuffer()
	}
	if depth == 0 {
		close(a.done)
		return a
	}
	go func() {
		defer close(a.done)
		for b := range a.work {
			a.h.Write(b)
			a.free <- b[:cap(b)]
		}
	}()
	return a
}

// next is an empty buffer to read into.
func (a *asyncHasher) next() []byte { return <-a.free }

// add hands a filled buffer over; it comes back through next.
func (a *asyncHasher) add(b []byte) {
	if cap(a.work) == 0 {
		a.free <- b[:cap(b)] // nothing to hash: the buffer is free again
		return
	}
	a.work <- b
}

// close waits until everything added is hashed, and returns the buffers.
func (a *asyncHasher) close(held []byte) {
	close(a.work)
	<-a.done
	a.free <- held[:cap(held)]
	for len(a.free) > 0 {
		a.d.putBuffer(<-a.free)
	}
}
