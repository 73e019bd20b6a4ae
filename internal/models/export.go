package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/units"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ExportRequest is "export NAME…": models of this machine's Ollama into
// one zip, with no network.
type ExportRequest struct {
	Refs      []string            // model names as typed; several go into one zip, each blob once
	ModelsDir string              // the Ollama models folder they are read from
	OutputDir string              // the zip's folder; its resume state lives under OutputDir/.staging/
	Output    string              // the zip's path; "" = OutputDir/<ExportZipName>
	Split     int64               // > 0: NAME.zip.001, .002… of at most Split bytes
	Limiter   *engine.RateLimiter // optional: this export's own speed limit
	Progress  func(PullProgress)  // called often; must be cheap
}

// Export writes models of an Ollama models folder into the zip a pull
// writes (verify, install, serve-models and unzip take it), with no
// network. The zip is planned from the manifests and each blob is copied
// from blobs/ into its place, hashed on the way: a damaged blob is named
// and nothing is published. Each large blob copied is recorded in the
// resume state, as a pull records a fetched one, so that after Ctrl-C or
// a kill the same export copies only what is missing.
func (p *Puller) Export(ctx context.Context, req ExportRequest) (PullResult, error) {
	if len(req.Refs) == 0 {
		return PullResult{}, fault.BadInputf("export: name at least one model")
	}
	if req.OutputDir == "" {
		return PullResult{}, fault.BadInputf("export: no output folder given")
	}
	modelsDir, err := filepath.Abs(req.ModelsDir)
	if err != nil || req.ModelsDir == "" {
		return PullResult{}, fault.BadInputf("export: no Ollama models folder given")
	}
	prog := &pullCounter{fn: req.Progress, total: -1}
	prog.phase("resolving")
	var ms []zipManifest
	var blobs []registry.Blob
	users := map[string][]string{} // digest → the models that use it
	seen := map[string]bool{}
	for _, ref := range req.Refs {
		lm, err := FindLocal(modelsDir, ref)
		if err != nil {
			return PullResult{}, err
		}
		if seen[lm.Path] {
			continue // the same model named twice
		}
		seen[lm.Path] = true
		m, err := registry.DecodeManifest(lm.Manifest.Data)
		if err == nil {
			var bs []registry.Blob
			if bs, err = registry.ManifestBlobs(m); err == nil {
				for _, b := range bs {
					if _, ok := users[b.Digest]; !ok {
						blobs = append(blobs, b)
					}
					users[b.Digest] = append(users[b.Digest], lm.Name.DisplayName())
				}
			}
		}
		if err != nil {
			return PullResult{}, fmt.Errorf("reading the manifest of %s in %s: %w", lm.Name.DisplayName(), modelsDir, err)
		}
		ms = append(ms, zipManifest{Name: lm.Name, Raw: lm.Manifest.Data})
	}
	j := &pullJob{
		p: p, name: ms[0].Name, raw: ms[0].Raw, extra: ms[1:], blobs: blobs, prog: prog, local: modelsDir,
		req: PullRequest{OutputDir: req.OutputDir, Output: req.Output, Split: req.Split, Limiter: req.Limiter, Progress: req.Progress},
	}
	if err := CheckSplit(j.label(), req.Split); err != nil {
		return PullResult{}, err
	}
	// Every blob must be there, whole, before anything is written.
	if _, err := j.localBlobs(blobs); err != nil {
		return PullResult{}, err
	}
	prog.start(blobs)
	return j.zip(ctx)
}

// CheckSplit refuses a -split too small to be meant (label says for what).
func CheckSplit(label string, split int64) error {
	if split < 0 || split > 0 && split < minSplitSize {
		return fault.BadInputf("%s: -split must be at least %s, got %d bytes", label, units.Decimal(minSplitSize), split)
	}
	return nil
}

// localBlobs finds each blob in the export's models folder, with the size
// its manifest says. One that is missing or of another size is an error
// naming it and the models that need it: the model is incomplete there.
func (j *pullJob) localBlobs(blobs []registry.Blob) (map[string]blobSource, error) {
	found := make(map[string]blobSource, len(blobs))
	for _, b := range blobs {
		p := filepath.Join(j.local, "blobs", b.File())
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fault.WithKind(fs.ErrNotExist, fmt.Errorf("%s is incomplete in %s: its blob %s is missing (run 'ollama pull %s' on this machine to mend it); nothing was exported",
				j.usersOf(b.Digest), j.local, b.File(), j.usersOf(b.Digest)))
		case err != nil:
			return nil, localReadError(j.local, err)
		case !fi.Mode().IsRegular() || fi.Size() != b.Size:
			return nil, fault.WithKind(fault.ErrChecksumMismatch, fmt.Errorf("%s: blob %s in %s has %d bytes, its manifest says %d (damaged; run 'ollama pull %s' to mend it); nothing was exported",
				j.usersOf(b.Digest), b.File(), filepath.Join(j.local, "blobs"), fi.Size(), b.Size, j.usersOf(b.Digest)))
		}
		found[b.Digest] = blobSource{Digest: b.Digest, Size: b.Size, Path: p}
	}
	return found, nil
}

// localBlobError explains a blob of the models folder that could not be
// copied: damaged (its bytes are not its digest), unreadable, or the zip
// could not be written.
func (j *pullJob) localBlobError(b registry.Blob, err error, zipTemp string) error {
	if errors.Is(err, errReusedBlobDiffers) {
		return fault.WithKind(fault.ErrChecksumMismatch, fmt.Errorf("%s: blob %s in %s is damaged (its content does not have its digest); nothing was exported: run 'ollama pull %s' on this machine to mend it",
			j.usersOf(b.Digest), b.File(), filepath.Join(j.local, "blobs"), j.usersOf(b.Digest)))
	}
	return disk.FullError(fmt.Errorf("exporting blob %s of %s: %w", b.File(), j.usersOf(b.Digest), err), zipTemp)
}

// usersOf names the models of the job that use a blob.
func (j *pullJob) usersOf(digest string) string {
	var names []string
	for _, m := range j.zipManifests() {
		if strings.Contains(string(m.Raw), digest) {
			names = append(names, m.Name.DisplayName())
		}
	}
	if len(names) == 0 {
		return j.label()
	}
	return strings.Join(names, ", ")
}

// zipName is the zip's default name in the output folder.
func (j *pullJob) zipName() string {
	if j.local == "" {
		return j.name.ZipName()
	}
	names := []registry.Name{j.name}
	for _, m := range j.extra {
		names = append(names, m.Name)
	}
	return ExportZipName(names)
}

// ExportZipName is the zip an export writes by default:
// "<model>-<tag>.zip" as a pull names it, or for several models
// "<first model>-<tag>-and-<n>-more.zip".
func ExportZipName(names []registry.Name) string {
	if len(names) == 1 {
		return names[0].ZipName()
	}
	return strings.TrimSuffix(names[0].ZipName(), ".zip") + fmt.Sprintf("-and-%d-more.zip", len(names)-1)
}

// stagingDir is where the job keeps its resume state.
func (j *pullJob) stagingDir() string {
	if j.local == "" {
		return PullStagingDir(j.req.OutputDir, j.name)
	}
	names := []registry.Name{j.name}
	for _, m := range j.extra {
		names = append(names, m.Name)
	}
	return ExportStagingDir(j.req.OutputDir, names, j.local)
}

// ExportStagingDir is an export's resume state folder: one per set of
// names (in any order and case) and models folder.
func ExportStagingDir(outputDir string, names []registry.Name, modelsDir string) string {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = strings.ToLower(n.String())
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n") + "\x00" + filepath.Clean(modelsDir)))
	return filepath.Join(outputDir, ".staging", "export-"+names[0].Model+"-"+hex.EncodeToString(sum[:6]))
}

// RemoveExportStaging deletes an export's resume state and its unfinished
// zip (for cancel). The models folder is never touched.
func RemoveExportStaging(outputDir string, names []registry.Name, modelsDir string) error {
	if len(names) == 0 {
		return nil
	}
	if err := removeZipStaging(outputDir, ExportStagingDir(outputDir, names, modelsDir)); err != nil {
		return fmt.Errorf("removing the export state of %s: %w", names[0].DisplayName(), err)
	}
	return nil
}

// stateKey ties the resume state to the manifests: a tag that moved, or
// another set of models, starts afresh.
func (j *pullJob) stateKey() string {
	if len(j.extra) == 0 {
		return registry.DigestOf(j.raw)
	}
	var digests []string
	for _, m := range j.zipManifests() {
		digests = append(digests, registry.DigestOf(m.Raw))
	}
	slices.Sort(digests)
	return registry.DigestOf([]byte(strings.Join(digests, "\n")))
}

// explainUnreachable turns a registry that cannot be reached into one
// line that says so and, when this machine's Ollama has the model, that
// export takes it from there (issue 23: a pull with the network gone
// printed Go's dial text and nothing more). Other errors pass unchanged.
func (p *Puller) explainUnreachable(name registry.Name, err error, installTarget string) error {
	var cause string
	var op *net.OpError
	switch {
	case fault.Code(err) == "dns":
		cause = "its name does not resolve (no network, or no DNS server answers)"
	case fault.Code(err) == "refused":
		cause = "the connection was refused"
	case !errors.As(err, &op) || op.Op != "dial":
		return err // it answered, or failed in another way: say that
	case fault.IsTimeout(err):
		cause = "the connection timed out"
	default:
		cause = "no connection could be made (" + op.Err.Error() + ")"
	}
	p.log.Debug("registry unreachable", "model", name.String(), "err", err)
	msg := fmt.Sprintf("cannot reach the registry %s: %s", name.Host, cause)
	for i, dir := range p.modelsDirs(installTarget) {
		if dir == "" {
			continue
		}
		lm, ferr := FindLocal(dir, name.String())
		if ferr != nil {
			continue
		}
		if i == 0 {
			msg += fmt.Sprintf("; %s already has it (ID %s)", dir, manifestID(lm.Manifest.Digest))
		} else {
			msg += fmt.Sprintf("; it is in this machine's Ollama (%s, ID %s): 'ollama-model-downloader export %s' takes it from here", dir, manifestID(lm.Manifest.Digest), name.DisplayName())
		}
		break
	}
	return fault.WithKind(err, errors.New(msg))
}
