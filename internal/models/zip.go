package models

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/engine"
	"os"
	"strings"
)

// maxZipNameTries bounds the search for a free "name (n).zip".
const maxZipNameTries = 1000

// zipEntry is one entry of a model zip.
type zipEntry struct {
	Name string // slash-separated path in the zip; a trailing "/" marks a folder
	Path string // the file in staging it is staged as (-keep-staging); "" for a folder

	// What the file must hold, for zipHolds and the zip's layout.
	Size   int64
	SHA256 string // lower-case hex
	Data   []byte // a manifest: its bytes, known before any blob
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
	for i := 0; i < maxZipNameTries; i++ {
		candidate := engine.NumberedName(dest, i)
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
	if n, dirBytes := zipDirectoryInfo(r, size); n > MaxZipEntries || dirBytes > maxZipDirectoryBytes {
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
		_, err = io.Copy(h, engine.ContextReader(ctx, rc))
		rc.Close()
		if err != nil || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			return false
		}
	}
	return true
}
