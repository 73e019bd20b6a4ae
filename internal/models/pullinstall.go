package models

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// InstallStagingFolder is where a pull into a models folder keeps what is
// not yet verified, beside blobs/ and manifests/ on the same file system
// (so a verified blob moves into blobs/ by rename). Ollama never looks
// there: it prunes only inside blobs/ (names that are not sha256-<hex>,
// and blobs no manifest references, once older than an hour) and empty
// folders under manifests/. TestInstallStagingSurvivesOllamaServe proves
// it against the stock Ollama.
const InstallStagingFolder = ".ollama-model-downloader"

// installStagingDir is where a pull of name into modelsDir stages blobs.
func installStagingDir(modelsDir string, name registry.Name) string {
	return filepath.Join(modelsDir, InstallStagingFolder, filepath.Base(PullStagingDir("", name)))
}

// RemoveInstallStaging deletes what a pull into modelsDir staged (for
// cancel). Nothing in blobs/ or manifests/ is touched.
func RemoveInstallStaging(modelsDir string, name registry.Name) error {
	if err := os.RemoveAll(installStagingDir(modelsDir, name)); err != nil {
		return fmt.Errorf("removing staging of %s: %w", name.DisplayName(), err)
	}
	_ = os.Remove(filepath.Join(modelsDir, InstallStagingFolder)) // only if empty
	return nil
}

// install pulls the model straight into an Ollama models folder: no zip,
// no second copy. Blobs already in blobs/ with the right digest stay;
// others are taken from disk (a hard link when the copy is on the same
// file system) or fetched, into the staging folder; once every blob is
// verified they are renamed into blobs/, and the manifest is written last,
// by rename, so Ollama never lists half a model. A kill at any moment
// resumes from the staging folder.
func (j *pullJob) install(ctx context.Context) (PullResult, error) {
	modelsDir, err := filepath.Abs(j.req.ModelsDir)
	if err != nil {
		return PullResult{}, fmt.Errorf("models folder %s: %w", j.req.ModelsDir, err)
	}
	if runtime.GOOS == "windows" && strings.Contains(j.name.Host, ":") {
		return PullResult{}, fault.BadInputf("%s: Ollama on Windows cannot have a folder named %q (the registry host has a port); nothing was installed", j.name.DisplayName(), j.name.Host)
	}
	blobDir := filepath.Join(modelsDir, "blobs")
	manifestPath := filepath.Join(modelsDir, "manifests", j.name.Host, j.name.Namespace, j.name.Model, j.name.ManifestFile())
	stage := installStagingDir(modelsDir, j.name)
	var total int64
	for _, b := range j.blobs {
		total += b.Size
	}
	result := PullResult{Path: manifestPath, Size: total, Name: j.name}

	// What is there already: blobs in blobs/ (hashed: a damaged one is
	// replaced) and blobs verified in staging by an earlier run.
	j.prog.phase("verifying")
	present := make([]bool, len(j.blobs))
	staged := make([]bool, len(j.blobs))
	var todo []int
	var missing []registry.Blob
	for i, b := range j.blobs {
		target := filepath.Join(blobDir, b.File())
		if _, err := hashBlobFile(ctx, target, b, nil); err == nil {
			present[i] = true
			j.prog.reuse(i)
			continue
		} else if ctx.Err() != nil {
			return PullResult{}, ctx.Err()
		} else if errors.Is(err, errReusedBlobDiffers) {
			// Named for its digest but not holding it: the verified copy
			// will take its place.
			j.p.log.Warn("a blob in the models folder is damaged; fetching it again", "path", target)
		}
		if _, err := hashBlobFile(ctx, filepath.Join(stage, b.File()), b, nil); err == nil {
			staged[i] = true
			j.prog.set(i, b.Size)
			continue
		}
		todo = append(todo, i)
		missing = append(missing, b)
	}
	if old, err := os.ReadFile(manifestPath); err == nil && bytes.Equal(old, j.raw) && len(todo) == 0 && !slices.Contains(staged, true) {
		j.prog.finish()
		result.Reused = j.prog.reusedBytes()
		return result, nil // installed already
	}

	places := ReusePlacesFor(j.req.OutputDir, j.reuseDirs())
	sources := FindReusableBlobs(ctx, places, missing)
	var need int64
	for _, i := range todo {
		need += j.blobs[i].Size
	}
	if err := disk.CheckFreeSpace(modelsDir, need); err != nil {
		return PullResult{}, fmt.Errorf("installing %s: %w", j.name.DisplayName(), err)
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return PullResult{}, fmt.Errorf("creating staging folder in %s: %w", modelsDir, err)
	}
	j.prog.phase("downloading")
	err = j.eachBlob(ctx, todo, func(ctx context.Context, i int) error {
		b := j.blobs[i]
		dest := filepath.Join(stage, b.File())
		if src, ok := sources[b.Digest]; ok {
			err := stageReusedBlob(ctx, src, dest, b, func(n int64) { j.prog.set(i, n) })
			if err == nil {
				j.prog.reuse(i)
				j.p.log.Debug("blob taken from disk", "digest", b.Digest, "from", src.String())
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			j.p.log.Warn("a copy on disk could not be used; fetching the blob", "digest", b.Digest, "from", src.String(), "err", err)
			j.prog.unreuse(i)
		}
		return disk.FullError(j.fetchToFile(ctx, i, dest), dest)
	})
	if err != nil {
		return PullResult{}, err
	}

	j.prog.phase("installing")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return PullResult{}, fmt.Errorf("creating %s: %w", blobDir, err)
	}
	// Ollama prunes unreferenced blobs an hour old: every blob of this
	// model is made new now, so none can go between here and the manifest.
	now := time.Now()
	for i, b := range j.blobs {
		target := filepath.Join(blobDir, b.File())
		if present[i] {
			_ = os.Chtimes(target, now, now)
			continue
		}
		src := filepath.Join(stage, b.File())
		_ = os.Chtimes(src, now, now)
		if err := os.Rename(src, target); err != nil {
			return PullResult{}, fmt.Errorf("moving %s into %s: %w", b.File(), blobDir, err)
		}
	}
	if err := disk.SyncDir(blobDir); err != nil {
		j.p.log.Warn("syncing the blobs folder", "path", blobDir, "err", err)
	}
	replaced, err := installManifest(stage, manifestPath, j.raw)
	if err != nil {
		return PullResult{}, fmt.Errorf("installing the manifest of %s: %w", j.name.DisplayName(), err)
	}
	if replaced != "" {
		j.p.log.Info("model updated", "model", j.name.DisplayName(), "was", replaced)
	}
	if err := os.RemoveAll(stage); err != nil {
		j.p.log.Warn("removing staging folder", "path", stage, "err", err)
	}
	_ = os.Remove(filepath.Dir(stage)) // only if no other pull uses it
	result.Reused = j.prog.reusedBytes()
	return result, nil
}

// fetchToFile downloads blob i to dest through a region of dest+".data"
// (zipplan.go): the engine keeps its resume state beside dest as usual,
// and the writeback the region starts as bytes arrive leaves little for
// the fsync before the rename.
func (j *pullJob) fetchToFile(ctx context.Context, i int, dest string) error {
	b := j.blobs[i]
	data := dest + ".data"
	space, err := openZipSpace([]string{data}, 0, b.Size, false)
	if err != nil {
		return err
	}
	if _, err := j.fetchBlob(ctx, i, blobTarget{Path: dest, Region: space.Region(zipSlot{Name: b.File(), Size: b.Size})}); err != nil {
		space.Close()
		return err
	}
	if err := space.Finish(); err != nil {
		return err
	}
	return os.Rename(data, dest)
}

// stageReusedBlob puts a copy of blob b found on disk at dest: a hard link
// when src is a plain file on the same file system (no byte copied), else
// a copy; either way its bytes are hashed before it counts.
func stageReusedBlob(ctx context.Context, src blobSource, dest string, b registry.Blob, progress func(int64)) error {
	os.Remove(dest)
	if !src.InZip {
		if err := os.Link(src.Path, dest); err == nil {
			if _, err := hashBlobFile(ctx, dest, b, progress); err != nil {
				os.Remove(dest)
				return err
			}
			return nil
		}
	}
	tmp := dest + ".copy"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = copyReusedBlob(ctx, f, src, progress)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
		return disk.FullError(err, dest)
	}
	return nil
}

// installManifest publishes the manifest: written and synced in the
// staging folder, then renamed into manifests/, so Ollama (which lists
// every file under manifests/) never sees a partial or temporary file. It
// returns the ID of the version it replaced, "" if none.
func installManifest(stage, dest string, raw []byte) (string, error) {
	old, err := os.ReadFile(dest)
	if err == nil && bytes.Equal(old, raw) {
		return "", nil
	}
	replaced := ""
	if err == nil {
		replaced = strings.TrimPrefix(registry.DigestOf(old), registry.DigestAlgoPrefix)[:12]
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tmp := filepath.Join(stage, "manifest")
	if err := disk.WriteFileAtomic(tmp, 0o644, disk.WriteBytes(raw)); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return "", err
	}
	_ = disk.SyncDir(filepath.Dir(dest))
	return replaced, nil
}
