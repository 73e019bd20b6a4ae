package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

const installUsage = `Usage: ollama-model-downloader install [-models-dir DIR] <file.zip | file.zip.001 | folder | model>...

Puts the models of a zip made by this tool (one zip, or the first part of a
split set), or of a folder in Ollama's layout (an extracted zip, a kept
staging folder), into the Ollama models folder. Every blob's SHA-256 and
every manifest reference is checked before anything is written; an existing
different file is never replaced; manifests are written last, so Ollama
never sees half a model.

A model name is pulled straight into the models folder: no zip, no second
copy. Blobs already on this machine (the models folder, $OLLAMA_MODELS, the
zips and staging folders of -output-dir) are taken from disk, their digests
checked. Interrupted, the same command continues where it stopped. A running
Ollama sees the model at once.

The models folder is -models-dir, else $OLLAMA_MODELS, else ~/.ollama/models.

Examples:
  ollama-model-downloader install llama3.2:1b
  ollama-model-downloader install downloaded-models/llama3.2-latest.zip
  ollama-model-downloader install /media/usb/qwen3-8b.zip.001
  ollama-model-downloader install -models-dir /data/ollama/models qwen3-8b.zip
  sudo ollama-model-downloader install -models-dir /usr/share/ollama/.ollama/models llama3.2-latest.zip

Flags:
`

// linuxServiceModelsDir is where Ollama's Linux install script keeps the
// models of the "ollama" system user.
const linuxServiceModelsDir = "/usr/share/ollama/.ollama/models"

// installPuller pulls a model straight into an Ollama models folder
// (pullRequest.ModelsDir). main wires it so that "install <model>" works.
type installPuller func(ctx context.Context, req installPullRequest) (pullResult, error)

// installPullRequest is "install NAME" as typed.
type installPullRequest struct {
	Ref       string
	ModelsDir string
	OutputDir string // its zips and staging folders are searched for blobs; nothing is written there
	Registry  string
}

// runInstallCommand is "ollama-model-downloader install" for zips and
// folders. It returns the exit code: 0 installed, 1 failed, 2 bad usage.
func runInstallCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runInstallCommandWith(ctx, args, stdout, stderr, nil)
}

// runInstallCommandWith is runInstallCommand where an argument that is not
// a file or folder (and does not end in .zip) is a model reference, pulled
// with pull first. A nil pull makes that a usage error.
func runInstallCommandWith(ctx context.Context, args []string, stdout, stderr io.Writer, pull installPuller) int {
	fset := flag.NewFlagSet("install", flag.ContinueOnError)
	modelsDir := fset.String("models-dir", "", "Ollama models `folder` (default $OLLAMA_MODELS, else ~/.ollama/models)")
	outputDir := fset.String("output-dir", "downloaded-models", "`folder` whose zips and staging folders may already hold blobs of a named model")
	registryURL := fset.String("registry", "https://registry.ollama.ai", "registry a named model is pulled from")
	paths, code, ok := subcommandArgs(fset, args, installUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "install: name a zip, a folder or a model to install (-h for help)")
		return 2
	}
	dir, err := resolveModelsDir(*modelsDir)
	if err != nil {
		fmt.Fprintln(stderr, "install:", err)
		return 2
	}
	for _, p := range paths {
		if _, statErr := os.Stat(p); statErr != nil && !strings.HasSuffix(strings.ToLower(p), ".zip") {
			if pull == nil {
				fmt.Fprintf(stderr, "install: %s is not a zip or a folder here\n", p)
				return 2
			}
			fmt.Fprintf(stdout, "Pulling %s into %s\n", p, dir)
			res, err := pull(ctx, installPullRequest{Ref: p, ModelsDir: dir, OutputDir: *outputDir, Registry: *registryURL})
			var stopped signalError
			switch {
			case errors.As(err, &stopped):
				fmt.Fprintf(stderr, "install: stopped: %s (run the same command again to resume)\n", p)
				return exitCode(err)
			case err != nil:
				fmt.Fprintln(stderr, "install:", err)
				if errors.Is(err, errBadInput) {
					return 2
				}
				return 1
			}
			fmt.Fprintln(stdout, installedLine(res))
			for _, note := range installNotes(dir, runtime.GOOS, []layoutManifest{{Host: res.Name.Host, Namespace: res.Name.Namespace, Model: res.Name.Model, Tag: res.Name.Tag}}) {
				fmt.Fprintln(stdout, note)
			}
			continue
		}
		if err := installZip(ctx, p, dir, stdout); err != nil {
			fmt.Fprintln(stderr, "install:", err)
			return 1
		}
	}
	return 0
}

// installedLine is the CLI's last word on "install NAME": what, its ID as
// `ollama list` shows it, its size, and what came from disk.
func installedLine(res pullResult) string {
	id := ""
	if raw, err := os.ReadFile(res.Path); err == nil {
		id = " " + strings.TrimPrefix(digestOfBytes(raw), digestAlgoPrefix)[:12]
	}
	line := fmt.Sprintf("Installed %s (ID%s, %s)", layoutManifest{Host: res.Name.Host, Namespace: res.Name.Namespace, Model: res.Name.Model, Tag: res.Name.Tag}.ShortRef(), id, modelSizeText(res.Size))
	if res.Reused > 0 {
		line += fmt.Sprintf("; reused %s from disk", modelSizeText(res.Reused))
	}
	return line
}

// resolveModelsDir picks the Ollama models folder the way Ollama does:
// $OLLAMA_MODELS, else ~/.ollama/models.
func resolveModelsDir(flagValue string) (string, error) {
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

// installZip places the models of a zip, a split zip (any part, or the
// zip's name when only the parts exist) or a folder in Ollama's layout
// into modelsDir. A zip is opened once: it is verified and copied from
// those open files, never looked up by name again.
func installZip(ctx context.Context, src, modelsDir string, out io.Writer) error {
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		l, err := openModelLayout(src)
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
	l, err := openModelLayoutFrom(zs)
	if err != nil {
		return err
	}
	return installLayout(ctx, l, zs.Label(), modelsDir, out)
}

// installFromRoot is installZip for a zip of the library: opened through
// root, so no symbolic link leads outside it, and then read only through
// the files opened there (issue 18: checking a path and then opening it
// again by name let a swapped link install a file from elsewhere).
func installFromRoot(ctx context.Context, root *os.Root, rel, modelsDir string, out io.Writer) error {
	zs, err := openZipSourceIn(root, rel)
	if err != nil {
		return err
	}
	defer zs.Close()
	l, err := openModelLayoutFrom(zs)
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
func installLayout(ctx context.Context, l *modelLayout, zipPath, modelsDir string, out io.Writer) error {
	blobs := l.referencedBlobs()
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	fmt.Fprintf(out, "Verifying %s: %d manifest(s), %d blob(s), %s\n", zipPath, len(l.Manifests), len(blobs), modelSizeText(total))
	if problems := l.Verify(ctx, nil); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(out, "  problem:", p)
		}
		return withKind(errBadZip, fmt.Errorf("%s has %d problem(s); nothing was installed", zipPath, len(problems)))
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
	var write []layoutBlob
	var conflicts []string
	for _, b := range blobs {
		dest := filepath.Join(blobDir, filepath.Base(b.Name))
		same, err := existingBlobMatches(ctx, dest, b)
		switch {
		case err != nil:
			conflicts = append(conflicts, err.Error())
		case same:
			fmt.Fprintf(out, "  blob %s: already present\n", digestShort(b.Digest))
		default:
			write = append(write, b)
		}
	}
	var manifests []layoutManifest
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
		return fmt.Errorf("installing %s: %w: %d existing file(s) differ; nothing was installed", zipPath, errConflict, len(conflicts))
	}

	var written []string
	cleanup := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	if err := os.MkdirAll(filepath.Join(modelsDir, installStagingFolder), 0o755); err != nil {
		return fmt.Errorf("creating a staging folder in %s: %w", modelsDir, err)
	}
	stage, err := os.MkdirTemp(filepath.Join(modelsDir, installStagingFolder), "install-*")
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
		fmt.Fprintf(out, "  blob %s: written (%s)\n", digestShort(b.Digest), modelSizeText(b.Size))
	}
	if len(write) > 0 {
		if err := syncFolder(blobDir); err != nil {
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
	for _, note := range installNotes(modelsDir, runtime.GOOS, l.Manifests) {
		fmt.Fprintln(out, note)
	}
	return nil
}

// existingBlobMatches reports whether dest already holds blob b. A file
// that is there but different is an error: it is never replaced.
func existingBlobMatches(ctx context.Context, dest string, b layoutBlob) (bool, error) {
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
	sum, err := hashFile(ctx, dest, fi.Size())
	if err != nil {
		return false, err
	}
	if got := digestAlgoPrefix + sum; got != b.Digest {
		return false, fmt.Errorf("%s exists but is damaged (its content has %s); move it away first", dest, got)
	}
	return true, nil
}

// installBlob copies one blob to dest through a temp file in the staging
// folder (never in blobs/, whose odd names Ollama deletes), checking its
// digest again while copying (a folder's file is read a second time and
// could have changed).
func installBlob(ctx context.Context, l *modelLayout, b layoutBlob, stage, dest string) (err error) {
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
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, rc})
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.Digest || n != b.Size {
		return fmt.Errorf("%w: read %d bytes with %s, want %d bytes with %s", errChecksumMismatch, n, got, b.Size, b.Digest)
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

// installNotes tells the person what happens next.
func installNotes(modelsDir, goos string, manifests []layoutManifest) []string {
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

func digestShort(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// modelSizeText is a size for people: 1.5 GB, 12 kB (SI units, as Ollama shows).
func modelSizeText(n int64) string {
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
