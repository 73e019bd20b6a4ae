package models

import (
	"archive/zip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"strings"
)

// maxReuseZips bounds how many zips of the output folder a pull reads the
// directory of while looking for blobs it already has.
const maxReuseZips = 200

// blobSource is a copy of a blob already on this machine: a plain file (a
// models folder's blob, a staged blob) or a stored entry of a zip. It is
// only a candidate: its bytes are hashed while they are used.
type blobSource struct {
	Digest string
	Size   int64
	Path   string // a plain file; or the zip (its first part) holding the entry
	Offset int64  // in a zip: where the entry's data starts
	InZip  bool
}

func (s blobSource) String() string {
	if s.InZip {
		return s.Path + " (zip entry)"
	}
	return s.Path
}

// ReusePlaces are where a pull looks for blobs before fetching them.
type ReusePlaces struct {
	ModelsDirs  []string // Ollama models folders: <dir>/blobs/sha256-<hex>
	BlobDirs    []string // folders holding sha256-<hex> files (this tool's staging)
	ZipDirs     []string // folders whose *.zip and *.zip.001 are read
	SkipPath    []string // files never to read (what this pull writes)
	MaxZipsRead int      // 0 = maxReuseZips
}

// ReusePlacesFor lists the places for a pull: the models folders given
// (the target and $OLLAMA_MODELS), this tool's staging folders in the
// output folder and in those models folders, and the output folder's zips.
func ReusePlacesFor(outputDir string, modelsDirs []string) ReusePlaces {
	var p ReusePlaces
	seen := map[string]bool{}
	for _, d := range modelsDirs {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil || seen[abs] {
			continue
		}
		seen[abs] = true
		p.ModelsDirs = append(p.ModelsDirs, abs)
		staged, _ := filepath.Glob(filepath.Join(abs, InstallStagingFolder, "*"))
		p.BlobDirs = append(p.BlobDirs, staged...)
	}
	if outputDir != "" {
		staged, _ := filepath.Glob(filepath.Join(outputDir, ".staging", "*", "blobs"))
		p.BlobDirs = append(p.BlobDirs, staged...)
		p.ZipDirs = append(p.ZipDirs, outputDir)
	}
	return p
}

// FindReusableBlobs looks in places for each wanted blob, by name and
// size, and returns the first candidate found for each digest. Nothing is
// hashed here; a candidate that lies is caught when it is used.
func FindReusableBlobs(ctx context.Context, places ReusePlaces, wanted []registry.Blob) map[string]blobSource {
	found := map[string]blobSource{}
	need := map[string]int64{}
	for _, b := range wanted {
		need[b.Digest] = b.Size
	}
	skip := map[string]bool{}
	for _, p := range places.SkipPath {
		if abs, err := filepath.Abs(p); err == nil {
			skip[abs] = true
		}
	}
	tryFile := func(path, digest string, size int64) {
		if _, ok := found[digest]; ok {
			return
		}
		abs, err := filepath.Abs(path)
		if err != nil || skip[abs] {
			return
		}
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
			found[digest] = blobSource{Digest: digest, Size: size, Path: abs}
		}
	}
	for _, b := range wanted {
		file := b.File()
		for _, d := range places.ModelsDirs {
			tryFile(filepath.Join(d, "blobs", file), b.Digest, b.Size)
		}
		for _, d := range places.BlobDirs {
			tryFile(filepath.Join(d, file), b.Digest, b.Size)
		}
	}
	if len(found) == len(need) {
		return found
	}
	limit := places.MaxZipsRead
	if limit <= 0 {
		limit = maxReuseZips
	}
	read := 0
	for _, dir := range places.ZipDirs {
		for _, zipPath := range reusableZips(dir) {
			if ctx.Err() != nil || read >= limit || len(found) == len(need) {
				return found
			}
			if abs, err := filepath.Abs(zipPath); err != nil || skip[abs] {
				continue
			}
			read++
			zipBlobs(zipPath, need, found)
		}
	}
	return found
}

// reusableZips lists the zips of a folder (a split set by its first
// part), leaving out hidden names: those are this tool's temporary files.
func reusableZips(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		lower := strings.ToLower(name)
		if strings.HasSuffix(lower, ".zip") || strings.HasSuffix(lower, ".zip.001") {
			out = append(out, filepath.Join(dir, name))
		}
	}
	return out
}

// zipBlobs adds to found the stored blob entries of one zip that need
// lists with the same size. A zip over the caps is not read.
func zipBlobs(path string, need map[string]int64, found map[string]blobSource) {
	zs, err := openZipSource(path)
	if err != nil {
		return
	}
	defer zs.Close()
	if entries, dirBytes := zipDirectoryInfo(zs, zs.Size()); entries > MaxZipEntries || dirBytes > maxZipDirectoryBytes {
		return
	}
	zr, err := zip.NewReader(zs, zs.Size())
	if err != nil {
		return
	}
	for _, zf := range zr.File {
		hexDigest, ok := strings.CutPrefix(zf.Name, "blobs/"+registry.DigestFilePrefix)
		if !ok || !registry.IsLowerHex(hexDigest, registry.Sha256HexLen) {
			continue
		}
		digest := registry.DigestAlgoPrefix + hexDigest
		size, wanted := need[digest]
		if _, have := found[digest]; !wanted || have || zf.Method != zip.Store || zf.UncompressedSize64 != uint64(size) || zf.CompressedSize64 != uint64(size) {
			continue
		}
		off, err := zf.DataOffset()
		if err != nil {
			continue
		}
		found[digest] = blobSource{Digest: digest, Size: size, Path: zs.Path, Offset: off, InZip: true}
	}
}

// openBlobSource opens a candidate's bytes.
func openBlobSource(src blobSource) (io.ReadCloser, error) {
	if !src.InZip {
		f, err := os.Open(src.Path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	zs, err := openZipSource(src.Path)
	if err != nil {
		return nil, err
	}
	if src.Offset < 0 || src.Offset+src.Size > zs.Size() {
		zs.Close()
		return nil, fmt.Errorf("%s changed since it was read", src.Path)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(zs, src.Offset, src.Size), zs}, nil
}

// errReusedBlobDiffers means a blob found on disk did not have its digest
// (damaged, or changed since): it is fetched instead.
var errReusedBlobDiffers = errors.New("the copy on disk is not this blob")

// copyReusedBlob copies a candidate into w, hashing on the way, and
// returns the CRC-32 of what it copied. A copy whose SHA-256 or length is
// not the blob's is an error wrapping errReusedBlobDiffers.
func copyReusedBlob(ctx context.Context, w io.Writer, src blobSource, progress func(n int64)) (uint32, error) {
	rc, err := openBlobSource(src)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", src, err)
	}
	defer rc.Close()
	sum := newBlobSum()
	n, err := io.CopyBuffer(io.MultiWriter(w, sum), &progressReader{r: engine.ContextReader(ctx, io.LimitReader(rc, src.Size+1)), progress: progress}, make([]byte, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("copying %s: %w", src, err)
	}
	if got := registry.DigestAlgoPrefix + hex.EncodeToString(sum.Sum(nil)); n != src.Size || got != src.Digest {
		return 0, fmt.Errorf("%s: %w", src, errReusedBlobDiffers)
	}
	return sum.CRC(), nil
}

// hashBlobFile checks that the file at path is the blob b (size, then
// SHA-256) and returns its CRC-32.
func hashBlobFile(ctx context.Context, path string, b registry.Blob, progress func(n int64)) (uint32, error) {
	return copyReusedBlob(ctx, io.Discard, blobSource{Digest: b.Digest, Size: b.Size, Path: path}, progress)
}
