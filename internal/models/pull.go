package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Puller writes models that a registry client fetches into zips
// (pullzip.go) or straight into an Ollama models folder (pullinstall.go),
// taking blobs already on this machine from disk (reuse.go).
type Puller struct {
	reg *registry.Client
	log *slog.Logger
	// ReuseModelsDirs are Ollama models folders whose blobs a pull may
	// take instead of fetching them; nil = the one Ollama uses here
	// ($OLLAMA_MODELS, else ~/.ollama/models), empty = none.
	ReuseModelsDirs []string
	FSType          func(dir string) string // a folder's file system ("vfat" for FAT32…); tests pretend
	Now             func() time.Time        // the clock a zip's entry times come from
}

func NewPuller(reg *registry.Client) *Puller {
	return &Puller{reg: reg, log: reg.Log(), FSType: disk.FileSystemType, Now: time.Now}
}

// Registry is the client the puller fetches through.
func (p *Puller) Registry() *registry.Client { return p.reg }

// DefaultHost is the registry host of names given without one.
func (p *Puller) DefaultHost() string { return p.reg.DefaultHost() }

type PullRequest struct {
	Ref         string              // as typed by the user
	OutputDir   string              // staging lives under OutputDir/.staging/
	Output      string              // zip path; "" = OutputDir/<ZipName>
	KeepStaging bool                // keep the staging folder after zipping
	Retries     int                 // < 0 = default
	Progress    func(PullProgress)  // called often; must be cheap
	Limiter     *engine.RateLimiter // optional speed cap shared by all of this pull's blobs
	ModelsDir   string              // non-empty: install straight into this Ollama models folder, no zip
	Split       int64               // > 0: write the zip as NAME.zip.001, .002… of at most Split bytes
}

type PullProgress struct {
	Phase  string // "resolving", "downloading", "verifying", "packaging"
	Done   int64  // bytes over all blobs
	Total  int64  // -1 until the manifest is known
	Reused int64  // bytes taken from disk instead of the network
	Layers []LayerProgress
}

// LayerProgress is one blob of a model pull as the API shows it.
type LayerProgress struct {
	Type   string `json:"type"` // model, template, license, params, system, projector, adapter, config…
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Done   int64  `json:"done"`
	Reused bool   `json:"reused"`
}

type PullResult struct {
	Path   string // the zip, its first part, or (ModelsDir) the manifest file
	Size   int64
	Name   registry.Name
	Reused int64
	Parts  []string
}

// Pull fetches a model's manifest and blobs and verifies every byte. By
// default the blobs are downloaded straight into the zip (pullzip.go);
// with ModelsDir they are installed into that Ollama models folder
// instead (pullinstall.go). Blobs already on this machine are taken from
// disk (reuse.go). Running it again after a failure, a cancel or a kill
// continues: nothing verified is fetched again.
func (p *Puller) Pull(ctx context.Context, req PullRequest) (PullResult, error) {
	c := p.reg
	name, err := registry.ParseName(strings.TrimSpace(req.Ref), c.DefaultHost())
	if err != nil {
		return PullResult{}, err
	}
	if req.OutputDir == "" && req.ModelsDir == "" {
		return PullResult{}, fault.BadInputf("pulling %s: no output folder given", name.DisplayName())
	}
	if err := CheckSplit("pulling "+name.DisplayName(), req.Split); err != nil {
		return PullResult{}, err
	}
	retries := req.Retries
	if retries < 0 {
		retries = c.Retries()
	}
	prog := &pullCounter{fn: req.Progress, total: -1}
	prog.phase("resolving")

	raw, m, err := c.ResolveManifest(ctx, name, retries)
	if err != nil {
		return PullResult{}, p.explainUnreachable(name, err, req.ModelsDir)
	}
	blobs, err := registry.ManifestBlobs(m)
	if err != nil {
		return PullResult{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	prog.start(blobs)
	job := &pullJob{p: p, name: name, raw: raw, blobs: blobs, req: req, retries: retries, prog: prog}
	if req.ModelsDir != "" {
		return job.install(ctx)
	}
	return job.zip(ctx)
}

// pullJob is one Pull (or one Export) once its manifest is known.
type pullJob struct {
	p       *Puller
	name    registry.Name
	raw     []byte // the manifest as served
	blobs   []registry.Blob
	req     PullRequest
	retries int
	prog    *pullCounter

	// extra are the other models of an export's zip, after name and raw.
	extra []zipManifest
	// local is an export's Ollama models folder: every blob is copied
	// from there, its digest checked on the way, and nothing is fetched.
	local string
}

// zipManifest is one model of a zip: its name and its manifest's bytes.
type zipManifest struct {
	Name registry.Name
	Raw  []byte
}

// zipManifests are the models the job's zip holds.
func (j *pullJob) zipManifests() []zipManifest {
	return append([]zipManifest{{j.name, j.raw}}, j.extra...)
}

// label names the job's models for messages: "qwen2:0.5b", or several
// separated by commas.
func (j *pullJob) label() string {
	names := make([]string, 0, 1+len(j.extra))
	for _, m := range j.zipManifests() {
		names = append(names, m.Name.DisplayName())
	}
	return strings.Join(names, ", ")
}

// doing is what the job does, for messages: "pulling qwen2:0.5b".
func (j *pullJob) doing() string {
	if j.local != "" {
		return "exporting " + j.label()
	}
	return "pulling " + j.label()
}

// reuseDirs are the Ollama models folders a pull takes blobs from: the
// configured ones, else the one Ollama uses here ($OLLAMA_MODELS, else
// ~/.ollama/models); the install target comes first.
func (j *pullJob) reuseDirs() []string { return j.p.modelsDirs(j.req.ModelsDir) }

// modelsDirs are target (when not "") and the Ollama models folders of
// this machine: the configured ones, else the one Ollama uses here.
func (p *Puller) modelsDirs(target string) []string {
	dirs := []string{target}
	if p.ReuseModelsDirs != nil {
		return append(dirs, p.ReuseModelsDirs...)
	}
	if d, err := ResolveModelsDir(""); err == nil {
		dirs = append(dirs, d)
	}
	return dirs
}

// PullStagingDir is unique per model reference and safe as a path: every
// part was validated by ParseName, and the hash keeps apart names
// that differ only in host or namespace.
func PullStagingDir(outputDir string, name registry.Name) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name.String())))
	tag := name.Tag
	if name.Digest != "" {
		tag = registry.DigestFilePrefix + name.DigestHex()[:registry.ZipDigestShortLen]
	}
	return filepath.Join(outputDir, ".staging", name.Model+"-"+tag+"-"+hex.EncodeToString(sum[:6]))
}

// RemovePullStaging deletes a pull's staging folder and the unfinished
// zip it was writing (for cancel).
func RemovePullStaging(outputDir string, name registry.Name) error {
	if err := removeZipStaging(outputDir, PullStagingDir(outputDir, name)); err != nil {
		return fmt.Errorf("removing staging of %s: %w", name.DisplayName(), err)
	}
	return nil
}

// removeZipStaging deletes a zip's staging folder under outputDir and
// the hidden temporary files its resume state names.
func removeZipStaging(outputDir, staging string) error {
	if data, err := os.ReadFile(filepath.Join(staging, zipStateFile)); err == nil {
		var st zipPullState
		if json.Unmarshal(data, &st) == nil {
			for _, p := range st.Temp {
				if strings.HasPrefix(filepath.Base(p), ".") { // only our hidden temporary names
					os.Remove(p)
				}
			}
		}
	}
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(outputDir, ".staging")) // only if empty
	return nil
}

// prepareStaging creates the staging folder and removes what a manifest
// no longer lists (a tag that moved since an interrupted pull), keeping the
// blobs and partial files of the current one.
func prepareStaging(dir string, blobs []registry.Blob) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("creating staging folder: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "manifests")); err != nil {
		return fmt.Errorf("cleaning staging folder: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return fmt.Errorf("reading staging folder: %w", err)
	}
	for _, e := range entries {
		keep := false
		for _, b := range blobs {
			if e.Name() == b.File() || strings.HasPrefix(e.Name(), b.File()+".") {
				keep = true
				break
			}
		}
		if !keep {
			if err := os.RemoveAll(filepath.Join(dir, "blobs", e.Name())); err != nil {
				return fmt.Errorf("cleaning staging folder: %w", err)
			}
		}
	}
	return nil
}

// eachBlob runs fn for the blobs at the given indexes, cfg.Concurrency at
// a time; the first failure stops the others.
func (j *pullJob) eachBlob(ctx context.Context, indexes []int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, j.p.reg.Concurrency())
	errs := make([]error, len(indexes))
	var wg sync.WaitGroup
	for k, i := range indexes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[k] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				errs[k] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the failure that stopped the pull, not the cancels it caused.
	var first error
	for _, err := range errs {
		if err != nil && first == nil {
			first = err
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return first
}

// blobTarget is where fetchBlob puts a blob: a file published at Path, or
// (Region) a zip entry, with Path naming only its resume state.
type blobTarget struct {
	Path   string
	Region engine.PartFile
}

// fetchBlob downloads blob i through the resumable engine. Into a Region
// it returns the CRC-32 of the bytes, computed in the engine's one hashing
// pass (a file the engine finds complete is not read, so the CRC is only
// meaningful for a Region). A
// checksum mismatch (the engine already dropped the bad bytes) is retried
// a bounded number of times: a manifest that lists a wrong size or a
// registry that keeps sending bad bytes must end in a clear error, not a
// loop.
func (j *pullJob) fetchBlob(ctx context.Context, i int, dest blobTarget) (uint32, error) {
	b := j.blobs[i]
	for attempt := 0; ; attempt++ {
		sum := newBlobSum() // fresh per attempt: a resume feeds it the kept bytes
		err := j.p.reg.DownloadBlob(ctx, j.name, b.Digest, engine.Request{
			Path:     dest.Path,
			SHA256:   strings.TrimPrefix(b.Digest, registry.DigestAlgoPrefix),
			Size:     b.Size,
			Retries:  j.retries,
			Limiter:  j.req.Limiter,
			Progress: func(done, _ int64) { j.prog.set(i, done) },
			Region:   dest.Region,
			Hash:     sum,
		})
		if err == nil {
			j.prog.set(i, b.Size)
			return sum.CRC(), nil
		}
		if errors.Is(err, fault.ErrConflict) && attempt == 0 && dest.Region == nil {
			// A file in staging that is not this blob (staging edited by
			// hand): it is ours to replace.
			j.p.log.Warn("replacing a staged blob that fails verification", "digest", b.Digest)
			if rerr := os.Remove(dest.Path); rerr == nil {
				j.prog.set(i, 0)
				continue
			}
		}
		if errors.Is(err, fault.ErrChecksumMismatch) && attempt < j.retries && ctx.Err() == nil {
			j.p.log.Warn("blob failed verification, fetching it again", "digest", b.Digest, "attempt", attempt+1, "err", err)
			j.prog.set(i, 0) // the engine deleted the bad bytes
			continue
		}
		if errors.Is(err, fault.ErrChecksumMismatch) {
			err = fmt.Errorf("%w (after %d attempts; the manifest says %d bytes)", err, attempt+1, b.Size)
		}
		return 0, fmt.Errorf("downloading blob %s of %s: %w", b.Digest, j.label(), err)
	}
}

// modelZipEntries lists the zip's entries in Ollama's layout, each with
// the staging file it comes from and what it must hold:
//
//	blobs/sha256-<hex>                                  (each blob once)
//	manifests/<host>/<namespace>/<model>/<tag or sha256-hex>
//
// The host keeps its port as Ollama does. Windows cannot name a folder
// "host:port", so staging uses "host_port" there; the zip keeps Ollama's.
// A manifest's entry carries its bytes (Data): they go into the zip as
// they are.
func modelZipEntries(dir string, ms []zipManifest, blobs []registry.Blob) []zipEntry {
	entries := []zipEntry{{Name: "blobs/"}}
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b registry.Blob) int { return strings.Compare(a.Digest, b.Digest) })
	for _, b := range sorted {
		entries = append(entries, zipEntry{Name: "blobs/" + b.File(), Path: filepath.Join(dir, "blobs", b.File()),
			Size: b.Size, SHA256: strings.TrimPrefix(b.Digest, registry.DigestAlgoPrefix)})
	}
	entries = append(entries, zipEntry{Name: "manifests/"})
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b zipManifest) int {
		return strings.Compare(manifestEntryName(a.Name), manifestEntryName(b.Name))
	})
	seen := map[string]bool{}
	for _, m := range ms {
		name := m.Name
		zdir := "manifests/"
		for _, part := range []string{name.Host, name.Namespace, name.Model} {
			zdir = path.Join(zdir, part) + "/"
			if !seen[zdir] {
				seen[zdir] = true
				entries = append(entries, zipEntry{Name: zdir})
			}
		}
		stagedHost := name.Host
		if runtime.GOOS == "windows" {
			stagedHost = strings.ReplaceAll(stagedHost, ":", "_")
		}
		sum := sha256.Sum256(m.Raw)
		entries = append(entries, zipEntry{Name: manifestEntryName(name),
			Path: filepath.Join(dir, "manifests", stagedHost, name.Namespace, name.Model, name.ManifestFile()),
			Size: int64(len(m.Raw)), SHA256: hex.EncodeToString(sum[:]), Data: m.Raw})
	}
	return entries
}

// manifestEntryName is a model's manifest in Ollama's layout.
func manifestEntryName(n registry.Name) string {
	return path.Join("manifests", n.Host, n.Namespace, n.Model, n.ManifestFile())
}

// writeStagedManifests checks that every staged blob has its size (the
// engine verified the digests) and writes the manifests byte-for-byte as
// served: Ollama's model ID is their sha256.
func writeStagedManifests(entries []zipEntry) error {
	for _, e := range entries {
		if e.Path == "" || e.Data != nil {
			continue
		}
		fi, err := os.Stat(e.Path)
		if err != nil {
			return fmt.Errorf("checking staged blob: %w", err)
		}
		if fi.Size() != e.Size {
			return fmt.Errorf("staged %s: %w: %d bytes, manifest says %d", e.Name, fault.ErrChecksumMismatch, fi.Size(), e.Size)
		}
	}
	for _, e := range entries {
		if e.Data == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(e.Path), 0o755); err != nil {
			return fmt.Errorf("creating manifest folder: %w", err)
		}
		if err := disk.WriteFileAtomic(e.Path, 0o644, disk.WriteBytes(e.Data)); err != nil {
			return fmt.Errorf("writing manifest: %w", err)
		}
	}
	return nil
}

// pullCounter sums per-blob progress and reports it; blob goroutines call
// set concurrently, so the callback is serialized.
type pullCounter struct {
	fn     func(PullProgress)
	mu     sync.Mutex
	cur    string
	layers []LayerProgress
	total  int64
	reused int64
}

func (p *pullCounter) start(blobs []registry.Blob) {
	p.mu.Lock()
	p.layers = make([]LayerProgress, len(blobs))
	p.total = 0
	for i, b := range blobs {
		p.layers[i] = LayerProgress{Type: registry.LayerType(b.MediaType), Digest: b.Digest, Size: b.Size}
		p.total += b.Size
	}
	p.mu.Unlock()
}

// finish reports every blob as done (a pull that found its work done).
func (p *pullCounter) finish() {
	p.mu.Lock()
	for i := range p.layers {
		p.layers[i].Done = p.layers[i].Size
	}
	p.cur = "verifying"
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) phase(name string) {
	p.mu.Lock()
	p.cur = name
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) set(i int, done int64) {
	p.mu.Lock()
	p.layers[i].Done = done
	p.mu.Unlock()
	p.report()
}

// reuse counts blob i as taken from disk.
func (p *pullCounter) reuse(i int) {
	p.mu.Lock()
	if !p.layers[i].Reused {
		p.layers[i].Reused = true
		p.reused += p.layers[i].Size
	}
	p.layers[i].Done = p.layers[i].Size
	p.mu.Unlock()
	p.report()
}

// unreuse takes back a reuse whose copy turned out not to be the blob.
func (p *pullCounter) unreuse(i int) {
	p.mu.Lock()
	if p.layers[i].Reused {
		p.layers[i].Reused = false
		p.reused -= p.layers[i].Size
	}
	p.layers[i].Done = 0
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) reusedBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reused
}

func (p *pullCounter) report() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var done int64
	for _, l := range p.layers {
		done += l.Done
	}
	p.fn(PullProgress{Phase: p.cur, Done: done, Total: p.total, Reused: p.reused, Layers: slices.Clone(p.layers)})
}
