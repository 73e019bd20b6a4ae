package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// linuxServiceModelsDir is where Ollama's Linux install script keeps the
// models of the "ollama" system user.
const linuxServiceModelsDir = "/usr/share/ollama/.ollama/models"

// InstallPuller pulls a model straight into an Ollama models folder
// (pullRequest.ModelsDir). main wires it so that "install <model>" works.
type InstallPuller func(ctx context.Context, req InstallPullRequest) (PullResult, error)

// InstallPullRequest is "install NAME" as typed.
type InstallPullRequest struct {
	Ref       string
	ModelsDir string
	OutputDir string // its zips and staging folders are searched for blobs; nothing is written there
	Registry  string
}

// ResolveModelsDir picks the Ollama models folder the way Ollama does:
// $OLLAMA_MODELS, else ~/.ollama/models.
func ResolveModelsDir(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if env := os.Getenv("OLLAMA_MODELS"); env != "" {
		return filepath.Abs(env)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the Ollama models folder: %w (use -models-dir)", err)
	}
	return filepath.Join(home, ".ollama", "models"), nil
}

// InstallZip places the models of a zip, a split zip (any part, or the
// zip's name when only the parts exist) or a folder in Ollama's layout
// into modelsDir. A zip is opened once: it is verified and copied from
// those open files, never looked up by name again.
func InstallZip(ctx context.Context, src, modelsDir string, out io.Writer) error {
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		l, err := OpenLayout(src)
		if err != nil {
			return err
		}
		return installLayout(ctx, l, src, modelsDir, out)
	}
	zs, err := openZipSource(src)
	if err != nil {
		return err
	}
	defer zs.Close()
	l, err := OpenLayoutFrom(zs)
	if err != nil {
		return err
	}
	return installLayout(ctx, l, zs.Label(), modelsDir, out)
}

// InstallFromRoot is installZip for a zip of the library: opened through
// root, so no symbolic link leads outside it, and then read only through
// the files opened there (issue 18: checking a path and then opening it
// again by name let a swapped link install a file from elsewhere).
func InstallFromRoot(ctx context.Context, root *os.Root, rel, modelsDir string, out io.Writer) error {
	zs, err := openZipSourceIn(root, rel)
	if err != nil {
		return err
	}
	defer zs.Close()
	l, err := OpenLayoutFrom(zs)
	if err != nil {
		return err
	}
	return installLayout(ctx, l, filepath.ToSlash(rel), modelsDir, out)
}

// installLayout installs what l holds. Nothing is written unless every
// blob matches its digest, every referenced blob is present and no
// different file would be replaced. Blobs are copied into the staging
// folder beside blobs/ and renamed in; manifests last, because Ollama
// lists a model as soon as its manifest exists.
func installLayout(ctx context.Context, l *Layout, zipPath, modelsDir string, out io.Writer) error {
	blobs := l.referencedBlobs()
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	fmt.Fprintf(out, "Verifying %s: %d manifest(s), %d blob(s), %s\n", zipPath, len(l.Manifests), len(blobs), ModelSizeText(total))
	if problems := l.Verify(ctx, nil); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(out, "  problem:", p)
		}
		return fault.WithKind(fault.ErrBadZip, fmt.Errorf("%s has %d problem(s); nothing was installed", zipPath, len(problems)))
	}
	if runtime.GOOS == "windows" {
		for _, m := range l.Manifests {
			if strings.Contains(m.Host, ":") {
				return fmt.Errorf("%s: a folder named %q cannot exist on Windows (the registry host has a port); nothing was installed", m.Ref(), m.Host)
			}
		}
	}

	// Decide everything before writing anything.
	blobDir := filepath.Join(modelsDir, "blobs")
	var write []LayoutBlob
	var conflicts []string
	for _, b := range blobs {
		dest := filepath.Join(blobDir, filepath.Base(b.Name))
		same, err := existingBlobMatches(ctx, dest, b)
		switch {
		case err != nil:
			conflicts = append(conflicts, err.Error())
		case same:
			fmt.Fprintf(out, "  blob %s: already present\n", DigestShort(b.Digest))
		default:
			write = append(write, b)
		}
	}
	var manifests []LayoutManifest
	for _, m := range l.Manifests {
		dest := filepath.Join(modelsDir, filepath.FromSlash(m.Name))
		old, err := os.ReadFile(dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			manifests = append(manifests, m)
		case err != nil:
			conflicts = append(conflicts, fmt.Sprintf("%s: %v", dest, err))
		case bytes.Equal(old, m.Data):
			fmt.Fprintf(out, "  %s: already installed\n", m.ShortRef())
		default:
			conflicts = append(conflicts, fmt.Sprintf("%s exists with different content (another version of %s is installed; remove it first with: ollama rm %s)", dest, m.ShortRef(), m.ShortRef()))
		}
	}
	if len(conflicts) > 0 {
		for _, c := range conflicts {
			fmt.Fprintln(out, "  conflict:", c)
		}
		return fmt.Errorf("installing %s: %w: %d existing file(s) differ; nothing was installed", zipPath, fault.ErrConflict, len(conflicts))
	}

	var written []string
	cleanup := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	if err := os.MkdirAll(filepath.Join(modelsDir, InstallStagingFolder), 0o755); err != nil {
		return fmt.Errorf("creating a staging folder in %s: %w", modelsDir, err)
	}
	stage, err := os.MkdirTemp(filepath.Join(modelsDir, InstallStagingFolder), "install-*")
	if err != nil {
		return fmt.Errorf("creating a staging folder in %s: %w", modelsDir, err)
	}
	defer func() {
		os.RemoveAll(stage)
		os.Remove(filepath.Dir(stage)) // only if no pull uses it
	}()
	if len(write) > 0 {
		if err := os.MkdirAll(blobDir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", blobDir, err)
		}
	}
	for _, b := range write {
		dest := filepath.Join(blobDir, filepath.Base(b.Name))
		if err := installBlob(ctx, l, b, stage, dest); err != nil {
			cleanup()
			return fmt.Errorf("installing %s: %w", b.Name, err)
		}
		written = append(written, dest)
		fmt.Fprintf(out, "  blob %s: written (%s)\n", DigestShort(b.Digest), ModelSizeText(b.Size))
	}
	if len(write) > 0 {
		if err := disk.SyncDir(blobDir); err != nil {
			cleanup()
			return fmt.Errorf("installing blobs: %w", err)
		}
	}
	for _, m := range manifests {
		dest := filepath.Join(modelsDir, filepath.FromSlash(m.Name))
		if _, err := installManifest(stage, dest, m.Data); err != nil {
			return fmt.Errorf("installing manifest of %s: %w", m.Ref(), err)
		}
		fmt.Fprintf(out, "  %s: installed\n", m.ShortRef())
	}

	fmt.Fprintf(out, "Done: %d model(s) in %s\n", len(l.Manifests), modelsDir)
	for _, note := range InstallNotes(modelsDir, runtime.GOOS, l.Manifests) {
		fmt.Fprintln(out, note)
	}
	return nil
}

// existingBlobMatches reports whether dest already holds blob b. A file
// that is there but different is an error: it is never replaced.
func existingBlobMatches(ctx context.Context, dest string, b LayoutBlob) (bool, error) {
	fi, err := os.Stat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", dest, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != b.Size {
		return false, fmt.Errorf("%s exists and is not this blob (size %d, want %d); move it away first", dest, fi.Size(), b.Size)
	}
	sum, err := engine.HashFile(ctx, dest, fi.Size())
	if err != nil {
		return false, err
	}
	if got := registry.DigestAlgoPrefix + sum; got != b.Digest {
		return false, fmt.Errorf("%s exists but is damaged (its content has %s); move it away first", dest, got)
	}
	return true, nil
}

// installBlob copies one blob to dest through a temp file in the staging
// folder (never in blobs/, whose odd names Ollama deletes), checking its
// digest again while copying (a folder's file is read a second time and
// could have changed).
func installBlob(ctx context.Context, l *Layout, b LayoutBlob, stage, dest string) (err error) {
	rc, err := l.Open(b.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(stage, filepath.Base(dest)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), engine.ContextReader(ctx, rc))
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.Digest || n != b.Size {
		return fmt.Errorf("%w: read %d bytes with %s, want %d bytes with %s", fault.ErrChecksumMismatch, n, got, b.Size, b.Digest)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// InstallNotes tells the person what happens next.
func InstallNotes(modelsDir, goos string, manifests []LayoutManifest) []string {
	var notes []string
	if len(manifests) > 0 {
		notes = append(notes, fmt.Sprintf("A running Ollama sees it at once (it reads the models folder on every request): ollama run %s", manifests[0].ShortRef()))
	}
	if goos == "linux" {
		clean := filepath.Clean(modelsDir)
		if clean == linuxServiceModelsDir {
			notes = append(notes, "Ollama runs as the \"ollama\" user here; if it cannot read the new files, run: sudo chown -R ollama:ollama "+linuxServiceModelsDir)
		} else if fi, err := os.Stat(linuxServiceModelsDir); err == nil && fi.IsDir() && os.Getenv("OLLAMA_MODELS") == "" {
			notes = append(notes, "Note: Ollama installed as a Linux service reads "+linuxServiceModelsDir+"; to install there: sudo ollama-model-downloader install -models-dir "+linuxServiceModelsDir+" <file.zip>")
		}
	}
	return notes
}

func DigestShort(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// ModelSizeText is a size for people: 1.5 GB, 12 kB (SI units, as Ollama shows).
func ModelSizeText(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}
