package mirror

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// mirrorIndex is what one scan of the sources found.
type mirrorIndex struct {
	Repos map[string]*mirrorRepo        // by lower-case "namespace/model"
	blobs map[string]mirrorBlobLocation // by digest
}

type mirrorRepo struct {
	Name      string                            // "namespace/model" as on disk
	manifests map[string]*models.LayoutManifest // by lower-case tag, and by digest
	Tags      []string
}

type mirrorBlobLocation struct {
	src  *mirrorSource
	blob models.LayoutBlob
}

// sourceRef is a zip or folder to read. A zip found in a folder of zips
// keeps that folder: it is opened through an os.Root of it, never
// through a link.
type sourceRef struct {
	path   string
	folder string // the folder a zip was found in; "" = named by the user
}

// mirrorSource is one zip or folder as a scan read it. Later scans reuse
// it while the zip's size and modification time (a folder's: its files')
// stay the same: a zip is read once, not every few seconds.
type mirrorSource struct {
	sourceRef
	size    int64
	modTime time.Time
	stamp   string         // a folder layout: digest of its files' names, sizes and times
	layout  *models.Layout // nil: unusable (logged when read)
	offsets map[string]int64
}

// Index returns the current list of models, scanning the sources again
// when it is older than RescanAfter.
func (m *Mirror) Index() *mirrorIndex {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idx == nil || m.now().Sub(m.scannedAt) > m.RescanAfter {
		m.idx = m.scan()
		m.scannedAt = m.now()
	}
	return m.idx
}

// rescanSoon makes the next request scan again (a source changed).
func (m *Mirror) rescanSoon() {
	m.mu.Lock()
	m.scannedAt = time.Time{}
	m.mu.Unlock()
}

// scan reads every source that changed since the last scan. A zip with
// problems is left out (and logged once); a manifest whose blobs are not
// all there is left out.
func (m *Mirror) scan() *mirrorIndex {
	idx := &mirrorIndex{Repos: map[string]*mirrorRepo{}, blobs: map[string]mirrorBlobLocation{}}
	read := map[string]*mirrorSource{}
	for _, ref := range m.layoutPaths() {
		src := m.readSource(ref)
		if src == nil {
			continue
		}
		read[ref.path] = src
		if src.layout == nil {
			continue
		}
		l := src.layout
	manifests:
		for i := range l.Manifests {
			mf := &l.Manifests[i]
			for _, r := range mf.Refs {
				b, ok := l.Blobs[r.Digest]
				if !ok || b.Size != r.Size || !b.Stored {
					continue manifests
				}
			}
			key := strings.ToLower(mf.Namespace + "/" + mf.Model)
			repo := idx.Repos[key]
			if repo == nil {
				repo = &mirrorRepo{Name: mf.Namespace + "/" + mf.Model, manifests: map[string]*models.LayoutManifest{}}
				idx.Repos[key] = repo
			}
			tag := strings.ToLower(mf.Tag)
			if _, dup := repo.manifests[tag]; dup {
				continue // the first source (or host folder) wins
			}
			repo.manifests[tag] = mf
			repo.manifests[mf.Digest] = mf
			repo.Tags = append(repo.Tags, mf.Tag)
			for _, r := range mf.Refs {
				if _, ok := idx.blobs[r.Digest]; !ok {
					idx.blobs[r.Digest] = mirrorBlobLocation{src: src, blob: l.Blobs[r.Digest]}
				}
			}
		}
	}
	for _, repo := range idx.Repos {
		sort.Strings(repo.Tags)
	}
	m.read = read
	return idx
}

// readSource returns what the last scan read of ref when the file (or
// the folder's files) did not change, else reads it.
func (m *Mirror) readSource(ref sourceRef) *mirrorSource {
	info, err := os.Stat(ref.path)
	if err != nil {
		m.Log.Warn("mirror: skipping", "source", ref.path, "err", err)
		return nil
	}
	src := &mirrorSource{sourceRef: ref, size: info.Size(), modTime: info.ModTime()}
	if info.IsDir() {
		src.size, src.modTime = 0, time.Time{}
		src.stamp = folderStamp(ref.path)
	}
	if old := m.read[ref.path]; old != nil && old.folder == ref.folder && old.size == src.size &&
		old.modTime.Equal(src.modTime) && old.stamp == src.stamp {
		return old
	}
	l, err := m.openLayout(ref.path)
	switch {
	case err != nil:
		m.Log.Warn("mirror: skipping", "source", ref.path, "err", err)
	case l.Zip && len(l.Problems) > 0:
		m.Log.Warn("mirror: skipping a zip with problems (run verify)", "source", ref.path, "problem", l.Problems[0])
	default:
		src.layout = l
		if l.Zip {
			src.offsets = zipBlobOffsets(ref.path, l)
		}
	}
	return src
}

// folderStamp sums up the names, sizes and times of a folder layout's
// files: it changes when a model is added, removed or rewritten.
func folderStamp(dir string) string {
	h := sha256.New()
	for _, sub := range []string{"blobs", "manifests"} {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if info, err := d.Info(); err == nil {
				fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// zipBlobOffsets finds where each stored blob's bytes start in a zip, so
// that serving a range reads them directly instead of parsing the central
// directory on every request.
func zipBlobOffsets(p string, l *models.Layout) map[string]int64 {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil
	}
	zr, err := zip.NewReader(f, info.Size())
	if err != nil {
		return nil
	}
	offsets := map[string]int64{}
	for _, zf := range zr.File {
		b, ok := l.Blobs[registry.DigestAlgoPrefix+strings.TrimPrefix(path.Base(zf.Name), registry.DigestFilePrefix)]
		if !ok || b.Name != zf.Name || zf.Method != zip.Store || zf.CompressedSize64 != zf.UncompressedSize64 {
			continue
		}
		if off, err := zf.DataOffset(); err == nil {
			offsets[zf.Name] = off
		}
	}
	return offsets
}

// layoutPaths expands the sources: a zip, a folder in Ollama's layout, or
// a folder of zips (and its kept staging folders). In a folder of zips
// only visible, regular *.zip files count, as in the web UI's library: a
// link must not lead the mirror to a file outside the folder or to its
// state.
func (m *Mirror) layoutPaths() []sourceRef {
	var out []sourceRef
	for _, src := range m.Sources {
		fi, err := os.Stat(src)
		if err != nil {
			m.Log.Warn("mirror: skipping", "source", src, "err", err)
			continue
		}
		if !fi.IsDir() || mirrorIsDir(filepath.Join(src, "manifests")) {
			out = append(out, sourceRef{path: src})
			continue
		}
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			name := e.Name()
			lower := strings.ToLower(name)
			// NAME.zip.001 is the first part of a split zip (-split).
			isZip := strings.HasSuffix(lower, ".zip") || strings.HasSuffix(lower, ".zip.001")
			if engine.HiddenName(name) || !isZip || !e.Type().IsRegular() {
				continue
			}
			out = append(out, sourceRef{path: filepath.Join(src, name), folder: src})
		}
		staging := filepath.Join(src, ".staging")
		if !mirrorIsRealDir(staging) {
			continue
		}
		kept, _ := os.ReadDir(staging)
		for _, e := range kept {
			dir := filepath.Join(staging, e.Name())
			if e.IsDir() && mirrorIsRealDir(filepath.Join(dir, "manifests")) {
				out = append(out, sourceRef{path: dir})
			}
		}
	}
	return out
}

func mirrorIsDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// mirrorIsRealDir is a folder that is not a link to one.
func mirrorIsRealDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func (idx *mirrorIndex) SortedRepos() []string {
	names := make([]string, 0, len(idx.Repos))
	for k := range idx.Repos {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// repo finds a repository the way Ollama matches names: ignoring case, and
// "model" meaning "library/model".
func (idx *mirrorIndex) repo(name string) *mirrorRepo {
	name = strings.ToLower(name)
	if !strings.Contains(name, "/") {
		name = "library/" + name
	}
	return idx.Repos[name]
}

// errSourceChanged means a zip changed since the scan that listed it.
var errSourceChanged = errors.New("changed since it was read")

// openSourceBlob opens a blob of a zip or folder for reading with ranges.
// A zip is opened through its folder's os.Root when it was found there,
// and must still be the regular file that was read (same size and time);
// a folder's blob is opened through an os.Root of the folder.
func (m *Mirror) openSourceBlob(loc mirrorBlobLocation) (io.ReadSeeker, io.Closer, error) {
	src := loc.src
	if !src.layout.Zip {
		root, err := os.OpenRoot(src.path)
		if err != nil {
			return nil, nil, err
		}
		defer root.Close()
		f, err := root.Open(filepath.FromSlash(loc.blob.Name))
		if err != nil {
			return nil, nil, err
		}
		if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() || info.Size() != loc.blob.Size {
			f.Close()
			return nil, nil, fmt.Errorf("%s in %s: %w", loc.blob.Name, src.path, errSourceChanged)
		}
		return f, f, nil
	}
	f, err := openSourceZip(src)
	if err != nil {
		return nil, nil, err
	}
	off, ok := src.offsets[loc.blob.Name]
	if !ok {
		f.Close()
		rc, err := src.layout.Open(loc.blob.Name)
		if err != nil {
			return nil, nil, err
		}
		rs, ok := rc.(io.ReadSeeker)
		if !ok {
			rc.Close()
			return nil, nil, fmt.Errorf("%s in %s cannot be read with ranges", loc.blob.Name, src.path)
		}
		return rs, rc, nil
	}
	return io.NewSectionReader(f, off, loc.blob.Size), f, nil
}

// openSourceZip opens a zip the scan read, refusing one that became a
// link or another file since.
func openSourceZip(src *mirrorSource) (*os.File, error) {
	var f *os.File
	if src.folder == "" {
		var err error
		if f, err = os.Open(src.path); err != nil {
			return nil, err
		}
	} else {
		root, err := os.OpenRoot(src.folder)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		name := filepath.Base(src.path)
		link, err := root.Lstat(name)
		if err != nil {
			return nil, err
		}
		if !link.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %w", src.path, errSourceChanged)
		}
		if f, err = root.Open(name); err != nil {
			return nil, err
		}
		if info, err := f.Stat(); err != nil || !os.SameFile(link, info) {
			f.Close()
			return nil, fmt.Errorf("%s: %w", src.path, errSourceChanged)
		}
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() != src.size || !info.ModTime().Equal(src.modTime) {
		f.Close()
		return nil, fmt.Errorf("%s: %w", src.path, errSourceChanged)
	}
	return f, nil
}
