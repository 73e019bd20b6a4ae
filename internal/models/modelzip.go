package models

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/units"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Layout is a set of models in Ollama's on-disk layout (SPEC §4):
// blobs/sha256-<hex> and manifests/<host>/<namespace>/<model>/<tag>, read
// from one of our zips or from a folder (an Ollama models folder, a staging
// folder, an extracted zip). Only the manifests are held in memory; blobs
// are opened when needed, so nothing stays open between calls.
type Layout struct {
	Source    string                // the zip or folder as given
	Blobs     map[string]LayoutBlob // by digest, "sha256:<hex>"
	Manifests []LayoutManifest      // sorted by Name
	Problems  []string              // what makes it unusable: unsafe or stray entries, bad manifests
	Notes     []string              // what is odd but harmless
	Parts     []string              // a split zip's parts, in order (Source is the first)

	Zip  bool
	zr   *zip.Reader // the directory of held, read once
	held *zipSource  // when set, every read goes through these open files
}

// LayoutBlob is one blob file of a layout.
type LayoutBlob struct {
	Digest string // "sha256:<hex>"
	Name   string // "blobs/sha256-<hex>"
	Size   int64
	Stored bool // a plain file or an uncompressed zip entry: Open gives an io.Seeker
}

// LayoutManifest is one manifest file of a layout, kept byte for byte:
// Ollama's model ID is the sha256 of those bytes.
type LayoutManifest struct {
	Name      string // "manifests/<host>/<namespace>/<model>/<tag>"
	Host      string
	Namespace string
	Model     string
	Tag       string
	Data      []byte
	Digest    string                // sha256 of Data, "sha256:<hex>"
	MediaType string                // as the manifest says, else Docker v2
	Refs      []registry.Descriptor // the config, then the layers
}

// Ref is the name a person types: host/namespace/model:tag.
func (m LayoutManifest) Ref() string {
	return registry.Name{Host: m.Host, Namespace: m.Namespace, Model: m.Model, Tag: m.Tag}.String()
}

// ShortRef is the name Ollama shows: the default host and the "library"
// namespace left out.
func (m LayoutManifest) ShortRef() string {
	name := m.Model + ":" + m.Tag
	if m.Namespace != "library" || m.Host != "registry.ollama.ai" {
		name = m.Namespace + "/" + name
	}
	if m.Host != "registry.ollama.ai" {
		name = m.Host + "/" + name
	}
	return name
}

// Caps on what a zip may make us read before it is trusted (issue 18: a
// 1.3 MB zip of 300 Deflate-compressed 4 MiB manifests cost 3.2 GB of
// memory and wrote 1.2 GB). A model zip holds a few dozen entries and a
// manifest of a few KiB; these leave room for many models in one zip.
const (
	MaxZipEntries        = 10000
	maxZipDirectoryBytes = 8 << 20
	maxZipManifests      = 1000
	maxZipManifestTotal  = 16 << 20
)

// OpenLayout reads the list of entries and every manifest of a zip,
// a split zip (any part, or the zip's name when only the parts exist) or
// a folder. It fails when the source cannot be read at all or a zip is
// over the caps; anything else wrong inside is listed in Problems. Each
// Open afterwards opens the zip again (a mirror keeps layouts for long).
func OpenLayout(src string) (*Layout, error) {
	fi, err := os.Stat(src)
	if err == nil && fi.IsDir() {
		l := &Layout{Source: src, Blobs: map[string]LayoutBlob{}}
		if err := l.readFolder(); err != nil {
			return nil, err
		}
		return l.finish(), nil
	}
	zs, err := openZipSource(src)
	if err != nil {
		return nil, err
	}
	defer zs.Close()
	l, err := readZipLayout(zs)
	if err != nil {
		return nil, err
	}
	l.zr = nil // reads open the zip again
	return l, nil
}

// OpenLayoutFrom reads the layout of an open zip and keeps every
// later read on those open files: nothing is looked up by name again, so
// a path swapped meanwhile (a symbolic link) changes nothing. The caller
// closes src once done with the layout.
func OpenLayoutFrom(src *zipSource) (*Layout, error) {
	l, err := readZipLayout(src)
	if err != nil {
		return nil, err
	}
	l.held = src
	return l, nil
}

func readZipLayout(zs *zipSource) (*Layout, error) {
	l := &Layout{Source: zs.Path, Parts: zs.Parts, Blobs: map[string]LayoutBlob{}, Zip: true}
	if err := l.readZip(zs); err != nil {
		return nil, err
	}
	return l.finish(), nil
}

func (l *Layout) finish() *Layout {
	sort.Slice(l.Manifests, func(i, j int) bool { return l.Manifests[i].Name < l.Manifests[j].Name })
	if len(l.Manifests) == 0 {
		l.Problems = append(l.Problems, "no manifest: expected manifests/<host>/<namespace>/<model>/<tag>")
	}
	return l
}

// readZip checks the zip against the caps, from its end records and then
// its central directory, before reading any manifest.
func (l *Layout) readZip(zs *zipSource) error {
	label := zs.Label()
	entries, dirBytes := zipDirectoryInfo(zs, zs.Size())
	if entries > MaxZipEntries || dirBytes > maxZipDirectoryBytes {
		return fault.WithKind(fault.ErrBadZip, fmt.Errorf("%s is refused: it lists %d entries in a %s directory, over the limits for a model zip (%d entries, %s)",
			label, entries, units.Decimal(int64(dirBytes)), MaxZipEntries, units.Decimal(maxZipDirectoryBytes)))
	}
	zr, err := zip.NewReader(zs, zs.Size())
	if err != nil {
		return fault.WithKind(fault.ErrBadZip, fmt.Errorf("reading zip %s: %w", label, err))
	}
	if err := checkZipManifestCaps(label, zr.File); err != nil {
		return err
	}
	l.zr = zr
	var read int64 // manifest bytes read: the caps hold whatever the headers claim
	seen := map[string]bool{}
	for _, zf := range zr.File {
		name := zf.Name
		if seen[name] {
			l.Problems = append(l.Problems, fmt.Sprintf("%q: appears twice", name))
			continue
		}
		seen[name] = true
		mode := zf.Mode()
		if mode.IsDir() || strings.HasSuffix(name, "/") {
			if problem := checkLayoutDir(strings.TrimSuffix(name, "/")); problem != "" {
				l.Problems = append(l.Problems, fmt.Sprintf("%q: %s", name, problem))
			}
			continue
		}
		if !mode.IsRegular() {
			l.Problems = append(l.Problems, fmt.Sprintf("%q: not a regular file (%v)", name, mode.Type()))
			continue
		}
		stored := zf.Method == zip.Store && zf.CompressedSize64 == zf.UncompressedSize64
		l.addFile(name, int64(zf.UncompressedSize64), stored, func() ([]byte, error) {
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			data, err := ReadManifestBytes(io.LimitReader(rc, maxZipManifestTotal-read+1))
			read += int64(len(data))
			if err == nil && read > maxZipManifestTotal {
				err = fmt.Errorf("manifests over %s in all: refused", units.Decimal(maxZipManifestTotal))
			}
			return data, err
		})
	}
	return nil
}

// checkZipManifestCaps refuses a zip whose central directory announces
// more manifests, or more manifest bytes, than any model zip holds.
func checkZipManifestCaps(label string, files []*zip.File) error {
	var count int
	var total uint64
	for _, zf := range files {
		if !strings.HasPrefix(zf.Name, "manifests/") || strings.HasSuffix(zf.Name, "/") {
			continue
		}
		count++
		total += zf.UncompressedSize64
		if zf.UncompressedSize64 > registry.MaxManifestBytes {
			return fault.WithKind(fault.ErrBadZip, fmt.Errorf("%s is refused: its manifest %s would be %s, and a manifest is at most %s (a real one is a few KiB)",
				label, zf.Name, units.Decimal(int64(min(zf.UncompressedSize64, 1<<62))), units.Decimal(registry.MaxManifestBytes)))
		}
	}
	if count > maxZipManifests || total > maxZipManifestTotal {
		return fault.WithKind(fault.ErrBadZip, fmt.Errorf("%s is refused: it holds %d manifests of %s in all, over the limits for model zips (%d manifests, %s in all)",
			label, count, units.Decimal(int64(min(total, 1<<62))), maxZipManifests, units.Decimal(maxZipManifestTotal)))
	}
	return nil
}

// zipDirectoryInfo reads the entry count and central directory size from
// a zip's end records, before archive/zip reads (and allocates for) the
// whole directory. Zeros when the records cannot be found: the zip
// reader then says what is wrong.
func zipDirectoryInfo(r io.ReaderAt, size int64) (entries, dirBytes uint64) {
	tail := min(size, zipEndLen+zipMax16+zip64LocatorLen)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0
	}
	for i := len(buf) - zipEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != 0x06054b50 {
			continue
		}
		end := buf[i:]
		entries = uint64(binary.LittleEndian.Uint16(end[10:]))
		dirBytes = uint64(binary.LittleEndian.Uint32(end[12:]))
		if i < zip64LocatorLen || binary.LittleEndian.Uint32(buf[i-zip64LocatorLen:]) != 0x07064b50 {
			return entries, dirBytes
		}
		off := int64(binary.LittleEndian.Uint64(buf[i-zip64LocatorLen+8:]))
		rec := make([]byte, zip64EndLen)
		if off < 0 || off > size-zip64EndLen {
			return entries, dirBytes
		}
		if _, err := r.ReadAt(rec, off); err != nil || binary.LittleEndian.Uint32(rec) != 0x06064b50 {
			return entries, dirBytes
		}
		return binary.LittleEndian.Uint64(rec[32:]), binary.LittleEndian.Uint64(rec[40:])
	}
	return 0, 0
}

func (l *Layout) readFolder() error {
	root := l.Source
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading folder %s: %w", root, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if problem := checkLayoutDir(name); problem != "" {
				// An Ollama models folder may hold other things; they are
				// not served or installed.
				l.Notes = append(l.Notes, fmt.Sprintf("%s: ignored (%s)", name, problem))
				return fs.SkipDir
			}
			return nil
		}
		fi, err := os.Stat(p) // follows a symbolic link to a blob kept elsewhere
		if err != nil {
			return fmt.Errorf("reading folder %s: %w", root, err)
		}
		if !fi.Mode().IsRegular() {
			l.Notes = append(l.Notes, fmt.Sprintf("%s: ignored (not a regular file)", name))
			return nil
		}
		if strings.HasPrefix(name, "blobs/") && strings.Contains(name, "-partial") {
			return nil // Ollama's own unfinished downloads
		}
		before := len(l.Problems)
		l.addFile(name, fi.Size(), true, func() ([]byte, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return ReadManifestBytes(f)
		})
		if len(l.Problems) > before && !strings.HasPrefix(name, "manifests/") {
			// A stray file in a folder is harmless: it is left out.
			l.Notes = append(l.Notes, strings.Replace(l.Problems[before], ": ", ": ignored: ", 1))
			l.Problems = l.Problems[:before]
		}
		return nil
	})
}

// addFile classifies one file of the layout by its name.
func (l *Layout) addFile(name string, size int64, stored bool, read func() ([]byte, error)) {
	parts, problem := splitLayoutName(name)
	if problem != "" {
		l.Problems = append(l.Problems, fmt.Sprintf("%q: %s", name, problem))
		return
	}
	if parts[0] == "blobs" {
		digest := registry.DigestAlgoPrefix + strings.TrimPrefix(parts[1], registry.DigestFilePrefix)
		l.Blobs[digest] = LayoutBlob{Digest: digest, Name: name, Size: size, Stored: stored}
		return
	}
	data, err := read()
	if err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("%s: %v", name, err))
		return
	}
	m := LayoutManifest{Name: name, Host: parts[1], Namespace: parts[2], Model: parts[3], Tag: parts[4], Data: data}
	sum := sha256.Sum256(data)
	m.Digest = registry.DigestAlgoPrefix + hex.EncodeToString(sum[:])
	if problem := m.parse(); problem != "" {
		l.Problems = append(l.Problems, fmt.Sprintf("%s: %s", name, problem))
		return
	}
	if hexPart, ok := strings.CutPrefix(m.Tag, registry.DigestFilePrefix); ok && registry.DigestAlgoPrefix+hexPart != m.Digest {
		// A digest pull is stored under the digest it was asked for.
		l.Problems = append(l.Problems, fmt.Sprintf("%s: content has %s, not the digest in its name", name, m.Digest))
		return
	}
	l.Manifests = append(l.Manifests, m)
}

func ReadManifestBytes(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, registry.MaxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > registry.MaxManifestBytes {
		return nil, fmt.Errorf("larger than %d bytes: not a manifest", registry.MaxManifestBytes)
	}
	return data, nil
}

// parse reads the references of a Docker v2 / OCI image manifest.
func (m *LayoutManifest) parse() string {
	var doc registry.Manifest
	if err := json.Unmarshal(m.Data, &doc); err != nil {
		return fmt.Sprintf("not a JSON manifest: %v", err)
	}
	if len(doc.Manifests) > 0 {
		return "an image index, not an image manifest (only resolved manifests are stored)"
	}
	if doc.SchemaVersion != 2 || doc.Config == nil {
		return "not a Docker v2 / OCI image manifest (schemaVersion 2 with a config)"
	}
	m.MediaType = doc.MediaType
	if m.MediaType == "" {
		m.MediaType = registry.MediaDockerManifest
	}
	m.Refs = append([]registry.Descriptor{*doc.Config}, doc.Layers...)
	for _, ref := range m.Refs {
		if !registry.ValidDigest(ref.Digest) {
			return fmt.Sprintf("invalid digest %q", ref.Digest)
		}
		if ref.Size < 0 {
			return fmt.Sprintf("negative size for %s", ref.Digest)
		}
	}
	return ""
}

// splitLayoutName checks a file name from a zip or folder and splits it.
// It refuses everything that could land outside the target folder
// (zip-slip: "..", absolute paths, backslashes, drive letters) and
// everything that is not a blob or a manifest.
func splitLayoutName(name string) ([]string, string) {
	if problem := checkLayoutPath(name); problem != "" {
		return nil, problem
	}
	parts := strings.Split(name, "/")
	switch parts[0] {
	case "blobs":
		if len(parts) != 2 || !strings.HasPrefix(parts[1], registry.DigestFilePrefix) || !registry.IsLowerHex(strings.TrimPrefix(parts[1], registry.DigestFilePrefix), registry.Sha256HexLen) {
			return nil, "not a blob name: expected blobs/sha256-<64 lower-case hex>"
		}
	case "manifests":
		if len(parts) != 5 {
			return nil, "not a manifest name: expected manifests/<host>/<namespace>/<model>/<tag>"
		}
		if problem := CheckLayoutParts(parts[1:]); problem != "" {
			return nil, problem
		}
	default:
		return nil, "stray entry: only blobs/ and manifests/ belong in a model zip"
	}
	return parts, ""
}

// checkLayoutDir accepts the folders on the way to blobs and manifests.
func checkLayoutDir(name string) string {
	if problem := checkLayoutPath(name); problem != "" {
		return problem
	}
	parts := strings.Split(name, "/")
	switch {
	case parts[0] == "blobs" && len(parts) == 1:
	case parts[0] == "manifests" && len(parts) <= 4:
		return CheckLayoutParts(parts[1:])
	default:
		return "stray folder: only blobs/ and manifests/ belong in a model zip"
	}
	return ""
}

func checkLayoutPath(name string) string {
	switch {
	case name == "":
		return "empty name"
	case strings.Contains(name, `\`):
		return "backslash in the name (refused: it can escape the folder on Windows)"
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return "absolute path (refused)"
	case strings.ContainsRune(name, 0):
		return "NUL in the name (refused)"
	}
	for _, p := range strings.Split(name, "/") {
		if p == ".." {
			return "\"..\" in the name (refused: zip-slip)"
		}
		if p == "" || p == "." {
			return "empty or \".\" path element (refused)"
		}
	}
	if path.Clean(name) != name {
		return "not a clean path (refused)"
	}
	return ""
}

// CheckLayoutParts checks host, namespace, model and tag folder names
// (SPEC §4 name rules; the host may carry a port).
func CheckLayoutParts(parts []string) string {
	labels := []string{"host", "namespace", "model", "tag"}
	for i, p := range parts {
		limit := 80
		if i == 0 {
			limit = 350
		}
		if len(p) > limit {
			return fmt.Sprintf("%s %q is longer than %d characters", labels[i], p, limit)
		}
		for j, c := range []byte(p) {
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' ||
				j > 0 && (c == '-' || c == '.' || i == 0 && c == ':')
			if !ok {
				return fmt.Sprintf("%s %q has a character Ollama does not allow", labels[i], p)
			}
		}
	}
	return ""
}

// Open opens one file of the layout by its slash-separated name. For a
// folder, and for a zip entry stored without compression (as our zips
// are), the result is also an io.Seeker, so it can answer Range requests.
func (l *Layout) Open(name string) (io.ReadCloser, error) {
	if !l.Zip {
		return os.Open(filepath.Join(l.Source, filepath.FromSlash(name)))
	}
	zr, src, closer := l.zr, l.held, io.Closer(nopCloser{})
	if src == nil {
		zs, err := openZipSource(l.Source)
		if err != nil {
			return nil, err
		}
		if zr, err = zip.NewReader(zs, zs.Size()); err != nil {
			zs.Close()
			return nil, fmt.Errorf("reading zip %s: %w", l.Source, err)
		}
		src, closer = zs, zs
	}
	for _, zf := range zr.File {
		if zf.Name != name {
			continue
		}
		if zf.Method == zip.Store && zf.CompressedSize64 == zf.UncompressedSize64 {
			off, err := zf.DataOffset()
			if err != nil {
				closer.Close()
				return nil, err
			}
			return layoutSection{io.NewSectionReader(src, off, int64(zf.UncompressedSize64)), closer}, nil
		}
		rc, err := zf.Open()
		if err != nil {
			closer.Close()
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{rc, layoutCloser{rc, closer}}, nil
	}
	closer.Close()
	return nil, fmt.Errorf("%s in %s: %w", name, l.Source, fs.ErrNotExist)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

type layoutSection struct {
	*io.SectionReader
	io.Closer
}

type layoutCloser struct{ a, b io.Closer }

func (c layoutCloser) Close() error { return errors.Join(c.a.Close(), c.b.Close()) }

// Verify checks what the layout promises: every blob's content has the
// digest in its name, every blob a manifest names is there with the size
// the manifest says. It returns every problem found (Problems included);
// none means the layout is sound. progress, if not nil, is called with the
// bytes hashed so far.
func (l *Layout) Verify(ctx context.Context, progress func(done int64)) []string {
	problems := append([]string(nil), l.Problems...)
	var done int64
	blobs := l.sortedBlobs()
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return append(problems, err.Error())
		}
		got, n, err := l.hashBlob(ctx, b.Name, func(n int64) {
			if progress != nil {
				progress(done + n)
			}
		})
		done += n
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", b.Name, err))
		case got != b.Digest:
			problems = append(problems, fmt.Sprintf("%s: content has digest %s (damaged or altered)", b.Name, got))
		}
	}
	referenced := map[string]bool{}
	for _, m := range l.Manifests {
		for _, ref := range m.Refs {
			referenced[ref.Digest] = true
			b, ok := l.Blobs[ref.Digest]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s: names blob %s, which is missing", m.Name, ref.Digest))
			case b.Size != ref.Size:
				problems = append(problems, fmt.Sprintf("%s: says %s has %d bytes, the blob has %d", m.Name, ref.Digest, ref.Size, b.Size))
			}
		}
	}
	if l.Zip { // a models folder holds many models' blobs
		for _, b := range blobs {
			if !referenced[b.Digest] {
				l.Notes = append(l.Notes, fmt.Sprintf("%s: no manifest uses it", b.Name))
			}
		}
	}
	return problems
}

func (l *Layout) sortedBlobs() []LayoutBlob {
	blobs := make([]LayoutBlob, 0, len(l.Blobs))
	for _, b := range l.Blobs {
		blobs = append(blobs, b)
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Name < blobs[j].Name })
	return blobs
}

// hashBlob returns the digest of a layout file and its length.
func (l *Layout) hashBlob(ctx context.Context, name string, progress func(int64)) (string, int64, error) {
	rc, err := l.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, &progressReader{r: engine.ContextReader(ctx, rc), progress: progress})
	if err != nil {
		return "", n, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// progressReader reports the running total of what was read.
type progressReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.progress != nil && n > 0 {
		p.progress(p.n)
	}
	return n, err
}

// referencedBlobs lists, once each, the blobs the manifests use.
func (l *Layout) referencedBlobs() []LayoutBlob {
	seen := map[string]bool{}
	var out []LayoutBlob
	for _, m := range l.Manifests {
		for _, ref := range m.Refs {
			if b, ok := l.Blobs[ref.Digest]; ok && !seen[ref.Digest] {
				seen[ref.Digest] = true
				out = append(out, b)
			}
		}
	}
	return out
}
