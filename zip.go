package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxZipNameTries bounds the search for a free "name (n).zip".
const maxZipNameTries = 1000

// zipEntry is one entry of a model zip.
type zipEntry struct {
	Name string // slash-separated path in the zip; a trailing "/" marks a folder
	Path string // file on disk to store; "" for a folder

	// What the file must hold, for zipHolds; not checked by writeZip.
	Size   int64
	SHA256 string // lower-case hex
}

// writeZip writes entries into a zip at dest and returns where it went.
//
// Blobs are stored, not deflated (GGUF weights do not compress), and
// streamed from disk; archive/zip switches to zip64 by itself past 4 GiB.
// Folders are included as entries with mode 0755 so that unzip creates
// Ollama's layout with the modes Ollama uses; files are 0644.
//
// The zip is written to a temporary name in dest's folder, synced, and
// only then published. An existing dest is never overwritten: if it holds
// the same entries (names, modes, sizes, CRC-32) it is kept and returned
// (a rerun of the same pull); otherwise the new zip is published as
// "name (1).zip", "name (2).zip"…, as the file downloader does.
func writeZip(ctx context.Context, dest string, entries []zipEntry) (string, int64, error) {
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, fmt.Errorf("creating folder for %s: %w", dest, err)
	}
	// A fixed temporary name: a run killed while zipping leaves one file
	// that the next run truncates, not a new stray file per attempt.
	f, err := os.OpenFile(filepath.Join(dir, "."+filepath.Base(dest)+".tmp"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("creating temporary zip: %w", err)
	}
	tmp := f.Name()
	published := false
	defer func() {
		if !published {
			os.Remove(tmp)
		}
	}()

	err = fillZip(ctx, f, entries)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	final, err := publishZip(tmp, dest)
	if err != nil {
		return "", 0, err
	}
	published = true
	if final == "" {
		final = dest // the same zip was already there
	}
	fi, err := os.Stat(final)
	if err != nil {
		return "", 0, err
	}
	return final, fi.Size(), nil
}

// fillZip writes the zip stream to w.
func fillZip(ctx context.Context, w io.Writer, entries []zipEntry) error {
	zw := zip.NewWriter(w)
	buf := make([]byte, 1<<20)
	now := time.Now()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := checkZipName(e.Name); err != nil {
			return err
		}
		h := &zip.FileHeader{Name: e.Name, Method: zip.Store, Modified: now}
		if e.Path == "" {
			h.SetMode(fs.ModeDir | 0o755)
			if _, err := zw.CreateHeader(h); err != nil {
				return fmt.Errorf("adding %s: %w", e.Name, err)
			}
			continue
		}
		if err := addZipFile(ctx, zw, h, e.Path, buf); err != nil {
			return fmt.Errorf("adding %s: %w", e.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing zip: %w", err)
	}
	return nil
}

func addZipFile(ctx context.Context, zw *zip.Writer, h *zip.FileHeader, path string, buf []byte) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	h.Modified = fi.ModTime()
	h.SetMode(0o644)
	dst, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(dst, ctxReader{ctx, src}, buf)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed while zipping: %d bytes, expected %d", path, n, fi.Size())
	}
	return nil
}

// checkZipName refuses names that would extract outside the target folder.
func checkZipName(name string) error {
	clean := strings.TrimSuffix(name, "/")
	if clean == "" || strings.HasPrefix(clean, "/") || strings.Contains(clean, `\`) {
		return fmt.Errorf("unsafe zip entry name %q", name)
	}
	for _, part := range strings.Split(clean, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("unsafe zip entry name %q", name)
		}
	}
	return nil
}

// publishZip moves tmp to dest, or beside it as "name (n).zip" when dest
// holds something else. It returns "" when dest already had the same
// content (tmp is then removed).
func publishZip(tmp, dest string) (string, error) {
	ext := filepath.Ext(dest)
	stem := strings.TrimSuffix(dest, ext)
	for i := 0; i < maxZipNameTries; i++ {
		candidate := dest
		if i > 0 {
			candidate = stem + " (" + strconv.Itoa(i) + ")" + ext
		}
		if _, err := os.Lstat(candidate); errors.Is(err, fs.ErrNotExist) {
			// Link fails if candidate appeared meanwhile, so nothing is
			// overwritten; fall back to Rename where links are unsupported.
			if err := os.Link(tmp, candidate); err == nil {
				os.Remove(tmp)
				return candidate, nil
			} else if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err := os.Rename(tmp, candidate); err != nil {
				return "", fmt.Errorf("publishing zip: %w", err)
			}
			return candidate, nil
		} else if err != nil {
			return "", fmt.Errorf("checking %s: %w", candidate, err)
		}
		if sameZip(candidate, tmp) {
			if err := os.Remove(tmp); err != nil {
				return "", fmt.Errorf("removing temporary zip: %w", err)
			}
			if i == 0 {
				return "", nil
			}
			return candidate, nil
		}
	}
	return "", fmt.Errorf("publishing zip: %s and %d numbered variants already exist", dest, maxZipNameTries)
}

// sameZip reports whether two zips hold the same entries: names, modes,
// sizes and CRC-32, in order (times may differ).
func sameZip(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ia, err1 := fa.Stat()
	ib, err2 := fb.Stat()
	return err1 == nil && err2 == nil && sameZipAt(fa, ia.Size(), fb, ib.Size())
}

// sameZipAt is sameZip for zips read through io.ReaderAt (split sets).
func sameZipAt(a io.ReaderAt, sizeA int64, b io.ReaderAt, sizeB int64) bool {
	za, err := zip.NewReader(a, sizeA)
	if err != nil {
		return false
	}
	zb, err := zip.NewReader(b, sizeB)
	if err != nil {
		return false
	}
	if len(za.File) != len(zb.File) {
		return false
	}
	for i, fa := range za.File {
		fb := zb.File[i]
		if fa.Name != fb.Name || fa.Mode() != fb.Mode() || fa.CRC32 != fb.CRC32 || fa.UncompressedSize64 != fb.UncompressedSize64 {
			return false
		}
	}
	return true
}

// zipHolds reports whether the zip at path has exactly these entries, with
// Ollama's modes, and each file's size and SHA-256 as listed. Reading it
// back costs one pass over the zip, far less than fetching it again.
func zipHolds(ctx context.Context, path string, entries []zipEntry) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	return zipReaderHolds(ctx, f, fi.Size(), entries)
}

// zipSourceHolds is zipHolds for an open zip or split set.
func zipSourceHolds(ctx context.Context, zs *zipSource, entries []zipEntry) bool {
	return zipReaderHolds(ctx, zs, zs.Size(), entries)
}

func zipReaderHolds(ctx context.Context, r io.ReaderAt, size int64, entries []zipEntry) bool {
	if n, dirBytes := zipDirectoryInfo(r, size); n > maxZipEntries || dirBytes > maxZipDirectoryBytes {
		return false
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return false
	}
	if len(zr.File) != len(entries) {
		return false
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		byName[f.Name] = f
	}
	for _, e := range entries {
		f, ok := byName[e.Name]
		if !ok {
			return false
		}
		if e.Path == "" {
			if f.Mode() != fs.ModeDir|0o755 {
				return false
			}
			continue
		}
		if f.Mode() != 0o644 || e.SHA256 == "" || f.UncompressedSize64 != uint64(e.Size) {
			return false
		}
		rc, err := f.Open()
		if err != nil {
			return false
		}
		h := sha256.New()
		_, err = io.Copy(h, ctxReader{ctx, rc})
		rc.Close()
		if err != nil || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			return false
		}
	}
	return true
}
