package models

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/units"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// maxSplitParts bounds a split set: 7-Zip numbers parts .001 to .999
// before it needs a fourth digit, and 999 parts of 4 GiB is 4 TB.
const maxSplitParts = 999

// splitPartPattern matches "NAME.zip.001" and its siblings.
var splitPartPattern = regexp.MustCompile(`(?i)^(.*\.zip)\.([0-9]{3})$`)

// splitPartName is part i (from 1) of the split set whose zip is base.
func splitPartName(base string, i int) string { return fmt.Sprintf("%s.%03d", base, i) }

// splitBase returns the zip a split part belongs to ("x.zip.002" →
// "x.zip") and whether p names a part at all.
func splitBase(p string) (string, bool) {
	m := splitPartPattern.FindStringSubmatch(p)
	if m == nil {
		return p, false
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n >= 1
}

// zipSource is a model zip open for reading: one file, or the parts of a
// split set read as their concatenation (what `cat x.zip.0* > x.zip`
// gives). It holds the files open, so every read is from what was opened
// first, never from a path looked up again.
type zipSource struct {
	Path  string   // the zip, or the first part of a split set
	Parts []string // every part in order; nil for one file
	files []*os.File
	ends  []int64 // ends[i] is the offset just past part i
}

// openZipSource opens a zip by its path, or the split set that path
// names: any of its parts, or the zip's own name when only the parts
// exist.
func openZipSource(path string) (*zipSource, error) {
	return openZipSourceWith(path, func(name string) (*os.File, error) { return os.Open(name) })
}

// openZipSourceIn is openZipSource inside a root: no part is reached
// through a symbolic link that leaves it.
func openZipSourceIn(root *os.Root, rel string) (*zipSource, error) {
	return openZipSourceWith(rel, root.Open)
}

func openZipSourceWith(path string, open func(string) (*os.File, error)) (*zipSource, error) {
	base, isPart := splitBase(path)
	if !isPart {
		f, err := open(path)
		if err == nil {
			return newZipSource(path, nil, []*os.File{f})
		}
		if !errors.Is(err, fs.ErrNotExist) || !strings.EqualFold(filepath.Ext(path), ".zip") {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		// Only the parts of a split set may be there.
		first, perr := open(splitPartName(path, 1))
		if perr != nil {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		first.Close()
	}
	var files []*os.File
	var parts []string
	fail := func(err error) (*zipSource, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for i := 1; i <= maxSplitParts; i++ {
		name := splitPartName(base, i)
		f, err := open(name)
		if errors.Is(err, fs.ErrNotExist) {
			if i == 1 {
				return fail(fmt.Errorf("opening %s: the split set has no first part %s: %w", path, name, err))
			}
			// A later part after a gap means one is missing, not the end.
			if g, gerr := open(splitPartName(base, i+1)); gerr == nil {
				g.Close()
				return fail(fault.WithKind(fault.ErrBadZip, fmt.Errorf("opening %s: part %s is missing", path, name)))
			}
			break
		}
		if err != nil {
			return fail(fmt.Errorf("opening %s: %w", name, err))
		}
		files = append(files, f)
		parts = append(parts, name)
	}
	src, err := newZipSource(parts[0], parts, files)
	if err != nil {
		return fail(err)
	}
	return src, nil
}

func newZipSource(path string, parts []string, files []*os.File) (*zipSource, error) {
	z := &zipSource{Path: path, Parts: parts, files: files}
	var end int64
	for i, f := range files {
		fi, err := f.Stat()
		if err != nil {
			z.Close()
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			z.Close()
			return nil, fmt.Errorf("opening %s: not a regular file", path)
		}
		// Every part but the last has the set's part size, the last no
		// more: a part of another size is from another set, or cut short.
		last := i == len(files)-1
		if i > 0 && (!last && fi.Size() != z.ends[0] || last && fi.Size() > z.ends[0]) {
			z.Close()
			return nil, fault.WithKind(fault.ErrBadZip, fmt.Errorf("opening %s: part %s has %d bytes, the first part %d: the parts are not from one set (or one is damaged)",
				path, filepath.Base(parts[i]), fi.Size(), z.ends[0]))
		}
		end += fi.Size()
		z.ends = append(z.ends, end)
	}
	return z, nil
}

// Size is the length of the zip (of every part together).
func (z *zipSource) Size() int64 { return z.ends[len(z.ends)-1] }

// Label is how a person names it: the zip, or "x.zip.001 (+2 parts)".
func (z *zipSource) Label() string {
	if len(z.Parts) > 1 {
		return fmt.Sprintf("%s (+%d parts)", z.Path, len(z.Parts)-1)
	}
	return z.Path
}

func (z *zipSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	done := 0
	for done < len(p) {
		at := off + int64(done)
		if at >= z.Size() {
			return done, io.EOF
		}
		i := 0
		for z.ends[i] <= at {
			i++
		}
		start := z.ends[i] - partSizeAt(z.ends, i)
		n := int(min(int64(len(p)-done), z.ends[i]-at))
		r, err := z.files[i].ReadAt(p[done:done+n], at-start)
		done += r
		if err != nil && !(errors.Is(err, io.EOF) && r == n) {
			return done, err
		}
	}
	return done, nil
}

func partSizeAt(ends []int64, i int) int64 {
	if i == 0 {
		return ends[0]
	}
	return ends[i] - ends[i-1]
}

func (z *zipSource) Close() error {
	var errs []error
	for _, f := range z.files {
		errs = append(errs, f.Close())
	}
	z.files = nil
	return errors.Join(errs...)
}

// splitPartPaths lists the names of the n parts of the zip at base.
func splitPartPaths(base string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = splitPartName(base, i+1)
	}
	return out
}

// splitPartCount is how many parts of at most partSize a zip of size
// bytes takes.
func splitPartCount(size, partSize int64) int {
	if partSize <= 0 {
		return 1
	}
	return int(max((size+partSize-1)/partSize, 1))
}

// ParseSplitSize reads -split: a size like 4G or 700M (K/M/G as for
// -limit-rate), 0 for one zip.
func ParseSplitSize(s string) (int64, error) {
	n, err := engine.ParseRate(s)
	if err != nil {
		return 0, fault.BadInputf("-split %q: use a size like 4G, 700M or 0 for one zip", s)
	}
	if n != 0 && n < minSplitSize {
		return 0, fault.BadInputf("-split %q: parts must be at least %s", s, units.Decimal(minSplitSize))
	}
	return n, nil
}
