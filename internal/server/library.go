package server

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// libraryFile is one finished file in the output folder.
type libraryFile struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"` // relative to the output folder, forward slashes
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	Kind     string    `json:"kind"` // "model" for a model zip, else the lower-case extension, or "file"
}

func (s *Server) handleLibrary(w http.ResponseWriter, r *http.Request) {
	files, truncated, err := s.library()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		Files     []libraryFile         `json:"files"`
		Models    []models.LibraryModel `json:"models"`
		Truncated bool                  `json:"truncated,omitempty"`
	}{files, models.LibraryModels(s.cfg.OutputDir), truncated})
}

// library lists the output folder, newest first, through os.Root so that
// a symlink cannot lead the walk outside it.
func (s *Server) library() (files []libraryFile, truncated bool, err error) {
	files = []libraryFile{}
	root, err := os.OpenRoot(s.cfg.OutputDir)
	if errors.Is(err, fs.ErrNotExist) {
		return files, false, nil // nothing downloaded yet
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening output folder: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			s.log.Warn("listing library", "path", p, "err", err)
			return nil
		}
		if p == "." {
			return nil
		}
		if engine.HiddenName(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if len(files) >= maxLibraryFiles {
			truncated = true
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed while we walked
		}
		files = append(files, libraryFile{
			Name:     d.Name(),
			Path:     p,
			Size:     info.Size(),
			Modified: info.ModTime().UTC().Truncate(time.Second),
			Kind:     fileKind(fsys, p),
		})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("listing output folder: %w", err)
	}
	slices.SortFunc(files, func(a, b libraryFile) int {
		if c := b.Modified.Compare(a.Modified); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return files, truncated, nil
}

// fileKind is "model" for a zip laid out as Ollama's models folder (its
// central directory names manifests/), else the file type the history
// counts ("iso", "tar.gz"), or "file" when there is none.
func fileKind(fsys fs.FS, p string) string {
	kind := history.FileTypeOf("file", path.Base(p))
	switch {
	case kind == "zip" && isModelZip(fsys, p):
		return "model"
	case kind == "other":
		return "file"
	}
	return kind
}

// maxLibraryPath bounds a library path from a URL: longer ones are refused
// as bad input before the file system answers "name too long".
const (
	maxLibraryPath    = 1024
	maxLibrarySegment = 255
)

// libraryPath checks a path from a URL before it reaches the file system:
// relative, forward slashes, no . or .. segments, no NUL or backslash, not
// too long, and not one of the files the library hides.
func libraryPath(p string) error {
	switch {
	case p == "":
		return fault.BadInputf("file path is empty")
	case len(p) > maxLibraryPath:
		return fault.BadInputf("file path is %d bytes long; the most is %d", len(p), maxLibraryPath)
	case strings.ContainsAny(p, "\x00\\"):
		return fault.BadInputf("file path %q has a NUL or a backslash", p)
	case strings.HasPrefix(p, "/") || filepath.VolumeName(filepath.FromSlash(p)) != "" || len(p) >= 2 && p[1] == ':':
		// "C:x" is relative to a drive's current folder on Windows: refused everywhere.
		return fault.BadInputf("file path %q must be relative to the output folder", p)
	case !fs.ValidPath(p):
		return fault.BadInputf("file path %q must not have empty, . or .. segments", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) > maxLibrarySegment {
			return fault.BadInputf("file path %q has a name longer than %d bytes", p, maxLibrarySegment)
		}
		if engine.HiddenName(seg) {
			return fmt.Errorf("library file %s: %w", p, fault.ErrNotFound)
		}
	}
	return nil
}

// libraryEntry is a regular file of the library, reached through a chain
// of os.Roots, one per folder, in which no element is a symlink.
type libraryEntry struct {
	dir   *os.Root // the folder that holds the file
	base  string   // the file's name in dir
	file  *os.File
	info  fs.FileInfo
	roots []*os.Root
}

func (e *libraryEntry) Close() {
	if e.file != nil {
		e.file.Close()
	}
	for _, r := range slices.Backward(e.roots) {
		r.Close()
	}
}

// openLibraryFile opens a regular file of the library. Every element of
// the path is checked with Lstat and must be a real folder or, last, a
// regular file: a symlink is never followed, even one that stays inside
// the output folder (out/link.json → .state/queue.json would otherwise
// reach what hiddenName hides). Each folder is then opened as its own
// os.Root and compared with what Lstat saw, and so is the file, so a swap
// for a symlink between the check and the open is caught too.
func (s *Server) openLibraryFile(p string) (*libraryEntry, error) {
	if err := libraryPath(p); err != nil {
		return nil, err
	}
	notFound := fmt.Errorf("library file %s: %w", p, fault.ErrNotFound)
	root, err := os.OpenRoot(s.cfg.OutputDir)
	if err != nil {
		return nil, notFound
	}
	e := &libraryEntry{dir: root, roots: []*os.Root{root}}
	fail := func(err error) (*libraryEntry, error) {
		for _, r := range slices.Backward(e.roots) {
			r.Close()
		}
		if e.file != nil {
			e.file.Close()
		}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fault.ErrNotFound) || strings.Contains(err.Error(), "escapes") {
			return nil, notFound
		}
		return nil, fmt.Errorf("opening library file %s: %w", p, err)
	}
	segs := strings.Split(p, "/")
	for _, seg := range segs[:len(segs)-1] {
		info, err := e.dir.Lstat(seg)
		if err != nil {
			return fail(err)
		}
		if !info.IsDir() { // a symlink to a folder is not one
			return fail(fault.ErrNotFound)
		}
		sub, err := e.dir.OpenRoot(seg)
		if err != nil {
			return fail(err)
		}
		e.roots = append(e.roots, sub)
		got, err := sub.Stat(".")
		if err != nil {
			return fail(err)
		}
		if !os.SameFile(info, got) {
			return fail(fault.ErrNotFound)
		}
		e.dir = sub
	}
	e.base = segs[len(segs)-1]
	info, err := e.dir.Lstat(e.base)
	if err != nil {
		return fail(err)
	}
	if !info.Mode().IsRegular() {
		return fail(fault.ErrNotFound)
	}
	if e.file, err = e.dir.Open(e.base); err != nil {
		return fail(err)
	}
	if e.info, err = e.file.Stat(); err != nil {
		return fail(err)
	}
	if !e.info.Mode().IsRegular() || !os.SameFile(info, e.info) {
		return fail(fault.ErrNotFound)
	}
	return e, nil
}

func (s *Server) handleLibraryFile(w http.ResponseWriter, r *http.Request) {
	e, err := s.openLibraryFile(r.PathValue("path"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer e.Close()
	info := e.info
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(info.Name()))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	// A downloaded HTML file must never run as a page of this origin (it
	// could drive the API): always an attachment, and sandboxed if opened.
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": info.Name()}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, info.Name(), info.ModTime(), e.file)
}

func (s *Server) handleLibraryDelete(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	e, err := s.openLibraryFile(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer e.Close()
	// Windows cannot remove a file that is open.
	e.file.Close()
	e.file = nil
	// Removed by its name in the folder that was checked: the folders on
	// the way cannot be swapped any more, and a file swapped for a symlink
	// meanwhile is the symlink that goes.
	if err := e.dir.Remove(e.base); err != nil {
		s.writeError(w, r, fmt.Errorf("deleting library file %s: %w", p, err))
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// isModelZip reports whether a zip is laid out as Ollama's models folder.
// Only the central directory at the end is read, so a 40 GB zip is cheap.
func isModelZip(fsys fs.FS, p string) bool {
	f, err := fsys.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	info, err := f.Stat()
	if !ok || err != nil {
		return false
	}
	zr, err := zip.NewReader(ra, info.Size())
	if err != nil {
		return false
	}
	for _, zf := range zr.File {
		if strings.HasPrefix(zf.Name, "manifests/") {
			return true
		}
	}
	return false
}

// installResponse is the body of POST /api/library/install. Output is what
// installZip printed (verification, blobs written, notes), shown to a person
// on failure too.
type installResponse struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	ModelsDir string `json:"models_dir"`
	Output    string `json:"output"`
}

// handleLibraryInstall installs a model zip of the library into an Ollama
// models folder, exactly as "ollama-model-downloader install" does: the
// path is confined to the output folder like the file endpoints; a
// conflict with an installed model is 409, a zip that fails verification
// is 422, a models folder this process cannot write is 403.
func (s *Server) handleLibraryInstall(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := strings.TrimSpace(vals.Get("path"))
	e, err := s.openLibraryFile(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The zip is read from the folder the checks opened, never by its
	// path again (a swap between the check and the open would install a
	// file from elsewhere).
	defer e.Close()
	// A relative folder would be resolved against wherever the server was
	// started, which the person calling the API cannot see.
	if md := strings.TrimSpace(vals.Get("models_dir")); md != "" && !filepath.IsAbs(md) {
		s.writeError(w, r, fault.BadInputf("models_dir %q must be an absolute path, e.g. /home/me/.ollama/models; leave it out for the default", md))
		return
	}
	modelsDir, err := models.ResolveModelsDir(strings.TrimSpace(vals.Get("models_dir")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Another folder than this machine's Ollama one is a command's choice
	// (it proves itself with the owner's key, as on add): without that, any
	// process that can reach the port could write a model anywhere.
	if def, derr := models.ResolveModelsDir(""); (derr != nil || filepath.Clean(def) != filepath.Clean(modelsDir)) && !s.fromLocalKey(r) {
		s.writeError(w, r, errForbidden("models_dir other than this machine's Ollama folder is only for a command of this user (it sends the key in .state/owner.json); install into another folder with the command: ollama-model-downloader install -models-dir DIR ZIP"))
		return
	}
	var out bytes.Buffer
	err = models.InstallFromRoot(r.Context(), e.dir, e.base, modelsDir, &out)
	resp := installResponse{OK: err == nil, ModelsDir: modelsDir, Output: out.String()}
	code := http.StatusOK
	switch {
	case err == nil:
		s.log.Info("installed model zip", "path", p, "models_dir", modelsDir)
	case errors.Is(err, fault.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, fs.ErrPermission):
		code = http.StatusForbidden
		err = fmt.Errorf("the models folder %s is not writable by this program (%w); choose another or fix its permissions", modelsDir, err)
	case r.Context().Err() != nil:
		return // the client went away
	default:
		// Everything else installZip refuses is the zip's fault: it is
		// read and verified before anything is written.
		code = http.StatusUnprocessableEntity
	}
	if err != nil {
		resp.Error = err.Error()
	}
	s.writeJSON(w, code, resp)
}
