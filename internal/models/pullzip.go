package models

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/units"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	// minSplitSize is the smallest -split: smaller parts would be
	// thousands of files for any model.
	minSplitSize = 1 << 20
	// fat32MaxFile is the largest file FAT32 holds: 4 GiB − 1.
	fat32MaxFile = 1<<32 - 1
	// zipStateFile is a zip pull's resume state in its staging folder.
	zipStateFile = "zip.json"
	// smallBlobBytes is the size up to which a blob is staged as a file
	// and copied into the zip rather than recorded in the resume state.
	smallBlobBytes = 1 << 20
)

// zipPullState is what a zip pull keeps in its staging folder to resume
// after a kill: what the layout was made from (so a resumed layout is
// byte for byte the same), the temporary files, and each blob already
// verified inside the zip with its CRC-32.
type zipPullState struct {
	Manifest string            `json:"manifest"` // sha256 of the manifest bytes
	Output   string            `json:"output"`   // the zip asked for
	Split    int64             `json:"split"`
	Modified time.Time         `json:"modified"`
	Temp     []string          `json:"temp"`
	Done     map[string]uint32 `json:"done"` // digest → CRC-32
}

// PartSize is the size of each part for -split SIZE. "-split 4G" is
// what people type for FAT32, whose files stop one byte short of 4 GiB:
// exactly 4 GiB means parts of 4 GiB − 1.
func PartSize(split int64) int64 {
	if split == 4<<30 {
		return fat32MaxFile
	}
	return split
}

// zip pulls the model into a zip without a staging copy: the zip's
// layout is known from the manifest, so every blob is downloaded (or
// copied from disk) straight into its entry, the CRC-32 computed in the
// same pass as the SHA-256; the headers are written last and the zip is
// published by rename. Peak disk use is the zip itself.
func (j *pullJob) zip(ctx context.Context) (PullResult, error) {
	req := j.req
	out := req.Output
	if out == "" {
		out = filepath.Join(req.OutputDir, j.zipName())
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return PullResult{}, fmt.Errorf("zip path %s: %w", req.Output, err)
	}
	dir := filepath.Dir(out)
	split := PartSize(req.Split)
	staging := j.stagingDir()
	entries := modelZipEntries(staging, j.zipManifests(), j.blobs)
	probe, err := planZip(zipSlots(entries), j.p.Now())
	if err != nil {
		return PullResult{}, fmt.Errorf("planning the zip of %s: %w", j.label(), err)
	}
	if err := j.checkFAT(dir, probe.Size, split); err != nil {
		return PullResult{}, err
	}
	if res, ok := j.zipAlreadyThere(ctx, out, split, entries); ok {
		if !req.KeepStaging { // a run killed after publishing left its state
			_ = removeZipStaging(req.OutputDir, staging)
		}
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return PullResult{}, fmt.Errorf("creating folder for %s: %w", out, err)
	}
	if req.KeepStaging {
		// A staging folder in Ollama's layout was asked for: fetch there,
		// then fill the zip from it as from any blob on disk.
		if err := j.fetchToStaging(ctx, staging, entries); err != nil {
			return PullResult{}, err
		}
	}

	st, fresh, err := j.loadZipState(staging, out, split)
	if err != nil {
		return PullResult{}, err
	}
	layout, err := planZip(zipSlots(entries), st.Modified)
	if err != nil {
		return PullResult{}, err
	}
	n := splitPartCount(layout.Size, split)
	temps := zipTempPaths(out, n, split > 0)
	if !fresh && !sameStrings(st.Temp, temps) {
		fresh = true
	}
	if fresh {
		j.dropZipState(staging, st)
		st = zipPullState{Manifest: j.stateKey(), Output: out, Split: split, Modified: layout.Modified, Temp: temps, Done: map[string]uint32{}}
		if err := j.saveZipState(staging, st); err != nil {
			return PullResult{}, err
		}
	}
	var have int64
	for _, b := range j.blobs {
		if _, ok := st.Done[b.Digest]; ok {
			have += b.Size
		}
	}
	if err := disk.CheckFreeSpace(dir, layout.Size-have); err != nil {
		return PullResult{}, fmt.Errorf("%s: %w", j.doing(), err)
	}
	space, err := openZipSpace(temps, split, layout.Size, fresh)
	if err != nil {
		return PullResult{}, err
	}
	defer space.Close()
	// The manifests are known already: their bytes go in now.
	for i, e := range entries {
		if e.Data == nil {
			continue
		}
		if _, err := space.WriteAt(e.Data, layout.Entries[i].Data); err != nil {
			return PullResult{}, disk.FullError(fmt.Errorf("writing %s: %w", temps[0], err), temps[0])
		}
	}

	small := map[string]uint32{} // CRC-32 of the small blobs, not recorded in st
	if err := j.fillZip(ctx, staging, out, temps, layout, space, &st, small); err != nil {
		return PullResult{}, err
	}

	j.prog.phase("verifying")
	for i := range layout.Entries {
		s := &layout.Entries[i]
		switch {
		case s.dir():
		case entries[i].Data != nil:
			s.CRC = crc32.ChecksumIEEE(entries[i].Data)
		default:
			digest := registry.DigestAlgoPrefix + strings.TrimPrefix(s.Name, "blobs/"+registry.DigestFilePrefix)
			crc, ok := st.Done[digest]
			if !ok {
				crc = small[digest]
			}
			s.CRC = crc
		}
	}
	j.prog.phase("packaging")
	if err := layout.WriteHeaders(space); err != nil {
		return PullResult{}, disk.FullError(err, temps[0])
	}
	if err := checkWrittenZip(space, layout); err != nil {
		return PullResult{}, fmt.Errorf("checking the zip of %s: %w", j.label(), err)
	}
	if err := space.Finish(); err != nil {
		return PullResult{}, disk.FullError(err, temps[0])
	}
	final, parts, err := publishModelZip(temps, out, split > 0, j.p.syncDir)
	if err != nil {
		return PullResult{}, err
	}
	if !req.KeepStaging {
		if err := removeZipStaging(req.OutputDir, staging); err != nil {
			j.p.log.Warn("removing staging folder", "path", staging, "err", err)
		}
	} else {
		_ = os.RemoveAll(filepath.Join(staging, "zip"))
		_ = os.RemoveAll(filepath.Join(staging, "small"))
		_ = os.Remove(filepath.Join(staging, zipStateFile))
	}
	j.p.log.Debug("model zip written", "models", j.label(), "zip", final, "bytes", layout.Size, "reused", j.prog.reusedBytes())
	return PullResult{Path: final, Size: layout.Size, Name: j.name, Reused: j.prog.reusedBytes(), Parts: parts, ModelSize: j.modelSize()}, nil
}

// fillZip puts every blob not yet in the zip into its entry: from a copy
// on disk when there is one whose bytes hash right, else from the network.
func (j *pullJob) fillZip(ctx context.Context, staging, out string, temps []string, layout *zipLayout, space *zipSpace, st *zipPullState, small map[string]uint32) error {
	var todo []int
	var missing []registry.Blob
	for i, b := range j.blobs {
		if _, ok := st.Done[b.Digest]; ok {
			j.prog.set(i, b.Size)
			continue
		}
		todo = append(todo, i)
		missing = append(missing, b)
	}
	var sources map[string]blobSource
	if j.local != "" {
		var err error
		if sources, err = j.localBlobs(missing); err != nil {
			return err
		}
	} else {
		places := ReusePlacesFor(j.req.OutputDir, j.reuseDirs())
		places.SkipPath = append([]string{out, splitPartName(out, 1)}, temps...)
		sources = FindReusableBlobs(ctx, places, missing)
	}

	var mu sync.Mutex // st, its file and small
	record := func(digest string, crc uint32) error {
		mu.Lock()
		st.Done[digest] = crc
		err := j.saveZipState(staging, *st)
		mu.Unlock()
		j.prog.report() // the blob is durable in the zip now
		return err
	}
	// Small blobs (config, template, params…) are not recorded: that would
	// fsync the whole zip for a few KiB each. They are staged as files and
	// copied in; the zip is synced once at the end, and a rerun copies them
	// again from staging.
	remember := func(digest string, crc uint32) {
		mu.Lock()
		small[digest] = crc
		mu.Unlock()
		j.prog.report()
	}
	if j.local != "" {
		j.prog.phase("copying")
	} else {
		j.prog.phase("downloading")
	}
	return j.eachBlob(ctx, todo, func(ctx context.Context, i int) error {
		b := j.blobs[i]
		slot, ok := layout.Slot("blobs/" + b.File())
		if !ok {
			return fmt.Errorf("zip layout has no entry for %s", b.Digest)
		}
		if src, ok := sources[b.Digest]; ok {
			region := space.Region(*slot)
			var w io.Writer = region
			if j.local != "" {
				w = j.req.Limiter.Writer(ctx, region) // an export's own speed limit
			}
			crc, err := copyReusedBlob(ctx, w, src, func(n int64) { j.prog.set(i, n) })
			if err == nil && b.Size > smallBlobBytes {
				err = region.Sync() // recorded as in the zip: it must be on disk
			}
			if err == nil {
				if j.local == "" {
					j.prog.reuse(i)
				}
				j.prog.set(i, b.Size)
				j.p.log.Debug("blob taken from disk", "digest", b.Digest, "from", src.String())
				if b.Size <= smallBlobBytes {
					remember(b.Digest, crc)
					return nil
				}
				return record(b.Digest, crc)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if j.local != "" {
				return j.localBlobError(b, err, temps[0])
			}
			j.p.log.Warn("a copy on disk could not be used; fetching the blob", "digest", b.Digest, "from", src.String(), "err", err)
			j.prog.unreuse(i)
		}
		if b.Size <= smallBlobBytes {
			file := filepath.Join(staging, "small", b.File())
			if _, err := j.fetchBlob(ctx, i, blobTarget{Path: file}); err != nil {
				return disk.FullError(err, file)
			}
			crc, err := copyReusedBlob(ctx, space.Region(*slot), blobSource{Digest: b.Digest, Size: b.Size, Path: file}, nil)
			if err != nil {
				return disk.FullError(err, temps[0])
			}
			remember(b.Digest, crc)
			return nil
		}
		crc, err := j.fetchBlob(ctx, i, blobTarget{Path: filepath.Join(staging, "zip", b.File()), Region: space.Region(*slot)})
		if err != nil {
			return disk.FullError(err, temps[0])
		}
		return record(b.Digest, crc)
	})
}

// fetchToStaging is -keep-staging: every blob as a file in the staging
// folder, with the manifest, as Ollama lays them out.
func (j *pullJob) fetchToStaging(ctx context.Context, staging string, entries []zipEntry) error {
	if err := prepareStaging(staging, j.blobs); err != nil {
		return err
	}
	j.prog.phase("downloading")
	all := make([]int, len(j.blobs))
	for i := range all {
		all[i] = i
	}
	err := j.eachBlob(ctx, all, func(ctx context.Context, i int) error {
		_, err := j.fetchBlob(ctx, i, blobTarget{Path: filepath.Join(staging, "blobs", j.blobs[i].File())})
		return err
	})
	if err != nil {
		return err
	}
	return writeStagedManifests(entries)
}

// zipAlreadyThere reports a rerun after success: the zip (or split set)
// at out already holds this very manifest and every blob, verified.
func (j *pullJob) zipAlreadyThere(ctx context.Context, out string, split int64, entries []zipEntry) (PullResult, bool) {
	first := out
	if split > 0 {
		first = splitPartName(out, 1)
	}
	if fi, err := os.Stat(first); err != nil || !fi.Mode().IsRegular() {
		return PullResult{}, false
	}
	j.prog.phase("verifying")
	zs, err := openZipSource(first)
	if err != nil {
		return PullResult{}, false
	}
	defer zs.Close()
	if split > 0 && (len(zs.Parts) != splitPartCount(zs.Size(), split) || zs.ends[0] != min(split, zs.Size())) {
		return PullResult{}, false // split otherwise: fetched again beside it
	}
	if !zipSourceHolds(ctx, zs, entries) {
		return PullResult{}, false
	}
	j.prog.finish()
	j.p.log.Debug("model zip already there", "models", j.label(), "zip", first)
	return PullResult{Path: first, Size: zs.Size(), Name: j.name, Parts: zs.Parts, ModelSize: j.modelSize()}, true
}

// checkFAT refuses, before anything is fetched, a zip (or a part) that a
// FAT32 output folder cannot hold.
func (j *pullJob) checkFAT(dir string, size, split int64) error {
	fsType := j.p.FSType
	if fsType == nil {
		fsType = disk.FileSystemType
	}
	if fsType(dir) != "vfat" {
		return nil
	}
	largest := size
	if split > 0 {
		largest = min(size, split)
	}
	if largest <= fat32MaxFile {
		return nil
	}
	what := fmt.Sprintf("the zip of %s would be %s", j.label(), units.Decimal(size))
	if split > 0 {
		what = fmt.Sprintf("-split %s makes parts over 4 GiB", units.Decimal(split))
	}
	return fault.BadInputf("%s is on FAT32, whose files stop at 4 GiB, and %s: use -split 4G (writes %s.001, .002…, which 7-Zip or cat joins)",
		dir, what, j.zipName())
}

// loadZipState reads the resume state, and says whether the pull must
// start afresh: no state, or one made for another manifest, output or
// split (a tag that moved, another -o).
func (j *pullJob) loadZipState(staging, out string, split int64) (zipPullState, bool, error) {
	var st zipPullState
	data, err := os.ReadFile(filepath.Join(staging, zipStateFile))
	if err != nil || json.Unmarshal(data, &st) != nil || st.Done == nil {
		return zipPullState{Modified: j.p.Now()}, true, nil
	}
	if st.Manifest != j.stateKey() || st.Output != out || st.Split != split || st.Modified.IsZero() {
		return zipPullState{Modified: j.p.Now(), Temp: st.Temp}, true, nil
	}
	for _, p := range st.Temp {
		if _, err := os.Stat(p); err != nil {
			return zipPullState{Modified: j.p.Now(), Temp: st.Temp}, true, nil
		}
	}
	return st, false, nil
}

// dropZipState forgets an earlier zip pull's progress: its temporary
// files (hidden names beside the zip it was for) and its resume records.
func (j *pullJob) dropZipState(staging string, old zipPullState) {
	for _, p := range old.Temp {
		if strings.HasPrefix(filepath.Base(p), ".") {
			os.Remove(p)
		}
	}
	os.RemoveAll(filepath.Join(staging, "zip"))
	os.RemoveAll(filepath.Join(staging, "small"))
	os.Remove(filepath.Join(staging, zipStateFile))
}

func (j *pullJob) saveZipState(staging string, st zipPullState) error {
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("creating staging folder: %w", err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return disk.WriteFileAtomic(filepath.Join(staging, zipStateFile), 0o644, disk.WriteBytes(data))
}

// zipSlots turns the model's entries into a layout's slots.
func zipSlots(entries []zipEntry) []zipSlot {
	slots := make([]zipSlot, len(entries))
	for i, e := range entries {
		slots[i] = zipSlot{Name: e.Name, Size: e.Size}
	}
	return slots
}

// zipTempPaths are the hidden temporary names beside the zip: one, or one
// per part.
func zipTempPaths(out string, parts int, split bool) []string {
	dir, base := filepath.Dir(out), filepath.Base(out)
	if !split {
		return []string{filepath.Join(dir, "."+base+".tmp")}
	}
	paths := make([]string, parts)
	for i := range paths {
		paths[i] = filepath.Join(dir, "."+filepath.Base(splitPartName(base, i+1))+".tmp")
	}
	return paths
}

// checkWrittenZip reads the finished zip's directory back through
// archive/zip and compares it with the layout: the format is this file's
// own, so the standard reader is the judge.
func checkWrittenZip(r io.ReaderAt, l *zipLayout) error {
	zr, err := zip.NewReader(r, l.Size)
	if err != nil {
		return err
	}
	if len(zr.File) != len(l.Entries) {
		return fmt.Errorf("%d entries read back, %d written", len(zr.File), len(l.Entries))
	}
	for i, f := range zr.File {
		s := l.Entries[i]
		off, err := f.DataOffset()
		if err != nil || f.Name != s.Name || f.CRC32 != s.CRC || f.UncompressedSize64 != uint64(s.Size) || f.Mode() != s.mode() || !s.dir() && off != s.Data {
			return fmt.Errorf("entry %s does not read back as written", s.Name)
		}
	}
	return nil
}

// publishModelZip renames the finished temporary files into place. One
// zip goes through publishZip (never over a different file: "name
// (1).zip"). A split set's parts are published last part first, so the
// first part, which readers open, appears only once the set is whole; a
// set that would mix with existing parts goes under "name (1).zip.001".
// The folder is synced before it returns: a completed pull means the
// renames survive a power cut.
func publishModelZip(temps []string, out string, split bool, syncDir func(string) error) (string, []string, error) {
	if !split {
		final, err := publishZip(temps[0], out)
		if err != nil {
			return "", nil, err
		}
		if final == "" {
			final = out
		}
		if err := syncDir(filepath.Dir(final)); err != nil {
			return "", nil, fmt.Errorf("%s is complete, but its folder could not be synced, so it may not survive a power cut: %w", final, err)
		}
		return final, nil, nil
	}
	for i := 0; i < maxZipNameTries; i++ {
		base := engine.NumberedName(out, i)
		finals := splitPartPaths(base, len(temps))
		taken := false
		for _, p := range append(finals, splitPartName(base, len(temps)+1)) {
			if _, err := os.Lstat(p); err == nil {
				taken = true
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", nil, fmt.Errorf("checking %s: %w", p, err)
			}
		}
		if taken {
			if sameSplitSet(temps, finals) {
				for _, t := range temps {
					os.Remove(t)
				}
				return finals[0], finals, nil
			}
			continue
		}
		for k := len(temps) - 1; k >= 0; k-- {
			if err := os.Rename(temps[k], finals[k]); err != nil {
				return "", nil, fmt.Errorf("publishing %s: %w", finals[k], err)
			}
		}
		if err := syncDir(filepath.Dir(out)); err != nil {
			return "", nil, fmt.Errorf("%s is complete, but its folder could not be synced, so it may not survive a power cut: %w", finals[0], err)
		}
		return finals[0], finals, nil
	}
	return "", nil, fmt.Errorf("publishing zip: %s and %d numbered variants already exist", out, maxZipNameTries)
}

// sameSplitSet reports whether the parts at finals hold the same zip
// entries as the temporary parts (a rerun that found its own set).
func sameSplitSet(temps, finals []string) bool {
	for _, p := range finals {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	a, err := openZipSourceWith(finals[0], func(n string) (*os.File, error) { return os.Open(n) })
	if err != nil || len(a.Parts) != len(finals) {
		if a != nil {
			a.Close()
		}
		return false
	}
	defer a.Close()
	var files []*os.File
	for _, t := range temps {
		f, err := os.Open(t)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return false
		}
		files = append(files, f)
	}
	b, err := newZipSource(temps[0], temps, files)
	if err != nil {
		return false
	}
	defer b.Close()
	return sameZipAt(a, a.Size(), b, b.Size())
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
